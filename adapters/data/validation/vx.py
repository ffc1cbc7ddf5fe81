"""VX futures: one file per monthly contract. Reads all files in one parse, checks dates, expiry and
gaps in each contract's traded life, then cleans (placeholders, known bad prints, CFE-only sessions,
the 10x rescale before 2007-03-26) into one long frame."""
from __future__ import annotations

import io
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from .. import sources as S
from ..errors import DataError
from .reading import (
    LINE_RE,
    check_dates,
    check_header,
    numeric,
    parse_dates,
    read_text_csv,
    runs,
    trading_days_between,
)
from .sink import LIMIT, Sink, fmt_date, list_dates


@dataclass
class ValidatedVX:
    frame: pd.DataFrame  # long format, cleaned, rescaled, NYSE days only, sorted by (date, expiry)
    files: list[str]
    file_rows: int



_VX_KEEP = ("trade_date", "contract_month", "expiry", "open", "high", "low", "close", "settle",
            "total_volume", "open_interest")


def _read_vx_files(data_dir: Path, spec: S.VXSpec, files: list[Path], sink: Sink) -> pd.DataFrame | None:
    """All contract files as one string frame with _file, _month, _line columns.

    Files whose header is exactly the standard layout are concatenated and parsed in a single read_csv
    (267 separate parses cost ~0.6 s); any other file is read on its own and checked column by column."""
    std_header = ",".join(spec.columns)
    bodies: list[str] = []
    counts: list[int] = []
    std_files: list[Path] = []
    frames: list[pd.DataFrame] = []
    for f in files:
        rel = f"{spec.directory}/{f.name}"
        try:
            text = f.read_text(encoding="utf-8-sig")
        except (OSError, UnicodeDecodeError) as exc:
            sink.error(rel, None, f"cannot be read ({exc})")
            continue
        head, _, body = text.partition("\n")
        if head.strip() != std_header:
            df = read_text_csv(data_dir, rel, sink)
            if df is None or not check_header(df, spec.columns, rel, sink):
                continue
            if len(df) == 0:
                sink.error(rel, None, "file has a header but no data rows")
                continue
            df = df[list(_VX_KEEP)].copy()
            df["_file"], df["_month"], df["_line"] = rel, f.stem[3:], np.arange(2, len(df) + 2)
            frames.append(df)
            continue
        body = body.rstrip("\n")
        if not body.strip():
            sink.error(rel, None, "file has a header but no data rows")
            continue
        bodies.append(body)
        counts.append(body.count("\n") + 1)
        std_files.append(f)
    if bodies:
        try:
            big = pd.read_csv(io.StringIO("\n".join(bodies)), header=None, names=list(spec.columns), dtype=str,
                              keep_default_na=False, na_filter=False, skip_blank_lines=False)
        except pd.errors.ParserError as exc:
            m = LINE_RE.search(str(exc))
            if m:  # map the global line back to (file, line)
                g = int(m.group(1))
                cum = np.cumsum(counts)
                k = int(np.searchsorted(cum, g))
                local = g - (int(cum[k - 1]) if k else 0) + 1
                sink.error(f"{spec.directory}/{std_files[k].name}", local, f"cannot be read as CSV ({str(exc).strip()})")
            else:
                sink.error(spec.directory, None, f"cannot be read as CSV ({str(exc).strip()})")
            return None
        if len(big) != sum(counts):
            sink.error(spec.directory, None, f"parsed {len(big)} rows but the files hold {sum(counts)} lines")
            return None
        big = big[list(_VX_KEEP)]
        cnt = np.asarray(counts)
        big["_file"] = np.repeat([f"{spec.directory}/{f.name}" for f in std_files], cnt)
        big["_month"] = np.repeat([f.stem[3:] for f in std_files], cnt)
        offsets = np.repeat(np.cumsum(cnt) - cnt, cnt)
        big["_line"] = np.arange(len(big)) - offsets + 2
        frames.insert(0, big)
    if not frames:
        return None
    raw = pd.concat(frames, ignore_index=True) if len(frames) > 1 else frames[0]
    return raw.sort_values(["_file", "_line"], kind="stable", ignore_index=True)



