"""One catalogue file: skip it when fresh, revalidate when stale, otherwise download, normalize and
replace it atomically. A failed, partial, unparseable or suspiciously short download never touches
the existing file."""
from __future__ import annotations

import threading
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from pathlib import Path

from adapters.data.public_sources import Download, NormalizeContext, NormalizeError, redact_url

from .download import NOT_MODIFIED, FetchError, Permanent, download, reason
from .files import (
    atomic_write,
    discard_part,
    file_stats,
    iso,
    meta_path,
    parse_ts,
    read_json,
    sha256,
    sha256_file,
    write_json,
)
from .report import FetchResult

SHRINK_TOLERANCE = 0.9             # refuse a download with < 90 % of the existing rows


@dataclass
class JobOptions:
    dest: Path
    max_age_days: float
    timeout: float
    retries: int
    backoff: float
    now: datetime
    today: date
    abort: threading.Event | None = None      # set when the network is unreachable: stop waiting


def is_settled_user_file(target: Path, job: Download, today: date) -> bool:
    """A VX contract file the user brought (no sidecar) that already runs to expiry."""
    if job.expiry is None or job.immutable_after is None or today <= job.immutable_after:
        return False
    st = file_stats(target)
    return bool(st and st.header[:1] == ["trade_date"] and st.last_date and st.last_date >= job.expiry.isoformat())


def _library_fetch(job: Download, opt: JobOptions, res: FetchResult) -> tuple[bytes, dict[str, str]] | None:
    """A source read through a maintained client library (Yahoo via yfinance): one call, the library
    does its own retries; None when it failed (``res.error`` says why)."""
    res.attempts = 1
    try:
        text = job.fetch(opt.timeout)
    except ImportError as e:
        res.error = (f"{job.source}: {res.url} needs the optional library {e.name or 'yfinance'}: "
                     "`pip install 'alvh[fetch]'`, or choose another provider (docs/fetch.md).")
        return None
    except Exception as e:  # noqa: BLE001 - any library failure is one failed file
        res.error = f"{job.source}: {res.url} failed: {reason(e)}{f' ({job.hint})' if job.hint else ''}."
        return None
    return text.encode("utf-8"), {}


def run_job(job: Download, opt: JobOptions) -> FetchResult:
    target = opt.dest / job.target
    res = FetchResult(job.source, job.target, redact_url(job.url), "failed", notice=job.notice)
    if opt.abort is not None and opt.abort.is_set():      # the network is down: do not try
        res.status = "not_tried"
        return res
    try:
        return _run_job_inner(job, target, opt, res)
    except Exception as e:  # noqa: BLE001 - one bad file must not stop the others
        res.status = "failed"
        res.error = f"{job.source}: fetching {res.url} into {job.target} failed unexpectedly: {reason(e)}."
        return res


def _run_job_inner(job: Download, target: Path, opt: JobOptions, res: FetchResult) -> FetchResult:
    target.parent.mkdir(parents=True, exist_ok=True)
    sidecar = meta_path(target)
    meta = read_json(sidecar) if target.exists() else None
    if meta and meta.get("sha256") != sha256_file(target):
        meta = None                                   # file changed since we wrote it
    conditional: dict[str, str] = {}
    if meta:
        fetched = parse_ts(meta.get("fetched_at"))
        confirmed = parse_ts(meta.get("checked_at")) or fetched
        if job.immutable_after and fetched and fetched.date() > job.immutable_after:
            res.status, res.rows = "skipped", meta.get("rows")
            res.notes.append("settled contract already downloaded")
            return res
        if confirmed and (opt.now - confirmed) < timedelta(days=opt.max_age_days):
            res.status, res.rows = "skipped", meta.get("rows")
            res.notes.append("fresh")
            return res
        if meta.get("url") == res.url:
            conditional = {k: meta[k] for k in ("etag", "last_modified") if meta.get(k)}
    elif target.exists() and is_settled_user_file(target, job, opt.today):
        res.status = "skipped"
        res.notes.append("settled contract file already present (not fetched by alvh); kept")
        return res

    if job.fetch is not None:
        got = _library_fetch(job, opt, res)
        if got is None:
            return res
    else:
        try:
            got = download(job, target, timeout=opt.timeout, retries=opt.retries, backoff=opt.backoff,
                           conditional=conditional, result=res, abort=opt.abort)
        except Permanent as e:
            if e.code == 404 and job.optional:
                res.status = "unlisted"
                res.notes.append("contract not listed (HTTP 404)")
                return res
            res.error = f"{job.source}: download of {res.url} failed: {e}."
            return res
        except FetchError as e:
            res.error, res.unreachable = str(e), e.unreachable
            return res

    if got is NOT_MODIFIED:
        assert meta is not None
        meta["checked_at"] = iso(opt.now)
        write_json(sidecar, meta)
        res.status, res.rows = "not_modified", meta.get("rows")
        return res

    raw, validators = got
    res.bytes = len(raw)
    try:
        text = raw.decode("utf-8-sig")
    except UnicodeDecodeError:
        text = raw.decode("latin-1")
    ctx = NormalizeContext(job.source, res.url, expiry=job.expiry, now=opt.now)
    try:
        norm = job.normalize(text, ctx)
    except NormalizeError as e:
        discard_part(target)
        hint = f" ({job.hint})" if job.hint else ""
        res.error = f"{job.source}: {res.url} returned unusable data: {e}{hint}."
        return res
    res.notes.extend(norm.notes)

    old = file_stats(target) if target.exists() else None
    if old and old.rows and old.last_date and norm.last_date and (
            norm.last_date < old.last_date or norm.rows < SHRINK_TOLERANCE * old.rows):
        discard_part(target)
        res.error = (f"{job.source}: {res.url} returned {norm.rows} rows through {norm.last_date}, less than the "
                     f"existing {job.target} ({old.rows} rows through {old.last_date}), so the existing file was kept.")
        return res

    data = norm.text.encode("utf-8")
    sha = sha256(data)
    if not (target.exists() and sha256_file(target) == sha):
        atomic_write(target, data)
    else:
        res.notes.append("content unchanged")
    write_json(sidecar, {
        "source": job.source,
        "description": job.description,
        "url": res.url,
        "target": job.target,
        "fetched_at": iso(opt.now),
        "checked_at": iso(opt.now),
        "sha256": sha,
        "raw_sha256": sha256(raw),
        "raw_bytes": len(raw),
        "etag": validators.get("etag"),
        "last_modified": validators.get("last_modified"),
        "rows": norm.rows,
        "first_date": norm.first_date,
        "last_date": norm.last_date,
        "expiry": job.expiry.isoformat() if job.expiry else None,
        "notes": norm.notes,
    })
    discard_part(target)
    res.status, res.rows = "fetched", norm.rows
    return res
