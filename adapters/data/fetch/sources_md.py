"""``SOURCES.md`` of a fetched directory: what was fetched, when and from where, built from the
``<file>.meta.json`` sidecars, plus the last run's summary and the files alvh did not fetch."""
from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

from adapters.data.public_sources import CATALOGUE, DEFAULT_BASES, Source
from adapters.data.vendor_formats import VX_FETCHED_TAGS

from .files import atomic_write, read_json
from .report import FetchReport


def url_pattern(src: Source, base: str) -> str:
    if src.url_template.startswith("{base}/"):
        base = base.rstrip("/")
    if src.fetch is not None:
        return src.url_template
    return (src.url_template.replace("{base}", base).replace("{expiry:%Y-%m-%d}", "<expiry YYYY-MM-DD>")
            .replace("{code}", "<month letter><YY>"))


def write_sources_md(dest: Path, report: FetchReport, sources: Sequence[Source],
                      bases: dict[str, str]) -> None:
    metas = []
    for p in sorted(dest.rglob("*.meta.json")):
        m = read_json(p)
        if m and m.get("target"):
            metas.append(m)
    contract_sources = [s for s in CATALOGUE.values() if s.per_contract]
    daily = [m for m in metas if m.get("source") not in {s.name for s in contract_sources}]
    vx = sorted((m for m in metas if m.get("source") in {s.name for s in contract_sources}),
                key=lambda m: m["target"])
    known = {m["target"] for m in metas} | {"vx_futures/contracts_index.csv", "SOURCES.md"}
    foreign = sorted(
        p.relative_to(dest).as_posix() for p in dest.rglob("*.csv")
        if p.relative_to(dest).as_posix() not in known and not p.name.startswith(".")
    )

    def cell(x: object) -> str:
        return "" if x is None else str(x).replace("|", "\\|")

    lines = [
        "# Market data sources (downloaded by `alvh data fetch`)",
        "",
        f"Written by `alvh data fetch` at {report.finished_at} (UTC). The layout matches `shared/data`:",
        "ISO `YYYY-MM-DD` dates, lower-case snake_case columns, the vendor's values as text",
        "(FRED's `.` for a missing observation becomes an empty cell), rows ascending by date.",
        "Each file has a `<file>.meta.json` sidecar with its URL, fetch time, sha256 and HTTP validators.",
        "See `docs/fetch.md` in the alvh repository for details and limitations.",
        "",
        "## Last run",
        "",
        f"* Started {report.started_at}, finished {report.finished_at}.",
        f"* {report.summary()}",
    ]
    for r in report.failed:
        lines.append(f"* FAILED: {r.error}")
    if report.stopped:
        lines.append(f"* STOPPED: {report.stopped}.")
    lines += [f"* NOTE: {n}." for n in report.notices]
    if report.check_errors:
        lines.append(f"* `alvh data check` errors: {len(report.check_errors)} (first: {report.check_errors[0]})")
    lines += ["", "## Files", "",
              "| file | series | URL | fetched (UTC) | last confirmed (UTC) | rows | first date | last date | sha256 |",
              "|---|---|---|---|---|---|---|---|---|"]
    for m in sorted(daily, key=lambda m: m["target"]):
        lines.append("| " + " | ".join(cell(x) for x in (
            f"`{m['target']}`", m.get("description") or m.get("source"), m.get("url"), m.get("fetched_at"),
            m.get("checked_at"), m.get("rows"), m.get("first_date"), m.get("last_date"),
            (m.get("sha256") or "")[:12])) + " |")
    if vx:
        eras = "; ".join(
            f"{src.start} to {src.end or 'today + ' + str(src.months_ahead) + ' months'}: "
            f"`{url_pattern(src, bases.get(src.name, DEFAULT_BASES[src.group]))}`"
            for src in sorted(contract_sources, key=lambda s: s.start))
        lines += [
            "", "## VX futures (`vx_futures/`)", "",
            (f"CFE VX futures daily settlements, one file per monthly contract: {len(vx)} contracts, "
             f"{vx[0]['target'].split('/')[-1]} to {vx[-1]['target'].split('/')[-1]}, from {eras}. "
             f"`source` column: {', '.join(f'`{t}`' for t in VX_FETCHED_TAGS)}; `futures_label` is the exchange's "
             "own label. `contracts_index.csv` is regenerated after every fetch."),
            "",
            "| contract file | URL | fetched (UTC) | rows | first date | last date |",
            "|---|---|---|---|---|---|",
        ]
        for m in vx:
            lines.append("| " + " | ".join(cell(x) for x in (
                f"`{m['target']}`", m.get("url"), m.get("fetched_at"), m.get("rows"), m.get("first_date"),
                m.get("last_date"))) + " |")
    if foreign:
        lines += ["", "## Files present but not fetched by alvh", "",
                  "Kept unchanged (files brought by the user, for example the VIX ETPs or event calendars):", ""]
        lines += [f"* `{f}`" for f in foreign]
    lines += ["", "## Terms", "",
              "Cboe/CFE, S&P DJI (via Cboe, Yahoo or Stooq) and FRED data have their own redistribution terms. This cache is",
              "for local research use; do not redistribute it.", ""]
    atomic_write(dest / "SOURCES.md", "\n".join(lines).encode("utf-8"))