def validate_vx(data_dir: Path, spec: S.VXSpec, sink: Sink) -> ValidatedVX | None:
    vdir = data_dir / spec.directory
    if not vdir.is_dir():
        sink.error(spec.directory, None, f"VX futures directory not found (expected at {vdir})")
        return None
    files = sorted(vdir.glob(spec.glob))
    by_month = {f.stem[3:]: f for f in files}
    last_contract = spec.last_contract or max(by_month, default=spec.first_contract)
    expected = pd.period_range(spec.first_contract, last_contract, freq="M").strftime("%Y-%m")
    allowed = {g.date: g for g in spec.missing_contracts}
    for m in expected:
        if m not in by_month and m not in allowed:
            sink.error(f"{spec.directory}/VX_{m}.csv", None,
                       f"contract file for VX {m} is missing and not in the known-missing list")
    absent_known = [m for m in allowed if m not in by_month]
    if absent_known:
        sink.notes.append(f"{spec.directory}: contract months without a file (known): "
                          + "; ".join(f"{m} ({allowed[m].reason})" for m in absent_known))
    stale = [m for m in allowed if m in by_month]
    if stale:
        # a fetched directory has contracts shared/data lacks (2026-03): good news, not a stale rule
        sink.notes.append(f"{spec.directory}: contracts {', '.join(stale)} are in the known-missing list "
                          "but a file exists; the file is used")

    before = sink.n_errors
    raw = _read_vx_files(data_dir, spec, files, sink)
    if raw is None:
        if sink.n_errors == before:
            sink.error(spec.directory, None, f"no files matching {spec.glob}")
        return None
    file_ = raw["_file"].to_numpy()
    line = raw["_line"].to_numpy()

    tdates = parse_dates(raw["trade_date"])
    if not check_dates(tdates, raw["trade_date"], line, spec.directory, sink, group=file_):
        return None
    expiry = parse_dates(raw["expiry"])
    bad = expiry.isna().to_numpy()
    for i in np.nonzero(bad)[0][:LIMIT]:
        sink.error(file_[i], int(line[i]), f"expiry {raw['expiry'].iloc[i]!r} is not a YYYY-MM-DD date")
    cm = raw["contract_month"].astype(str).str.strip().to_numpy()
    badcm = cm != raw["_month"].to_numpy()
    for i in np.nonzero(badcm)[0][:LIMIT]:
        sink.error(file_[i], int(line[i]), f"contract_month {cm[i]!r} does not match the file name")
    if bad.any() or badcm.any():
        return None
    ev = expiry.to_numpy()
    changed = (ev[1:] != ev[:-1]) & (file_[1:] == file_[:-1])
    for i in (np.nonzero(changed)[0] + 1)[:LIMIT]:
        sink.error(file_[i], int(line[i]), f"expiry changes within the file (was {fmt_date(ev[i - 1])}, now {fmt_date(ev[i])})")

    num = {}
    for col in ("open", "high", "low", "close", "settle", "total_volume", "open_interest"):
        v, empty, unparse = numeric(raw[col])
        for i in np.nonzero(unparse)[0][:LIMIT]:
            sink.error(file_[i], int(line[i]), f"{col} {raw[col].iloc[i]!r} is not a number", fmt_date(tdates.iloc[i]))
        with np.errstate(invalid="ignore"):
            neg = v < 0
        for i in np.nonzero(neg)[0][:LIMIT]:
            sink.error(file_[i], int(line[i]), f"{col} is {v[i]:g}; must be >= 0", fmt_date(tdates.iloc[i]))
        if col == "settle":
            for i in np.nonzero(empty)[0][:LIMIT]:
                sink.error(file_[i], int(line[i]), "settle is NaN", fmt_date(tdates.iloc[i]))
        num[col] = v
    n_empty_ohlc = int(np.isnan(num["close"]).sum())
    if sink.n_errors > before:
        return None

    td_all = trading_days_between(tdates.min(), tdates.max())
    on_td = tdates.isin(td_all).to_numpy()
    data_end = tdates.max()

    # ---- per-contract checks: expiry vs last trade date, gaps in the traded life --------------
    df = pd.DataFrame({
        "file": file_, "line": line, "date": tdates.to_numpy(), "expiry": ev, "contract_month": cm,
        "open": num["open"], "high": num["high"], "low": num["low"], "close": num["close"],
        "settle": num["settle"], "volume": num["total_volume"], "open_interest": num["open_interest"],
        "on_td": on_td,
    })
    grp = df.groupby("file", sort=False)
    last_idx = grp["date"].idxmax().to_numpy()
    for i in last_idx:
        f, last_d, exp_d = file_[i], df.at[i, "date"], df.at[i, "expiry"]
        if last_d == exp_d:
            continue
        if last_d < exp_d and last_d == data_end:
            continue  # still trading when the data ends
        sink.error(f, int(line[i]),
                   f"expiry column says {fmt_date(exp_d)} but the last row is {fmt_date(last_d)}"
                   + ("; rows after expiry" if last_d > exp_d else "; the final-settlement row is missing"),
                   fmt_date(last_d))
    live_contracts = sorted({cm[i] for i in last_idx if df.at[i, "date"] < df.at[i, "expiry"]})

    traded = (df["open_interest"].fillna(0).to_numpy() > 0) | (df["volume"].fillna(0).to_numpy() > 0)
    known_gaps = {(fn, pd.Timestamp(g.date)): g for fn, g in spec.known_gaps}
    gap_carry: list[tuple[str, pd.Timestamp]] = []
    first_traded = df.loc[traded].groupby("file", sort=False)["date"].min()
    tdv = td_all.to_numpy()
    gaps_found = 0
    for f, sub in df[df["on_td"]].groupby("file", sort=False):
        if f not in first_traded.index:
            continue
        w0, w1 = first_traded[f], sub["date"].iloc[-1]
        lo, hi = np.searchsorted(tdv, w0.to_datetime64()), np.searchsorted(tdv, w1.to_datetime64(), side="right")
        have = sub["date"].to_numpy()
        miss_mask = ~np.isin(tdv[lo:hi], have)
        if not miss_mask.any():
            continue
        miss_pos = np.nonzero(miss_mask)[0] + lo
        name = f.rsplit("/", 1)[-1]
        unknown = [p for p in miss_pos if (name, pd.Timestamp(tdv[p])) not in known_gaps]
        gap_carry += [(f, pd.Timestamp(tdv[p])) for p in miss_pos if (name, pd.Timestamp(tdv[p])) in known_gaps]
        for a, b in runs(np.array(unknown, dtype=int)):
            gaps_found += 1
            if gaps_found > LIMIT:
                break
            nxt = np.searchsorted(have, tdv[b], side="right")
            row = int(sub["line"].iloc[nxt]) if nxt < len(have) else None
            what = (f"NYSE trading day {fmt_date(tdv[a])} is missing" if a == b
                    else f"NYSE trading days {fmt_date(tdv[a])}..{fmt_date(tdv[b])} ({b - a + 1} days) are missing")
            sink.error(f, row, what + " while the contract has open interest (gap before this row)",
                       None if nxt >= len(have) else fmt_date(have[nxt]))
    if sink.n_errors > before:
        return None

    notes = sink.notes
    # ---- rows on NYSE-closed days (CFE-only sessions) -----------------------------------------
    closed = ~df["on_td"].to_numpy()
    if closed.any():
        days = pd.DatetimeIndex(df.loc[closed, "date"].unique()).sort_values()
        notes.append(f"{spec.directory}: {int(closed.sum())} rows on {len(days)} CFE sessions when NYSE was "
                     f"closed dropped: {list_dates(days)}")
    df = df[~closed]

    # ---- known bad values: replace by the contract's previous settle (as-of) or drop ---------
    bad_mask = np.zeros(len(df), dtype=bool)
    for kb in spec.known_bad_values:
        f = f"{spec.directory}/{kb.file}"
        hit = (df["file"].to_numpy() == f) & (df["date"].to_numpy() == np.datetime64(pd.Timestamp(kb.date)))
        if not hit.any():
            sink.warnings.append(f"{f}: known bad value on {kb.date} not found; the allowlist in "
                                 "adapters/data/sources.py is stale")
            continue
        bad_mask |= hit
        i = np.nonzero(hit)[0][0]
        notes.append(f"{f} row {int(df['line'].iloc[i])} ({kb.date}): {kb.column} {df[kb.column].iloc[i]:g} "
                     f"treated as missing and carried from the previous settle if any, else dropped ({kb.reason})")
    # ---- placeholders: settle == 0 rows are not settlements ----------------------------------
    zero = (df["settle"].to_numpy() == 0) & ~bad_mask
    if zero.any():
        notes.append(f"{spec.directory}: {int(zero.sum())} placeholder rows with settle = 0 dropped "
                     "(CFE placeholders before a contract traded, and no-trade days)")
    df = df[~zero].copy()
    bad_mask = bad_mask[~zero]
    if bad_mask.any():
        s = df["settle"].where(~bad_mask)
        df["settle"] = s.groupby(df["file"], sort=False).ffill()
        df = df[df["settle"].notna().to_numpy()]

    # ---- allowlisted gaps inside a contract's traded life: carry the previous settle ----------
    if gap_carry:
        add = []
        for f, d in gap_carry:
            prev = df[(df["file"] == f) & (df["date"] < d)].tail(1)
            if prev.empty:
                continue
            r = prev.iloc[0].copy()
            r["date"] = d
            r[["open", "high", "low", "close"]] = np.nan
            r["volume"] = 0.0
            r["line"] = 0
            add.append(r)
        if add:
            df = pd.concat([df, pd.DataFrame(add)], ignore_index=True)
            notes.append(f"{spec.directory}: {len(add)} allowlisted missing contract-days carried from the "
                         "previous settle (as-of rule)")

    # ---- prices: no-trade quirks, the 10x rescale -------------------------------------------
    px = ["open", "high", "low", "close"]
    for c in px:
        df.loc[df[c].to_numpy() == 0, c] = np.nan
    no_trade = df["close"].isna() & (df["volume"].fillna(0) == 0)
    hl_quirk = no_trade & (df["high"].notna() | df["low"].notna())
    if hl_quirk.any():
        df.loc[no_trade, ["open", "high", "low"]] = np.nan
        notes.append(f"{spec.directory}: {int(hl_quirk.sum())} no-trade rows (close 0, volume 0) carried non-zero "
                     "high/low (not trades; often high < low in the CBOE files); open/high/low/close set to NaN")
    if n_empty_ohlc:
        notes.append(f"{spec.directory}: {n_empty_ohlc} rows have empty open/high/low/close but a settle; kept with NaN prices")
    pre = df["date"].to_numpy() < np.datetime64(pd.Timestamp(spec.rescale_before))
    if pre.any():
        for c in px + ["settle"]:
            df.loc[pre, c] = df.loc[pre, c] / spec.rescale_factor
        notes.append(f"{spec.directory}: {int(pre.sum())} rows before {spec.rescale_before} divided by "
                     f"{spec.rescale_factor:g} (CFE quoted VX at 10 x VIX until then)")
    if live_contracts:
        notes.append(f"{spec.directory}: contracts still trading at the data end {fmt_date(data_end)}: "
                     f"{', '.join(live_contracts)}")

    df = df.sort_values(["file", "date"], kind="stable")
    # ---- jumps in settle (warnings) ---------------------------------------------------------
    with np.errstate(divide="ignore", invalid="ignore"):
        lr = np.log(df["settle"]).groupby(df["file"], sort=False).diff().to_numpy()
    j = np.nonzero(np.abs(lr) > spec.jump_threshold)[0]
    if len(j):
        st = df["settle"].to_numpy()
        prev = df["settle"].groupby(df["file"], sort=False).shift(1).to_numpy()
        for k in j[:LIMIT]:
            sink.warnings.append(str(DataError(df["file"].iloc[k], int(df["line"].iloc[k]),
                                               f"implausible jump: settle {prev[k]:g} -> {st[k]:g} "
                                               f"(log change {lr[k]:+.2f}, threshold {spec.jump_threshold:g})",
                                               date=fmt_date(df["date"].iloc[k]))))
        if len(j) > LIMIT:
            sink.warnings.append(f"{spec.directory}: {len(j) - LIMIT} more implausible settle jumps")
    hl = (df["high"] < df["low"]).to_numpy()
    if hl.any():
        sink.warnings.append(f"{spec.directory}: {int(hl.sum())} traded rows have high < low "
                             f"(first: {df['file'][hl].iloc[0]} row {int(df['line'][hl].iloc[0])})")

    out = pd.DataFrame({
        "date": df["date"].to_numpy(),
        "expiry": df["expiry"].to_numpy(),
        "contract_month": df["contract_month"].astype(str).to_numpy(),
        "open": df["open"].to_numpy(dtype="float64"),
        "high": df["high"].to_numpy(dtype="float64"),
        "low": df["low"].to_numpy(dtype="float64"),
        "close": df["close"].to_numpy(dtype="float64"),
        "settle": df["settle"].to_numpy(dtype="float64"),
        "volume": df["volume"].fillna(0).to_numpy().astype("int64"),
        "open_interest": df["open_interest"].fillna(0).to_numpy().astype("int64"),
    })
    out = out.sort_values(["date", "expiry"], kind="stable", ignore_index=True)
    return ValidatedVX(frame=out, files=[f"{spec.directory}/{f.name}" for f in files], file_rows=len(raw))
