"""Which files a run needs, and whether a data directory has them over the run's window.

Strategies declare the series they read (strategies/needs.py: ``spx``, ``vix``, ``rate``, ``vx``, ``etp:VIXY``,
...). Here each series is mapped to the file it comes from (``sources.py``) and checked twice, each time with
one message naming every problem:

1. ``check_files`` before anything is read: every file a needed series comes from exists;
2. ``check_coverage`` on the loaded panel, before the first replay step: every series needed over the whole
   window has values from the window's first session to its last (the T-bill rate to the session before the
   last: the replay prices with the prior day's rate, which is all FRED has published by then).
"""
from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

import pandas as pd

from . import sources as S
from .errors import DataError

# Files that extend a series where present (panel.build_panel joins them); the series needs only its own file.
_EXTENSIONS: dict[str, tuple[S.DailySpec, ...]] = {"spx": (S.SPX_EXT,), "dtb3": (S.DTB3_EXT,), "vix3m": (S.VXV,)}
_ALIASES = {"rate": "dtb3"}
_PRIOR_SESSION = {"rate"}   # read as of the session before (adapters/sim/replay.py)
_CALENDAR = (pd.Timestamp("1990-01-02"), pd.Timestamp("2030-12-31"))   # engine.calendar's XNYS range
_FETCH_HINT = "run `alvh data fetch` (docs/fetch.md) or point --data-dir at a directory that has them"


@dataclass(frozen=True)
class Source:
    """Where one series comes from: the file it needs, the files that extend it, its panel column."""

    series: str
    path: str                   # a file, or the VX futures directory
    extensions: tuple[str, ...]
    column: str | None          # None for the VX futures (panel.vx, long format)


def _daily_specs() -> dict[str, S.DailySpec]:
    return {spec.key: spec for spec in S.DAILY_SPECS if spec.role == "panel"}


def source_of(series: str) -> Source | None:
    """The source of a series name, or None when the data layer has no such series."""
    if series == "vx":
        return Source("vx", S.VX.directory, (), None)
    key = series.split(":", 1)[1].lower() if series.startswith("etp:") else _ALIASES.get(series, series)
    spec = _daily_specs().get(key)
    if spec is None:
        return None
    column = spec.panel_columns[-1][1]      # the close (or the file's only value column)
    return Source(series, spec.path, tuple(e.path for e in _EXTENSIONS.get(key, ())), column)


def known_series() -> list[str]:
    names = ["vx", "rate"] + [k for k in _daily_specs() if k != "dtb3"]
    return sorted(names)


def _present(data_dir: Path, src: Source) -> bool:
    p = data_dir / src.path
    if src.column is None:
        return p.is_dir() and any(p.glob(S.VX.glob))
    return p.is_file()


def missing_files(data_dir: Path | str, needs: Iterable) -> list[str]:
    """One phrase per problem: a file that is absent (with who needs it) or a series the data layer lacks."""
    data_dir = Path(data_dir)
    out: list[str] = []
    seen: set[str] = set()
    for n in needs:
        src = source_of(n.series)
        if src is None:
            out.append(f"series '{n.series}' ({n.why}) is not one the data layer knows "
                       f"(known: {', '.join(known_series())})")
            continue
        if src.path in seen or _present(data_dir, src):
            continue
        seen.add(src.path)
        what = f"{src.path}/{S.VX.glob}" if src.column is None else src.path
        out.append(f"{what} (for {n.why})")
    return out


def check_files(data_dir: Path | str, needs: Iterable, label: str) -> None:
    """Raise one DataError naming every missing file before any file is read."""
    problems = missing_files(data_dir, list(needs))
    if problems:
        raise DataError(str(data_dir), None, f"{label} cannot run here, {len(problems)} missing: "
                        + "; ".join(problems) + f"; {_FETCH_HINT}")


def series_span(panel, series: str) -> tuple[pd.Timestamp | None, pd.Timestamp | None]:
    """First and last date with a value of the series in the panel (None, None when it has none)."""
    src = source_of(series)
    if src is None:
        return None, None
    if src.column is None:
        d = panel.vx["date"]
        return (d.min(), d.max()) if len(d) else (None, None)
    col = panel.daily.get(src.column)
    if col is None:
        return None, None
    return col.first_valid_index(), col.last_valid_index()


def _sessions(start, end) -> tuple[pd.Timestamp, pd.Timestamp, pd.Timestamp] | None:
    """(first session >= start, last session <= end, the session before that) or None when there is none."""
    from engine.calendar import previous_trading_day, trading_days

    lo, hi = _CALENDAR
    s, e = max(pd.Timestamp(start), lo), min(pd.Timestamp(end), hi)
    days = trading_days(s, e) if s <= e else []
    if len(days) == 0:
        return None
    last = pd.Timestamp(days[-1])
    return pd.Timestamp(days[0]), last, pd.Timestamp(previous_trading_day(last))


def coverage_problems(panel, needs: Iterable, start, end) -> list[str]:
    """One phrase per series needed over the whole window that does not cover it."""
    sessions = _sessions(start, end)
    if sessions is None:
        return [(f"no NYSE session between {pd.Timestamp(start).date()} and {pd.Timestamp(end).date()} "
                f"(the exchange calendar covers {_CALENDAR[0].date()} .. {_CALENDAR[1].date()})")]
    first, last, before_last = sessions
    out = []
    for n in needs:
        src = source_of(n.series)
        if src is None or not n.whole_window:
            continue
        lo, hi = series_span(panel, n.series)
        files = ", ".join((src.path, *src.extensions))
        if lo is None:
            out.append(f"{n.series} ({files}, for {n.why}) has no values")
            continue
        until = before_last if n.series in _PRIOR_SESSION else last
        if lo > first:
            out.append(f"{n.series} ({files}, for {n.why}) starts {lo.date()} but the run needs it from {first.date()}")
        if hi < until:
            out.append(f"{n.series} ({files}, for {n.why}) ends {hi.date()} but the run needs it to {until.date()}")
    return out


def last_covered_session(panel, needs: Iterable) -> pd.Timestamp | None:
    """The latest session every whole-window series covers (the rate: the session before it)."""
    from engine.calendar import next_trading_day

    last = None
    for n in needs:
        if not n.whole_window or source_of(n.series) is None:
            continue
        _, hi = series_span(panel, n.series)
        if hi is None:
            return None
        hi = pd.Timestamp(next_trading_day(hi)) if n.series in _PRIOR_SESSION else hi
        last = hi if last is None else min(last, hi)
    return last


def check_coverage(panel, needs: Iterable, start, end, label: str) -> None:
    """Raise one DataError naming every needed series that does not cover [start, end]."""
    problems = coverage_problems(panel, list(needs), start, end)
    if problems:
        raise DataError(label, None, f"the data does not cover {pd.Timestamp(start).date()} .. "
                        f"{pd.Timestamp(end).date()}: " + "; ".join(problems)
                        + " (choose dates inside the data, or fetch newer data)")
