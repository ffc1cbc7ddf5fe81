"""``alvh data fetch``: download the public data sources into a local cache directory.

The cache uses exactly the layout of ``shared/data`` (see ``docs/fetch.md``), so the rest of
alvh reads it unchanged. HTTP is plain :mod:`urllib.request`; nothing here needs a network
library.

Per file the fetcher

1. skips the download when the file is present, matches its ``<file>.meta.json`` sidecar
   (sha256) and is younger than ``max_age_days`` (a settled VX contract is never re-fetched);
   a stale file is revalidated with ``If-None-Match`` / ``If-Modified-Since``;
2. downloads the raw body to ``<file>.part``, resuming an interrupted download with an HTTP
   ``Range`` request (a server that answers 200 instead of 206 restarts it from byte 0);
3. normalizes the complete body, and only then replaces ``<file>`` atomically (``os.replace``).

A failed, partial or unparseable download never touches an existing file. Every request has
a socket timeout and a total deadline; transient failures are retried with capped exponential
backoff. One failing source does not stop the others; the report (and the exit status of
``alvh data fetch``) says which failed and why.
"""
from __future__ import annotations

import argparse
import contextlib
import csv
import hashlib
import http.client
import io
import json
import os
import re
import socket
import sys
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Iterable, Sequence
from concurrent.futures import ThreadPoolExecutor, as_completed
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from pathlib import Path

from adapters.data.public_sources import (
    CATALOGUE,
    DEFAULT_BASES,
    ENV_BASE,
    VX_SOURCE_TAG,
    Download,
    NormalizeContext,
    NormalizeError,
    Source,
    parse_base_overrides,
    redact_url,
    resolve_base,
    select_sources,
)

__all__ = [
    "FetchReport",
    "FetchResult",
    "default_dest",
    "fetch_all",
    "main_fetch",
    "rebuild_contracts_index",
]

USER_AGENT = "Mozilla/5.0 (compatible; alvh-data-fetch/0.1)"
CHUNK = 64 * 1024
BACKOFF_CAP_S = 8.0
TOTAL_TIMEOUT_FACTOR = 10          # whole-body deadline = timeout * this
STALE_PART_S = 24 * 3600           # a .part older than this is not resumed
SHRINK_TOLERANCE = 0.9             # refuse a download with < 90 % of the existing rows
INDEX_COLUMNS = ["contract_month", "expiry", "first_date", "last_date", "rows", "rows_with_prices",
                 "rows_settle_zero", "expired_in_data", "source", "expiry_label_corrected"]
_RETRY_STATUS = {408, 425, 429}


# --------------------------------------------------------------------------- results


@dataclass
class FetchResult:
    source: str
    target: str          # path relative to dest
    url: str
    status: str          # fetched | skipped | not_modified | unlisted | failed
    error: str | None = None
    rows: int | None = None
    bytes: int = 0
    attempts: int = 0
    notes: list[str] = field(default_factory=list)


@dataclass
class FetchReport:
    dest: Path
    results: list[FetchResult] = field(default_factory=list)
    started_at: str = ""
    finished_at: str = ""
    partial: bool = False                 # only some catalogue sources were requested
    check_ok: bool | None = None          # None: validation not run / not available
    check_errors: list[str] = field(default_factory=list)
    check_warnings: list[str] = field(default_factory=list)
    unprovided: list[str] = field(default_factory=list)   # missing files fetch cannot provide
    notes: list[str] = field(default_factory=list)

    def by_status(self, status: str) -> list[FetchResult]:
        return [r for r in self.results if r.status == status]

    @property
    def failed(self) -> list[FetchResult]:
        return self.by_status("failed")

    @property
    def ok(self) -> bool:
        """No source failed, and ``check_data`` passed (its errors are not blocking when only
        some sources were requested, since the others may legitimately be absent)."""
        return not self.failed and (self.check_ok is not False or self.partial)

    def summary(self) -> str:
        counts = {s: len(self.by_status(s)) for s in ("fetched", "not_modified", "skipped", "unlisted", "failed")}
        parts = [f"{n} {s.replace('_', ' ')}" for s, n in counts.items() if n]
        check = {True: "data check passed", False: f"data check found {len(self.check_errors)} error(s)",
                 None: "data check not run"}[self.check_ok]
        return f"alvh data fetch -> {self.dest}: {', '.join(parts) or 'nothing to do'}; {check}."


