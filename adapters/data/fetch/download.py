"""HTTP download of one URL into ``<file>.part``: conditional requests, resume with ``Range``,
a socket timeout plus a whole-body deadline, and retries with capped exponential backoff."""
from __future__ import annotations

import contextlib
import http.client
import re
import socket
import threading
import time
import urllib.error
import urllib.request
from pathlib import Path

from adapters.data.public_sources import Download, redact_url

from .files import discard_part, iso, now_utc, parse_ts, part_info_path, part_path, read_json, write_json
from .report import FetchResult

USER_AGENT = "Mozilla/5.0 (compatible; alvh-data-fetch/0.1)"
CHUNK = 64 * 1024
BACKOFF_CAP_S = 8.0
TOTAL_TIMEOUT_FACTOR = 10          # whole-body deadline = timeout * this
STALE_PART_S = 24 * 3600           # a .part older than this is not resumed
_RETRY_STATUS = {408, 425, 429}


class FetchError(Exception):
    """A download failed; ``str()`` is one sentence naming the URL. ``unreachable``: the last attempt
    could not reach the server at all (DNS, refused, no route, connect timeout)."""

    def __init__(self, message: str, *, unreachable: bool = False, reason: str = ""):
        super().__init__(message)
        self.unreachable = unreachable
        self.reason = reason


class Retryable(Exception):
    def __init__(self, message: str, *, unreachable: bool = False):
        super().__init__(message)
        self.unreachable = unreachable


class Permanent(Exception):
    def __init__(self, code: int, message: str):
        super().__init__(message)
        self.code = code


NOT_MODIFIED = object()


def reason(exc: BaseException) -> str:
    """A short text for a network exception (the wrapped reason of a URLError, 'timed out' ...)."""
    if isinstance(exc, urllib.error.URLError) and not isinstance(exc, urllib.error.HTTPError):
        exc = exc.reason if isinstance(exc.reason, BaseException) else exc
    if isinstance(exc, (TimeoutError, socket.timeout)):
        return "timed out"
    if isinstance(exc, http.client.IncompleteRead):
        return "connection closed mid-body"
    text = str(exc) or exc.__class__.__name__
    return text.rstrip(".")


def request_once(url: str, target: Path, *, timeout: float, conditional: dict[str, str],
                 notes: list[str]) -> tuple[bytes, dict[str, str]] | object:
    """One HTTP request; the body goes to ``<target>.part`` (resumed when it exists)."""
    part, part_info = part_path(target), part_info_path(target)
    info = read_json(part_info) or {}
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
            return NOT_MODIFIED
        if e.code == 416 and offset:
            part.unlink(missing_ok=True)
            part_info.unlink(missing_ok=True)
            raise Retryable("the server rejected the resume range (HTTP 416), restarting") from None
        msg = f"HTTP {e.code} {e.reason}".strip()
        if e.code in _RETRY_STATUS or e.code >= 500:
            raise Retryable(msg) from None
        raise Permanent(e.code, msg) from None
    except (urllib.error.URLError, OSError) as e:
        raise Retryable(reason(e), unreachable=True) from None    # no HTTP answer at all
    except (http.client.HTTPException, ValueError) as e:
        raise Retryable(reason(e)) from None

    with resp:
        etag = resp.headers.get("ETag")
        last_modified = resp.headers.get("Last-Modified")
        total: int | None
        if resp.status == 206 and offset:
            m = re.match(r"\s*bytes\s+(\d+)-(\d+)/(\d+|\*)", resp.headers.get("Content-Range", ""))
            if not m or int(m.group(1)) != offset:
                part.unlink(missing_ok=True)
                raise Retryable("the server answered the resume request with an unexpected Content-Range, "
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
            write_json(part_info, {"url": redact_url(url), "etag": etag, "last_modified": last_modified,
                                   "started_at": iso(now_utc())})
        read1 = getattr(resp, "read1", resp.read)    # at most one recv per call: the deadline holds
        with open(part, mode) as f:
            while True:
                if time.monotonic() - started > deadline:
                    raise Retryable(f"the download took longer than {deadline:g} s")
                try:
                    chunk = read1(CHUNK)
                except (OSError, http.client.HTTPException, ValueError) as e:
                    raise Retryable(reason(e)) from None
                if not chunk:
                    break
                f.write(chunk)
    size = part.stat().st_size
    if total is not None and size < total:
        raise Retryable(f"the connection closed after {size} of {total} bytes")
    if total is not None and size > total:
        part.unlink(missing_ok=True)
        raise Retryable(f"received {size} bytes but {total} were announced, restarting")
    return part.read_bytes(), {"etag": etag or info.get("etag"),
                               "last_modified": last_modified or info.get("last_modified")}


def download(job: Download, target: Path, *, timeout: float, retries: int, backoff: float,
             conditional: dict[str, str], result: FetchResult, abort: threading.Event | None = None):
    """``request_once`` with retries; ``abort`` (set when the network is down) ends the waits early."""
    part = part_path(target)
    if part.exists():
        info = read_json(part_info_path(target)) or {}
        started = parse_ts(info.get("started_at"))
        age = (now_utc() - started).total_seconds() if started else time.time() - part.stat().st_mtime
        if age > STALE_PART_S:
            discard_part(target)
    last: Retryable | None = None
    for attempt in range(1, max(1, retries) + 1):
        result.attempts = attempt
        try:
            return request_once(job.url, target, timeout=timeout, conditional=conditional, notes=result.notes)
        except Permanent:
            raise
        except Retryable as e:
            last = e
        if attempt < retries:
            delay = min(BACKOFF_CAP_S, backoff * 2 ** (attempt - 1))
            if abort is not None and abort.wait(delay):
                break
            if abort is None:
                time.sleep(delay)
    tries = f"{result.attempts} attempts" if result.attempts > 1 else "1 attempt"
    raise FetchError(f"{job.source}: download of {redact_url(job.url)} failed after {tries}: {last}.",
                     unreachable=bool(last and last.unreachable), reason=str(last))
