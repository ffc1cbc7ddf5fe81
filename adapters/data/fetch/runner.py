"""``fetch_all``: build the download list from the catalogue, run the jobs in parallel, rebuild the
VX contracts index, validate the directory and write its ``SOURCES.md``."""
from __future__ import annotations

import sys
from collections.abc import Iterable
from concurrent.futures import ThreadPoolExecutor, as_completed
from datetime import date, datetime
from pathlib import Path

from adapters.data.public_sources import (
    CATALOGUE,
    DEFAULT_BASES,
    Download,
    Source,
    resolve_base,
    select_sources,
)

from .check import run_check
from .contracts_index import rebuild_contracts_index
from .files import dest_lock, iso, now_utc
from .job import JobOptions, run_job
from .report import FetchReport, FetchResult
from .sources_md import url_pattern, write_sources_md


def catalogue_lines() -> list[str]:
    """One line per catalogue source: name, target file, default URL pattern (for ``--list``)."""
    return [f"{src.name:7s} {src.target:36s} {url_pattern(src, DEFAULT_BASES[src.group])}"
            for src in CATALOGUE.values()]


def fetch_all(dest: Path, *, sources: Iterable[str | Source] | str | None = None,
              base_overrides: dict[str, str] | None = None, max_age_days: float = 1.0,
              progress: bool = True, timeout: float = 30.0, retries: int = 3, backoff: float = 1.0,
              workers: int = 4, check: bool = True, today: date | None = None,
              now: datetime | None = None) -> FetchReport:
    """Download the public sources into ``dest`` (layout of shared/data) and validate it.

    ``sources``: catalogue names (``vix``, ``vix9d``, ``vix3m``, ``vix6m``, ``vvix``, ``skew``,
    ``vx``, ``dtb3``, ``dff``, ``spx``) or :class:`Source` objects; ``None`` = all.
    ``base_overrides``: ``{name: base_url}`` where name is a source, a host group
    (``cboe_index``, ``cboe_vx``, ``fred``, ``stooq``) or ``"*"`` (mirror root that keeps each
    default URL's path); ``$ALVH_FETCH_BASE`` is consulted after explicit overrides.
    ``timeout``: seconds per socket operation (the whole body has ``timeout * 10``).
    ``retries``: attempts per file; waits ``backoff * 2**k`` s (capped at 8 s) in between.
    ``workers``: files downloaded in parallel. ``check``: run ``check_data(dest)`` afterwards.
    ``today`` / ``now`` (aware UTC): injectable clock for tests; VX contracts expiring after
    ``today`` are optional (HTTP 404 = not listed yet).
    Never raises for a failing source: see ``FetchReport.failed``.
    """
    dest = Path(dest).expanduser()
    dest.mkdir(parents=True, exist_ok=True)
    chosen = select_sources(sources)
    today = today or (now.date() if now else date.today())
    now = now or now_utc()
    report = FetchReport(dest=dest, started_at=iso(now_utc()),
                         partial={s.name for s in chosen} != set(CATALOGUE))
    opt = JobOptions(dest, max_age_days, timeout, retries, backoff, now, today)

    jobs: list[Download] = []
    bases: dict[str, str] = {}
    for src in chosen:
        try:
            base = resolve_base(src, base_overrides)
            bases[src.name] = base
            jobs.extend(src.downloads(base, today))
        except Exception as e:  # noqa: BLE001 - e.g. engine.calendar.vix_expiry missing
            report.results.append(FetchResult(src.name, src.target, src.url_template, "failed",
                                              error=f"{src.name}: could not build the download list: {e}."))

    with dest_lock(dest):
        show = progress and sys.stderr.isatty()
        bar = None
        if show and jobs:
            from tqdm import tqdm

            bar = tqdm(total=len(jobs), unit="file", desc="alvh data fetch", file=sys.stderr, leave=False)
        try:
            with ThreadPoolExecutor(max_workers=max(1, workers)) as pool:
                futures = {pool.submit(run_job, job, opt): job for job in jobs}
                for fut in as_completed(futures):
                    res = fut.result()
                    report.results.append(res)
                    if bar is not None:
                        bar.set_postfix_str(res.target, refresh=False)
                        bar.update(1)
                        if res.status == "failed":
                            bar.write(res.error or "")
        finally:
            if bar is not None:
                bar.close()
        order = {(j.source, j.target): i for i, j in enumerate(jobs)}
        report.results.sort(key=lambda r: order.get((r.source, r.target), -1))

        if any(s.per_contract for s in chosen) and (dest / "vx_futures").is_dir():
            n = rebuild_contracts_index(dest / "vx_futures")
            report.notes.append(f"vx_futures/contracts_index.csv regenerated ({n} contracts)")
        report.finished_at = iso(now_utc())
        if check:
            run_check(dest, report)
        write_sources_md(dest, report, chosen, bases)
    return report
