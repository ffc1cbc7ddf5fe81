"""Validate a fetched directory with ``check_data`` and sort its errors: a missing file that the
fetch cannot provide is listed as "not provided", not reported as an error."""
from __future__ import annotations

import re
from pathlib import Path

from adapters.data.public_sources import CATALOGUE

from .report import FetchReport


def run_check(dest: Path, report: FetchReport) -> None:
    try:
        from adapters.data.panel import check_data
    except ImportError as e:
        report.check_ok = None
        report.notes.append(f"data validation skipped: adapters.data.panel.check_data is unavailable ({e})")
        return
    try:
        rep = check_data(dest)
    except Exception as e:  # noqa: BLE001 - report, don't crash the fetch
        report.check_ok = False
        report.check_errors.append(f"check_data({dest}) raised {e.__class__.__name__}: {e}")
        return
    errors = list(getattr(rep, "errors", None) or [])
    kept = []
    for e in errors:
        # A file that `alvh data fetch` cannot provide (VX before 2013, event calendars, VIX ETPs,
        # second-source extensions ...) and that is absent is not a fetch failure.
        rel = _relative_file(dest, getattr(e, "file", None))
        if rel and not (dest / rel).exists() and not _fetchable(rel):
            report.unprovided.append(rel)
        else:
            kept.append(e)
    if report.unprovided:
        shown = ", ".join(report.unprovided[:4]) + (", ..." if len(report.unprovided) > 4 else "")
        report.check_warnings.append(
            f"{len(report.unprovided)} file(s) the data check expects are not provided by `alvh data fetch` and are "
            f"missing ({shown}); add them by hand if you need them (see docs/fetch.md)")
    report.check_errors.extend(str(e) for e in kept)
    report.check_warnings.extend(str(w) for w in (getattr(rep, "warnings", None) or []))
    report.check_ok = bool(getattr(rep, "ok", not errors)) or (bool(errors) and not kept)


def _relative_file(dest: Path, file: object) -> str | None:
    if not file:
        return None
    p = Path(str(file))
    if p.is_absolute():
        try:
            return p.relative_to(dest).as_posix()
        except ValueError:
            return None
    return p.as_posix()


def _fetchable(rel: str) -> bool:
    m = re.fullmatch(r"vx_futures/VX_(\d{4}-\d{2})\.csv", rel)
    if m:
        return m.group(1) >= min(s.start for s in CATALOGUE.values() if s.per_contract)
    return rel == "vx_futures" or rel.startswith("vx_futures/") or rel in {s.target for s in CATALOGUE.values() if not s.per_contract}
