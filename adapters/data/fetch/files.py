"""Files next to the data: sidecars, partial downloads, atomic replacement, hashes and timestamps."""
from __future__ import annotations

import contextlib
import csv
import hashlib
import json
import os
import threading
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path


def default_dest() -> Path:
    """``$ALVH_CACHE_DIR/data`` if set, else ``~/.cache/alvh/data``."""
    root = os.environ.get("ALVH_CACHE_DIR")
    return (Path(root).expanduser() if root else Path.home() / ".cache" / "alvh") / "data"


def now_utc() -> datetime:
    return datetime.now(UTC)


def iso(ts: datetime) -> str:
    return ts.astimezone(UTC).replace(microsecond=0).isoformat().replace("+00:00", "Z")


def parse_ts(s: str | None) -> datetime | None:
    if not s:
        return None
    try:
        ts = datetime.fromisoformat(s)
    except ValueError:
        return None
    return ts if ts.tzinfo else ts.replace(tzinfo=UTC)


def sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def sha256_file(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def read_json(path: Path) -> dict | None:
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None


def atomic_write(path: Path, data: bytes) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    # pid + thread id: several workers may write sidecars in the same directory at once
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


def write_json(path: Path, obj: dict) -> None:
    atomic_write(path, (json.dumps(obj, indent=2, sort_keys=True) + "\n").encode())


def meta_path(target: Path) -> Path:
    return target.with_name(target.name + ".meta.json")


def part_path(target: Path) -> Path:
    return target.with_name(target.name + ".part")


def part_info_path(target: Path) -> Path:
    return target.with_name(target.name + ".part.json")


def discard_part(target: Path) -> None:
    part_path(target).unlink(missing_ok=True)
    part_info_path(target).unlink(missing_ok=True)


@dataclass
class FileStats:
    header: list[str]
    rows: int
    last_date: str | None


def file_stats(path: Path) -> FileStats | None:
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
    return FileStats(header, rows, last)


@contextlib.contextmanager
def dest_lock(dest: Path):
    """Stop two fetches from writing to ``dest`` at once (POSIX only; elsewhere no lock)."""
    try:
        import fcntl
    except ImportError:
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