class FetchError(Exception):
    """A download failed; ``str()`` is one sentence naming the URL."""


class _Retryable(Exception):
    pass


class _Permanent(Exception):
    def __init__(self, code: int, message: str):
        super().__init__(message)
        self.code = code


_NOT_MODIFIED = object()


# --------------------------------------------------------------------------- small helpers


def default_dest() -> Path:
    """``$ALVH_CACHE_DIR/data`` if set, else ``~/.cache/alvh/data``."""
    root = os.environ.get("ALVH_CACHE_DIR")
    return (Path(root).expanduser() if root else Path.home() / ".cache" / "alvh") / "data"


def _now() -> datetime:
    return datetime.now(UTC)


def _iso(ts: datetime) -> str:
    return ts.astimezone(UTC).replace(microsecond=0).isoformat().replace("+00:00", "Z")


def _parse_ts(s: str | None) -> datetime | None:
    if not s:
        return None
    try:
        ts = datetime.fromisoformat(s)
    except ValueError:
        return None
    return ts if ts.tzinfo else ts.replace(tzinfo=UTC)


def _sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def _sha256_file(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def _read_json(path: Path) -> dict | None:
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None


def _atomic_write(path: Path, data: bytes) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.{threading.get_ident()}.tmp")
    try:
        with open(tmp, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    finally:
        with contextlib.suppress(FileNotFoundError):
            tmp.unlink()


def _write_json(path: Path, obj: dict) -> None:
    _atomic_write(path, (json.dumps(obj, indent=2, sort_keys=True) + "\n").encode())


def _meta_path(target: Path) -> Path:
    return target.with_name(target.name + ".meta.json")


def _part_path(target: Path) -> Path:
    return target.with_name(target.name + ".part")


def _part_info_path(target: Path) -> Path:
    return target.with_name(target.name + ".part.json")


def _reason(exc: BaseException) -> str:
    if isinstance(exc, urllib.error.URLError) and not isinstance(exc, urllib.error.HTTPError):
        exc = exc.reason if isinstance(exc.reason, BaseException) else exc
    if isinstance(exc, (TimeoutError, socket.timeout)):
        return "timed out"
    if isinstance(exc, http.client.IncompleteRead):
        return "connection closed mid-body"
    text = str(exc) or exc.__class__.__name__
    return text.rstrip(".")


@dataclass
class _Stats:
    header: list[str]
    rows: int
    last_date: str | None


def _file_stats(path: Path) -> _Stats | None:
    """Header, data-row count and last first-column value of a normalized CSV."""
    try:
        with open(path, newline="", encoding="utf-8") as f:
            reader = csv.reader(f)
            header = next(reader, None)
            if not header:
                return None
            rows, last = 0, None
            for row in reader:
                if row:
                    rows += 1
                    last = row[0]
    except (OSError, UnicodeDecodeError, csv.Error):
        return None
    return _Stats(header, rows, last)


# --------------------------------------------------------------------------- HTTP


def _attempt(url: str, target: Path, *, timeout: float, conditional: dict[str, str],
             notes: list[str]) -> tuple[bytes, dict[str, str]] | object:
    """One HTTP request; the body goes to ``<target>.part`` (resumed when it exists)."""
    part, part_info = _part_path(target), _part_info_path(target)
    info = _read_json(part_info) or {}
    offset = part.stat().st_size if part.exists() else 0
    if offset and info.get("url") not in (None, redact_url(url)):
        offset = 0
    headers = {"User-Agent": USER_AGENT, "Accept-Encoding": "identity", "Accept": "text/csv, text/plain, */*"}
    if offset:
        headers["Range"] = f"bytes={offset}-"
        etag = info.get("etag") or ""
        validator = etag if etag and not etag.startswith("W/") else info.get("last_modified")
        if validator:
            headers["If-Range"] = validator
    else:
        if conditional.get("etag"):
            headers["If-None-Match"] = conditional["etag"]
        if conditional.get("last_modified"):
            headers["If-Modified-Since"] = conditional["last_modified"]

    started = time.monotonic()
    deadline = timeout * TOTAL_TIMEOUT_FACTOR         # whole request, however slowly bytes trickle in
    try:
        resp = urllib.request.urlopen(urllib.request.Request(url, headers=headers), timeout=timeout)
    except urllib.error.HTTPError as e:
        with contextlib.suppress(Exception):
            e.close()
        if e.code == 304:
            return _NOT_MODIFIED
        if e.code == 416 and offset:
            part.unlink(missing_ok=True)
            part_info.unlink(missing_ok=True)
            raise _Retryable("the server rejected the resume range (HTTP 416), restarting") from None
        msg = f"HTTP {e.code} {e.reason}".strip()
        if e.code in _RETRY_STATUS or e.code >= 500:
            raise _Retryable(msg) from None
        raise _Permanent(e.code, msg) from None
    except (urllib.error.URLError, OSError, http.client.HTTPException, ValueError) as e:
        raise _Retryable(_reason(e)) from None

    with resp:
        etag = resp.headers.get("ETag")
        last_modified = resp.headers.get("Last-Modified")
        total: int | None
        if resp.status == 206 and offset:
            m = re.match(r"\s*bytes\s+(\d+)-(\d+)/(\d+|\*)", resp.headers.get("Content-Range", ""))
            if not m or int(m.group(1)) != offset:
                part.unlink(missing_ok=True)
                raise _Retryable("the server answered the resume request with an unexpected Content-Range, "
                                 "restarting")
            total = None if m.group(3) == "*" else int(m.group(3))
            mode = "ab"
        else:
            if offset:
                notes.append(f"server ignored the Range request (HTTP {resp.status}); restarted from byte 0")
            offset = 0
            mode = "wb"
            cl = resp.headers.get("Content-Length", "")
            total = int(cl) if cl.strip().isdigit() else None
            _write_json(part_info, {"url": redact_url(url), "etag": etag, "last_modified": last_modified,
                                    "started_at": _iso(_now())})
        read1 = getattr(resp, "read1", resp.read)    # at most one recv per call: the deadline holds
        with open(part, mode) as f:
            while True:
                if time.monotonic() - started > deadline:
                    raise _Retryable(f"the download took longer than {deadline:g} s")
                try:
                    chunk = read1(CHUNK)
                except (OSError, http.client.HTTPException, ValueError) as e:
                    raise _Retryable(_reason(e)) from None
                if not chunk:
                    break
                f.write(chunk)
    size = part.stat().st_size
    if total is not None and size < total:
        raise _Retryable(f"the connection closed after {size} of {total} bytes")
    if total is not None and size > total:
        part.unlink(missing_ok=True)
        raise _Retryable(f"received {size} bytes but {total} were announced, restarting")
    return part.read_bytes(), {"etag": etag or info.get("etag"),
                               "last_modified": last_modified or info.get("last_modified")}


def _download(job: Download, target: Path, *, timeout: float, retries: int, backoff: float,
              conditional: dict[str, str], result: FetchResult):
    part, part_info = _part_path(target), _part_info_path(target)
    if part.exists():
        info = _read_json(part_info) or {}
        started = _parse_ts(info.get("started_at"))
        age = (_now() - started).total_seconds() if started else time.time() - part.stat().st_mtime
        if age > STALE_PART_S:
            part.unlink(missing_ok=True)
            part_info.unlink(missing_ok=True)
    last: Exception | None = None
    for attempt in range(1, max(1, retries) + 1):
        result.attempts = attempt
        try:
            return _attempt(job.url, target, timeout=timeout, conditional=conditional, notes=result.notes)
        except _Permanent:
            raise
        except _Retryable as e:
            last = e
        if attempt < retries:
            time.sleep(min(BACKOFF_CAP_S, backoff * 2 ** (attempt - 1)))
    tries = f"{retries} attempts" if retries > 1 else "1 attempt"
    raise FetchError(f"{job.source}: download of {redact_url(job.url)} failed after {tries}: {last}.")


# --------------------------------------------------------------------------- one file


@dataclass
class _Options:
    dest: Path
    max_age_days: float
    timeout: float
    retries: int
    backoff: float
    now: datetime
    today: date


def _is_settled_user_file(target: Path, job: Download, today: date) -> bool:
    """A VX contract file the user brought (no sidecar) that already runs to expiry."""
    if job.expiry is None or job.immutable_after is None or today <= job.immutable_after:
        return False
    st = _file_stats(target)
    return bool(st and st.header[:1] == ["trade_date"] and st.last_date and st.last_date >= job.expiry.isoformat())


def _run_job(job: Download, opt: _Options) -> FetchResult:
    target = opt.dest / job.target
    res = FetchResult(job.source, job.target, redact_url(job.url), "failed")
    try:
        return _run_job_inner(job, target, opt, res)
    except Exception as e:  # noqa: BLE001 - one bad file must not stop the others
        res.status = "failed"
        res.error = f"{job.source}: fetching {res.url} into {job.target} failed unexpectedly: {_reason(e)}."
        return res


def _run_job_inner(job: Download, target: Path, opt: _Options, res: FetchResult) -> FetchResult:
    target.parent.mkdir(parents=True, exist_ok=True)
    meta_path = _meta_path(target)
    meta = _read_json(meta_path) if target.exists() else None
    if meta and meta.get("sha256") != _sha256_file(target):
        meta = None                                   # file changed since we wrote it
    conditional: dict[str, str] = {}
    if meta:
        fetched = _parse_ts(meta.get("fetched_at"))
        confirmed = _parse_ts(meta.get("checked_at")) or fetched
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
    elif target.exists() and _is_settled_user_file(target, job, opt.today):
        res.status = "skipped"
        res.notes.append("settled contract file already present (not fetched by alvh); kept")
        return res

    try:
        got = _download(job, target, timeout=opt.timeout, retries=opt.retries, backoff=opt.backoff,
                        conditional=conditional, result=res)
    except _Permanent as e:
        if e.code == 404 and job.optional:
            res.status = "unlisted"
            res.notes.append("contract not listed yet (HTTP 404)")
            return res
        res.error = f"{job.source}: download of {res.url} failed: {e}."
        return res
    except FetchError as e:
        res.error = str(e)
        return res

    if got is _NOT_MODIFIED:
        assert meta is not None
        meta["checked_at"] = _iso(opt.now)
        _write_json(meta_path, meta)
        res.status, res.rows = "not_modified", meta.get("rows")
        return res

    raw, validators = got
    part, part_info = _part_path(target), _part_info_path(target)

    def discard_part() -> None:
        part.unlink(missing_ok=True)
        part_info.unlink(missing_ok=True)

    res.bytes = len(raw)
    try:
        text = raw.decode("utf-8-sig")
    except UnicodeDecodeError:
        text = raw.decode("latin-1")
    ctx = NormalizeContext(job.source, res.url, expiry=job.expiry, now=opt.now)
    try:
        norm = job.normalize(text, ctx)
    except NormalizeError as e:
        discard_part()
        hint = f" ({job.hint})" if job.hint else ""
        res.error = f"{job.source}: {res.url} returned unusable data: {e}{hint}."
        return res
    res.notes.extend(norm.notes)

    old = _file_stats(target) if target.exists() else None
    if old and old.rows and old.last_date and norm.last_date and (
            norm.last_date < old.last_date or norm.rows < SHRINK_TOLERANCE * old.rows):
        discard_part()
        res.error = (f"{job.source}: {res.url} returned {norm.rows} rows through {norm.last_date}, less than the "
                     f"existing {job.target} ({old.rows} rows through {old.last_date}), so the existing file was kept.")
        return res

    data = norm.text.encode("utf-8")
    sha = _sha256(data)
    if not (target.exists() and _sha256_file(target) == sha):
        _atomic_write(target, data)
    else:
        res.notes.append("content unchanged")
    _write_json(meta_path, {
        "source": job.source,
        "url": res.url,
        "target": job.target,
        "fetched_at": _iso(opt.now),
        "checked_at": _iso(opt.now),
        "sha256": sha,
        "raw_sha256": _sha256(raw),
        "raw_bytes": len(raw),
        "etag": validators.get("etag"),
        "last_modified": validators.get("last_modified"),
        "rows": norm.rows,
        "first_date": norm.first_date,
        "last_date": norm.last_date,
        "expiry": job.expiry.isoformat() if job.expiry else None,
        "notes": norm.notes,
    })
    discard_part()
    res.status, res.rows = "fetched", norm.rows
    return res


# --------------------------------------------------------------------------- VX index


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
        if prev is None or file_source == VX_SOURCE_TAG:
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
        _atomic_write(index, buf.getvalue().encode("utf-8"))
    return len(out)


# --------------------------------------------------------------------------- SOURCES.md


def _url_pattern(src: Source, base: str) -> str:
    if src.url_template.startswith("{base}/"):
        base = base.rstrip("/")
    return src.url_template.replace("{base}", base).replace("{expiry:%Y-%m-%d}", "<expiry YYYY-MM-DD>")


def _write_sources_md(dest: Path, report: FetchReport, sources: Sequence[Source],
                      bases: dict[str, str]) -> None:
    metas = []
    for p in sorted(dest.rglob("*.meta.json")):
        m = _read_json(p)
        if m and m.get("target"):
            metas.append(m)
    daily = [m for m in metas if m.get("source") != "vx"]
    vx = sorted((m for m in metas if m.get("source") == "vx"), key=lambda m: m["target"])
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
    if report.check_errors:
        lines.append(f"* `alvh data check` errors: {len(report.check_errors)} (first: {report.check_errors[0]})")
    lines += ["", "## Files", "",
              "| file | series | URL | fetched (UTC) | last confirmed (UTC) | rows | first date | last date | sha256 |",
              "|---|---|---|---|---|---|---|---|---|"]
    for m in sorted(daily, key=lambda m: m["target"]):
        src = CATALOGUE.get(m.get("source", ""))
        lines.append("| " + " | ".join(cell(x) for x in (
            f"`{m['target']}`", src.description if src else m.get("source"), m.get("url"), m.get("fetched_at"),
            m.get("checked_at"), m.get("rows"), m.get("first_date"), m.get("last_date"),
            (m.get("sha256") or "")[:12])) + " |")
    if vx:
        src = CATALOGUE["vx"]
        lines += [
            "", "## VX futures (`vx_futures/`)", "",
            (f"{src.description}. {len(vx)} contracts from Cboe's CDN, "
             f"`{_url_pattern(src, bases.get('vx', DEFAULT_BASES['cboe_vx']))}`, "
             f"{vx[0]['target'].split('/')[-1]} to {vx[-1]['target'].split('/')[-1]}. "
             f"`source` column: `{VX_SOURCE_TAG}`; `futures_label` is Cboe's own label. "
             "`contracts_index.csv` is regenerated after every fetch."),
            "Contracts expiring before 2013 are not on that CDN (see docs/fetch.md).",
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
                  "Kept unchanged (for example VX contracts before 2013 brought by the user):", ""]
        lines += [f"* `{f}`" for f in foreign]
    lines += ["", "## Terms", "",
              "Cboe/CFE, S&P DJI (via Stooq) and FRED data have their own redistribution terms. This cache is",
              "for local research use; do not redistribute it.", ""]
    _atomic_write(dest / "SOURCES.md", "\n".join(lines).encode("utf-8"))


# --------------------------------------------------------------------------- validation


def _run_check(dest: Path, report: FetchReport) -> None:
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
        return m.group(1) >= CATALOGUE["vx"].start
    return rel.startswith("vx_futures/") or rel in {s.target for s in CATALOGUE.values() if not s.per_contract}


# --------------------------------------------------------------------------- entry points


@contextlib.contextmanager
def _dest_lock(dest: Path):
    try:
        import fcntl
    except ImportError:          # not POSIX: no lock
        yield
        return
    with open(dest / ".fetch.lock", "w") as fh:
        try:
            fcntl.flock(fh, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            raise RuntimeError(f"another `alvh data fetch` is already writing to {dest}") from None
        try:
            yield
        finally:
            fcntl.flock(fh, fcntl.LOCK_UN)


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
    now = now or _now()
    report = FetchReport(dest=dest, started_at=_iso(_now()),
                         partial={s.name for s in chosen} != set(CATALOGUE))
    opt = _Options(dest, max_age_days, timeout, retries, backoff, now, today)

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

    with _dest_lock(dest):
        show = progress and sys.stderr.isatty()
        bar = None
        if show and jobs:
            from tqdm import tqdm

            bar = tqdm(total=len(jobs), unit="file", desc="alvh data fetch", file=sys.stderr, leave=False)
        try:
            with ThreadPoolExecutor(max_workers=max(1, workers)) as pool:
                futures = {pool.submit(_run_job, job, opt): job for job in jobs}
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
        report.finished_at = _iso(_now())
        if check:
            _run_check(dest, report)
        _write_sources_md(dest, report, chosen, bases)
    return report


def _build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="alvh data fetch",
        description="Download the public market-data sources (Cboe, CFE, FRED, Stooq) into a local cache "
                    "in the layout alvh reads, then validate it like `alvh data check`.",
    )
    p.add_argument("--dest", type=Path, default=None, metavar="DIR",
                   help="target directory (default: $ALVH_CACHE_DIR/data or ~/.cache/alvh/data)")
    p.add_argument("--only", action="append", default=None, metavar="NAME[,NAME]",
                   help=f"fetch only these sources: {', '.join(CATALOGUE)}")
    p.add_argument("--max-age", type=float, default=1.0, metavar="DAYS",
                   help="re-check files older than this many days (default 1; 0 = always)")
    p.add_argument("--quiet", action="store_true", help="no progress bar, print errors only")
    p.add_argument("--timeout", type=float, default=30.0, metavar="SECONDS",
                   help="timeout per network operation (default 30)")
    p.add_argument("--base-url-override", action="append", default=[], metavar="NAME=URL",
                   help="replace a base URL; NAME is a source, a group "
                        f"({', '.join(DEFAULT_BASES)}) or '*' for a mirror root; also ${ENV_BASE}")
    p.add_argument("--no-check", action="store_true", help="skip the `alvh data check` validation")
    p.add_argument("--list", action="store_true", help="list the catalogue and exit")
    return p


def main_fetch(argv: Sequence[str] | None = None) -> int:
    """Entry point of ``alvh data fetch``; returns the process exit status (0 = all good)."""
    parser = _build_parser()
    try:
        args = parser.parse_args(list(argv) if argv is not None else None)
    except SystemExit as e:          # --help or a usage error
        return int(e.code or 0) if not isinstance(e.code, str) else 2

    if args.list:
        for src in CATALOGUE.values():
            print(f"{src.name:7s} {src.target:36s} {_url_pattern(src, DEFAULT_BASES[src.group])}")
        return 0
    try:
        overrides = parse_base_overrides(args.base_url_override)
        only = None if not args.only else [n for item in args.only for n in item.split(",") if n.strip()]
        if only is not None:
            select_sources(only)
    except (ValueError, KeyError) as e:
        print(f"alvh data fetch: {e.args[0] if e.args else e}", file=sys.stderr)
        return 2
    if args.max_age < 0 or args.timeout <= 0:
        print("alvh data fetch: --max-age must be >= 0 and --timeout > 0", file=sys.stderr)
        return 2

    dest = args.dest.expanduser() if args.dest else default_dest()
    try:
        report = fetch_all(dest, sources=only, base_overrides=overrides, max_age_days=args.max_age,
                           progress=not args.quiet, timeout=args.timeout, check=not args.no_check)
    except (OSError, RuntimeError) as e:
        print(f"alvh data fetch: {e}", file=sys.stderr)
        return 1

    for r in report.failed:
        print(f"error: {r.error}", file=sys.stderr)
    for e in report.check_errors:
        label = "warning" if report.partial else "error"
        print(f"{label}: data check: {e}", file=sys.stderr)
    if not args.quiet:
        for n in report.notes:
            print(f"note: {n}")
        for w in report.check_warnings[:20]:
            print(f"warning: data check: {w}")
        print(report.summary())
    return 0 if report.ok else 1


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main_fetch())
