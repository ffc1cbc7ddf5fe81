"""Everything together: validate every file of the data directory, the event calendars and the
cross-checks between sources, and the :class:`DataReport` of ``check_data``."""
from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd

from .. import sources as S
from ..errors import DataError
from ..open_prints import stale_open_counts, stale_opens
from .daily import ValidatedSeries, validate_daily
from .reading import check_dates, check_header, parse_dates, read_text_csv
from .sink import Sink, fmt_date
from .vx import ValidatedVX, validate_vx


@dataclass
class Validated:
    series: dict[str, ValidatedSeries]
    vx: ValidatedVX | None
    events: dict[str, pd.DatetimeIndex]
    sink: Sink


@dataclass
class DataReport:
    errors: list[DataError]
    warnings: list[str]
    coverage: pd.DataFrame  # series, file, first, last, rows, missing_trading_days
    notes: list[str] = field(default_factory=list)
    stale_spx_opens: dict[int, int] = field(default_factory=dict)   # per year: SPX open == prior close

    @property
    def ok(self) -> bool:
        return not self.errors

    def __str__(self) -> str:  # a readable summary for the CLI
        lines = [f"data check: {'OK' if self.ok else 'FAILED'} ({len(self.errors)} errors, {len(self.warnings)} warnings)"]
        lines += [f"ERROR {e}" for e in self.errors]
        lines += [f"WARNING {w}" for w in self.warnings]
        return "\n".join(lines)



def validate_events(data_dir: Path, spec: S.EventSpec, sink: Sink) -> pd.DatetimeIndex | None:
    if not spec.required and not (data_dir / spec.path).exists():
        sink.notes.append(f"{spec.path}: optional event calendar not present ({spec.description})")
        return None
    df = read_text_csv(data_dir, spec.path, sink)
    if df is None or not check_header(df, (spec.date_column, *spec.columns), spec.path, sink):
        return None
    lines = np.arange(2, len(df) + 2)
    dates = parse_dates(df[spec.date_column])
    if not check_dates(dates, df[spec.date_column], lines, spec.path, sink):
        return None
    return pd.DatetimeIndex(dates, name="date")


# --------------------------------------------------------------------------------------------------
# Cross-checks between sources (warnings / notes only)
# --------------------------------------------------------------------------------------------------
def cross_checks(series: dict[str, ValidatedSeries], sink: Sink) -> None:
    def pair(a: str, b: str, col_a: str, col_b: str):
        if a not in series or b not in series:
            return None
        x, y = series[a].frame[col_a], series[b].frame[col_b]
        common = x.index.intersection(y.index).difference(series[a].carried).difference(series[b].carried)
        return x.reindex(common), y.reindex(common)

    p = pair("spx", "spx_ext", "close", "close")
    if p is not None:
        x, y = p
        rel = (x - y).abs() / y
        bad = rel > S.SPX_OVERLAP_TOLERANCE
        if bad.any():
            r = series["spx"].rows
            sink.warn_at(S.SPX.path, r.reindex(x.index[bad]).to_numpy(), x.index[bad],
                         [f"close {a:g} differs from {S.SPX_EXT.path} close {b:g} by {d:.3%}"
                          for a, b, d in zip(x[bad], y[bad], rel[bad])])
        sink.notes.append(f"{S.SPX.path} vs {S.SPX_EXT.path}: {len(x)} common days, max close difference "
                          f"{(rel.max() if len(rel) else 0):.4%}")
    p = pair("vix", "vix_fred", "close", "vixcls")
    if p is not None:
        x, y = p
        ok = y.notna()
        diff = (x[ok] - y[ok]).abs()
        bad = diff > 0.005
        if bad.any():
            sink.warn_at(S.VIX.path, series["vix"].rows.reindex(diff.index[bad]).to_numpy(), diff.index[bad],
                         [f"close {a:g} differs from FRED VIXCLS {b:g}" for a, b in zip(x[ok][bad], y[ok][bad])])
        sink.notes.append(f"{S.VIX.path} vs FRED VIXCLS: {int(ok.sum())} common days, {int(bad.sum())} differ by > 0.005")
    p = pair("dtb3", "dtb3_ext", "dtb3", "dtb3")
    if p is not None:
        x, y = p
        diff = (x - y).abs()
        bad = diff > 1e-9
        if bad.any():
            sink.warn_at(S.DTB3.path, series["dtb3"].rows.reindex(diff.index[bad]).to_numpy(), diff.index[bad],
                         [f"dtb3 {a:g} differs from {S.DTB3_EXT.path} {b:g}" for a, b in zip(x[bad], y[bad])])
    p = pair("vix3m", "vxv", "close", "close")
    if p is not None:
        x, y = p
        diff = (x - y).abs()
        if len(diff):
            sink.notes.append(f"{S.VIX3M.path} vs {S.VXV.path}: {len(diff)} common days, {int((diff > 0.01).sum())} "
                              f"differ by > 0.01, max {diff.max():.2f} on {fmt_date(diff.idxmax())}")


