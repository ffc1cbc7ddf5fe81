"""``vx_futures/contracts_index.csv``: one row per contract file, same columns and definitions as
shared/data, rebuilt after every fetch that includes VX."""
from __future__ import annotations

import contextlib
import csv
import io
import re
from pathlib import Path

from adapters.data.vendor_formats import VX_FETCHED_TAGS

from .files import atomic_write

INDEX_COLUMNS = ["contract_month", "expiry", "first_date", "last_date", "rows", "rows_with_prices",
                 "rows_settle_zero", "expired_in_data", "source", "expiry_label_corrected"]


def rebuild_contracts_index(vx_dir: Path) -> int:
    """Regenerate ``vx_futures/contracts_index.csv`` from the ``VX_YYYY-MM.csv`` files.

    Columns match shared/data. For contracts not fetched by alvh (brought by the user) the
    previous index row's ``source`` and ``expiry_label_corrected`` are kept. Returns the
    number of contracts indexed.
    """
    index = vx_dir / "contracts_index.csv"
    old: dict[str, dict[str, str]] = {}
    if index.exists():
        with contextlib.suppress(OSError, csv.Error, UnicodeDecodeError), \
                open(index, newline="", encoding="utf-8") as f:
            old = {r.get("contract_month", ""): r for r in csv.DictReader(f)}

    def num(x: str | None) -> float | None:
        try:
            return float(x) if x not in (None, "") else None
        except ValueError:
            return None

    out = []
    for path in sorted(vx_dir.glob("VX_*.csv")):
        m = re.fullmatch(r"VX_(\d{4}-\d{2})\.csv", path.name)
        if not m:
            continue
        month = m.group(1)
        try:
            with open(path, newline="", encoding="utf-8") as f:
                recs = [r for r in csv.DictReader(f) if r.get("trade_date")]
        except (OSError, csv.Error, UnicodeDecodeError):
            continue
        if not recs:
            continue
        prev = old.get(month)
        dates = [r["trade_date"] for r in recs]
        expiry = recs[-1].get("expiry") or (prev or {}).get("expiry", "")
        with_prices = sum(1 for r in recs if any((num(r.get(c)) or 0.0) != 0.0
                                                 for c in ("open", "high", "low", "close", "settle")))
        settle_zero = sum(1 for r in recs if num(r.get("settle")) == 0.0)
        file_source = recs[-1].get("source") or ""
        if prev is None or file_source in VX_FETCHED_TAGS:
            source, corrected = file_source or "unknown", "False"
        else:
            source, corrected = prev.get("source") or file_source, prev.get("expiry_label_corrected") or "False"
        out.append([month, expiry, min(dates), max(dates), len(recs), with_prices, settle_zero,
                    str(bool(expiry) and max(dates) >= expiry), source, corrected])
    if out:
        buf = io.StringIO()
        w = csv.writer(buf, lineterminator="\n")
        w.writerow(INDEX_COLUMNS)
        w.writerows(out)
        atomic_write(index, buf.getvalue().encode("utf-8"))
    return len(out)
