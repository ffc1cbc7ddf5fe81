"""``fetch_all``: build the download list from the catalogue, run the jobs in parallel, rebuild the
VX contracts index, validate the directory and write its ``SOURCES.md``."""
from __future__ import annotations

import threading
from collections.abc import Iterable
from concurrent.futures import ThreadPoolExecutor, as_completed
from datetime import date, datetime
from pathlib import Path
from urllib.parse import urlsplit

from adapters.data.public_sources import (
    CATALOGUE,
    DEFAULT_BASES,
    Download,
    Source,
    redact_url,
    resolve_base,
    select_sources,
    spx_source,
)

from .check import run_check
from .contracts_index import rebuild_contracts_index
from .files import dest_lock, iso, now_utc
from .job import JobOptions, run_job
from .progress import Progress, progress_for
from .report import FetchReport, FetchResult
from .sources_md import url_pattern, write_sources_md

UNREACHABLE_STREAK = 3    # downloads in a row that could not reach a server before the run stops


def catalogue_lines() -> list[str]:
    """One line per catalogue source: name, target file, default URL pattern (for ``--list``), then
    the other SPX providers (``--spx-source``)."""
    lines = [f"{src.name:7s} {src.target:36s} {url_pattern(src, DEFAULT_BASES[src.group])}"
             for src in CATALOGUE.values()]
    for provider in ("yahoo", "stooq"):
        src = spx_source(provider)
        lines.append(f"{'spx':7s} {src.target:36s} {url_pattern(src, DEFAULT_BASES.get(src.group, ''))}"
                     f"  (--spx-source {provider})")
    return lines


def fetch_all(dest: Path, *, sources: Iterable[str | Source] | str | None = None,
              base_overrides: dict[str, str] | None = None, max_age_days: float = 1.0,
              progress: bool = True, timeout: float = 30.0, retries: int = 3, backoff: float = 1.0,
              workers: int = 4, check: bool = True, spx_provider: str = "auto", today: date | None = None,
              now: datetime | None = None) -> FetchReport:
    """Download the public sources into ``dest`` (layout of shared/data) and validate it.

    ``sources``: catalogue names (``vix``, ``vix9d``, ``vix3m``, ``vix6m``, ``vvix``, ``skew``,
    ``vx``, ``vx_cfe``, ``dtb3``, ``dff``, ``spx``) or :class:`Source` objects; ``None`` = all.
    ``base_overrides``: ``{name: base_url}`` where name is a source, a host group
    (``cboe_index``, ``cboe_vx``, ``cboe_cfe``, ``fred``, ``stooq``) or ``"*"`` (mirror root that keeps
    each default URL's path); ``$ALVH_FETCH_BASE`` is consulted after explicit overrides.
    ``timeout``: seconds per socket operation (the whole body has ``timeout * 10``).
    ``retries``: attempts per file; waits ``backoff * 2**k`` s (capped at 8 s) in between.
    ``workers``: files downloaded in parallel. ``check``: run ``check_data(dest)`` afterwards.
    ``spx_provider``: ``auto``, ``yahoo``, ``cboe`` or ``stooq`` (see ``public_sources.spx_source``).
    ``progress``: a bar on a terminal, progress lines on stderr otherwise.
    ``today`` / ``now`` (aware UTC): injectable clock for tests; VX contracts expiring after
    ``today`` are optional (HTTP 404 = not listed yet).
    After ``UNREACHABLE_STREAK`` downloads in a row that could not reach their server, the run stops
    (``FetchReport.stopped`` says why in one sentence). Never raises for a failing source: see
    ``FetchReport.failed``.
    """
    dest = Path(dest).expanduser()
    dest.mkdir(parents=True, exist_ok=True)
    chosen = [spx_source(spx_provider, base_overrides) if s is CATALOGUE["spx"] else s
              for s in select_sources(sources)]
    today = today or (now.date() if now else date.today())
    now = now or now_utc()
    report = FetchReport(dest=dest, started_at=iso(now_utc()),
                         partial={s.name for s in chosen} != set(CATALOGUE))
    opt = JobOptions(dest, max_age_days, timeout, retries, backoff, now, today, abort=threading.Event())

    jobs: list[Download] = []
    bases: dict[str, str] = {}
    for src in chosen:
        try:
            base = resolve_base(src, base_overrides) if src.fetch is None else ""   # a library needs no URL
            bases[src.name] = base
            jobs.extend(src.downloads(base, today))
        except Exception as e:  # noqa: BLE001 - e.g. engine.calendar.vix_expiry missing
            report.results.append(FetchResult(src.name, src.target, src.url_template, "failed",
                                              error=f"{src.name}: could not build the download list: {e}."))

    with dest_lock(dest):
        _run_jobs(jobs, opt, report, progress_for(len(jobs), progress), max(1, workers))
        order = {(j.source, j.target): i for i, j in enumerate(jobs)}
        report.results.sort(key=lambda r: order.get((r.source, r.target), -1))

        if any(s.per_contract for s in chosen) and (dest / "vx_futures").is_dir():
            n = rebuild_contracts_index(dest / "vx_futures")
            if n:
                report.notes.append(f"vx_futures/contracts_index.csv regenerated ({n} contracts)")
        report.finished_at = iso(now_utc())
        if check and not report.stopped:
            run_check(dest, report)
        write_sources_md(dest, report, chosen, bases)
    return report


def _run_jobs(jobs: list[Download], opt: JobOptions, report: FetchReport, bar: Progress, workers: int) -> None:
    """Run the jobs; stop when ``UNREACHABLE_STREAK`` in a row could not reach their server."""
    streak: list[FetchResult] = []
    try:
        with ThreadPoolExecutor(max_workers=workers) as pool:
            futures = {pool.submit(run_job, job, opt): job for job in jobs}
            for fut in as_completed(futures):
                if fut.cancelled():
                    continue
                res = fut.result()
                report.results.append(res)
                if res.status == "not_tried":
                    continue
                bar.update(res)
                streak = [*streak, res] if res.unreachable else []
                if len(streak) >= UNREACHABLE_STREAK and not report.stopped:
                    opt.abort.set()
                    for other, job in futures.items():
                        if other.cancel():
                            report.results.append(FetchResult(job.source, job.target, redact_url(job.url),
                                                              "not_tried"))
                    report.stopped = _stop_sentence(streak)
    finally:
        bar.close()


def _stop_sentence(streak: list[FetchResult]) -> str:
    hosts = sorted({urlsplit(r.url).hostname or r.url for r in streak})
    why = streak[-1].error or ""
    why = why.rsplit(": ", 1)[-1].rstrip(".") if ": " in why else why
    return (f"stopped after {len(streak)} downloads in a row could not reach {', '.join(hosts)} ({why}); "
            "check the network connection or proxy, or point --base-url-override at a mirror, then run "
            "`alvh data fetch` again (files already fetched are kept)")