# --------------------------------------------------------------------------------------------------
# Everything
# --------------------------------------------------------------------------------------------------
def validate_all(data_dir: Path | str, *, collect: bool) -> Validated:
    data_dir = Path(data_dir)
    sink = Sink(collect)
    series: dict[str, ValidatedSeries] = {}
    for spec in S.DAILY_SPECS:
        v = validate_daily(data_dir, spec, sink)
        if v is not None:
            series[spec.key] = v
    vx = validate_vx(data_dir, S.VX, sink)
    events: dict[str, pd.DatetimeIndex] = {}
    for es in S.EVENT_SPECS:
        e = validate_events(data_dir, es, sink)
        if e is not None:
            events[es.key] = e
    cross_checks(series, sink)
    return Validated(series=series, vx=vx, events=events, sink=sink)


def coverage_table(v: Validated) -> pd.DataFrame:
    recs = []
    for spec in S.DAILY_SPECS:
        s = v.series.get(spec.key)
        recs.append({
            "series": spec.key, "file": spec.path,
            "first": s.first if s is not None else pd.NaT,
            "last": s.last if s is not None else pd.NaT,
            "rows": int((s.rows > 0).sum()) if s is not None else 0,
            "missing_trading_days": len(s.carried) if s is not None else np.nan,
        })
    if v.vx is not None and len(v.vx.frame):
        f = v.vx.frame
        recs.append({"series": "vx", "file": f"{S.VX.directory}/{S.VX.glob}", "first": f["date"].min(),
                     "last": f["date"].max(), "rows": len(f), "missing_trading_days": 0})
    for es in S.EVENT_SPECS:
        e = v.events.get(es.key)
        recs.append({"series": es.key, "file": es.path,
                     "first": e.min() if e is not None and len(e) else pd.NaT,
                     "last": e.max() if e is not None and len(e) else pd.NaT,
                     "rows": len(e) if e is not None else 0, "missing_trading_days": np.nan})
    return pd.DataFrame.from_records(recs, columns=["series", "file", "first", "last", "rows", "missing_trading_days"])


def check_option_files(data_dir: Path, sink: Sink) -> pd.DataFrame:
    """Load every option-quote file (every layout of SOURCES.md section 10) with the same checks the analyses use;
    a file that fails is an error naming file and line. One coverage row per file: first/last quote date, quotes."""
    from ..chain_layouts import (  # lazy: load_panel never reads option files
        list_option_files,
        load_option_file,
    )

    recs = []
    for path in list_option_files(data_dir):
        rel = str(path.relative_to(data_dir))
        try:
            snaps = load_option_file(path)
        except DataError as exc:
            sink.error(rel, exc.row, exc.message)
            continue
        sink.notes.extend(n for s in snaps for n in s.notes)
        recs.append({"series": f"options:{snaps[0].underlying}:{snaps[0].layout}", "file": rel,
                     "first": snaps[0].trade_date, "last": snaps[-1].trade_date,
                     "rows": sum(len(s.quotes) for s in snaps), "missing_trading_days": np.nan})
    return pd.DataFrame.from_records(recs, columns=["series", "file", "first", "last", "rows", "missing_trading_days"])


def check_data(data_dir: Path | str) -> DataReport:
    """Validate every series and every option-quote file without stopping at the first error."""
    data_dir = Path(data_dir)
    v = validate_all(data_dir, collect=True)
    options = check_option_files(data_dir, v.sink)
    coverage = pd.concat([coverage_table(v), options], ignore_index=True) if len(options) else coverage_table(v)
    stale = {}
    if "spx" in v.series:
        spx = v.series["spx"].frame
        spx = spx.loc[spx.index >= pd.Timestamp(S.CALENDAR_START)]
        stale = stale_open_counts(spx.index, stale_opens(spx["open"].to_numpy(), spx["close"].to_numpy()))
    return DataReport(errors=list(v.sink.errors), warnings=list(v.sink.warnings), coverage=coverage,
                      notes=list(v.sink.notes), stale_spx_opens=stale)
