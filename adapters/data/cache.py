"""Parquet cache of the built panel, keyed by a content fingerprint of the source files.

* ``fingerprint(data_dir)`` is a BLAKE2b hash of the bytes (and relative paths) of every file the panel
  reads. To keep a cached load fast, the last (size, mtime) signature of those files is remembered in a small
  manifest next to the cache; while it is unchanged the stored content hash is reused, otherwise the files
  are hashed again. A touched-but-unchanged file therefore re-hashes but still hits the cache; any change of
  content gives a new fingerprint and a rebuild.
* The cache key also covers start/end and a hash of this package's own code, so a change to the validation
  or build rules invalidates old panels automatically.
* A cache that cannot be read is ignored (rebuilt); a cache directory that cannot be written is skipped.
"""
from __future__ import annotations

import hashlib
import json
import os
import tempfile
from pathlib import Path

import pandas as pd
from pyarrow import ArrowException

from . import sources as S

SCHEMA_VERSION = "1"
_CODE_FILES = ("sources.py", "panel.py", "cache.py", "validation/*.py")  # globs under adapters/data


def default_cache_dir() -> Path:
    env = os.environ.get("ALVH_CACHE_DIR")
    return Path(env).expanduser() if env else Path.home() / ".cache" / "alvh" / "panel"


def source_files(data_dir: Path) -> list[str]:
    """Relative paths of every file the panel is built from (sorted, deterministic)."""
    rels = [s.path for s in S.DAILY_SPECS] + [e.path for e in S.EVENT_SPECS]
    vdir = data_dir / S.VX.directory
    if vdir.is_dir():
        rels += [f"{S.VX.directory}/{p.name}" for p in vdir.glob(S.VX.glob)]
    return sorted(rels)


def _stat_signature(data_dir: Path, rels: list[str]) -> str:
    h = hashlib.blake2b(digest_size=16)
    for rel in rels:
        try:
            st = os.stat(data_dir / rel)
            h.update(f"{rel}|{st.st_size}|{st.st_mtime_ns}\n".encode())
        except FileNotFoundError:
            h.update(f"{rel}|missing\n".encode())
    return h.hexdigest()


def content_hash(data_dir: Path, rels: list[str] | None = None) -> str:
    rels = source_files(data_dir) if rels is None else rels
    h = hashlib.blake2b(digest_size=20)
    for rel in rels:
        h.update(rel.encode() + b"\0")
        try:
            h.update((data_dir / rel).read_bytes())
        except FileNotFoundError:
            h.update(b"<missing>")
        h.update(b"\0")
    return h.hexdigest()


def _manifest_path(cache_dir: Path, data_dir: Path) -> Path:
    tag = hashlib.blake2b(str(data_dir.resolve()).encode(), digest_size=8).hexdigest()
    return cache_dir / f"stat-{tag}.json"


def fingerprint(data_dir: Path, cache_dir: Path | None = None) -> str:
    data_dir = Path(data_dir)
    rels = source_files(data_dir)
    sig = _stat_signature(data_dir, rels)
    man = _manifest_path(cache_dir, data_dir) if cache_dir is not None else None
    if man is not None:
        try:
            m = json.loads(man.read_text())
            if m.get("stat") == sig and m.get("fingerprint"):
                return m["fingerprint"]
        except (OSError, ValueError):
            pass
    fp = content_hash(data_dir, rels)
    if man is not None:
        _atomic_write(man, json.dumps({"stat": sig, "fingerprint": fp, "data_dir": str(data_dir.resolve())}).encode())
    return fp


def _code_hash() -> str:
    h = hashlib.blake2b(SCHEMA_VERSION.encode(), digest_size=8)
    here = Path(__file__).parent
    for path in sorted(p for pattern in _CODE_FILES for p in here.glob(pattern)):
        try:
            h.update(path.relative_to(here).as_posix().encode() + b"\0" + path.read_bytes())
        except OSError:
            pass
    return h.hexdigest()


def panel_key(fp: str, start: str | None, end: str | None) -> str:
    h = hashlib.blake2b(f"{fp}|{start}|{end}|{_code_hash()}".encode(), digest_size=12)
    return h.hexdigest()


def _paths(cache_dir: Path, key: str) -> tuple[Path, Path, Path]:
    return (cache_dir / f"panel-{key}.daily.parquet", cache_dir / f"panel-{key}.vx.parquet",
            cache_dir / f"panel-{key}.meta.json")


def read_panel(cache_dir: Path, key: str):
    """(daily, vx, events, notes) or None when there is no usable cache entry."""
    pd_daily, pd_vx, pmeta = _paths(cache_dir, key)
    try:
        meta = json.loads(pmeta.read_text())  # written last: its presence means the entry is complete
        daily = pd.read_parquet(pd_daily)
        vx = pd.read_parquet(pd_vx)
    except (OSError, ValueError, KeyError, ArrowException):  # missing or corrupt entry -> rebuild
        return None
    events = {k: pd.DatetimeIndex(pd.to_datetime(v), name="date").astype("datetime64[ns]")
              for k, v in meta["events"].items()}
    return daily, vx, events, tuple(meta["notes"])


def _atomic_write(path: Path, data: bytes) -> bool:
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=".tmp-", suffix=path.suffix)
        with os.fdopen(fd, "wb") as fh:
            fh.write(data)
        os.replace(tmp, path)
        return True
    except OSError:
        return False


def write_panel(cache_dir: Path, key: str, panel, data_dir: Path | None = None) -> bool:
    """Write one cache entry (meta last, so a reader never sees half an entry) and remove entries built
    from older contents of the same data directory."""
    pd_daily, pd_vx, pmeta = _paths(cache_dir, key)
    try:
        cache_dir.mkdir(parents=True, exist_ok=True)
        for frame, path in ((panel.daily, pd_daily), (panel.vx, pd_vx)):
            fd, tmp = tempfile.mkstemp(dir=cache_dir, prefix=".tmp-", suffix=".parquet")
            os.close(fd)
            frame.to_parquet(tmp)
            os.replace(tmp, path)
    except OSError:
        return False
    dd = str(Path(data_dir).resolve()) if data_dir is not None else None
    meta = {
        "fingerprint": panel.fingerprint,
        "data_dir": dd,
        "events": {k: [d.strftime("%Y-%m-%d") for d in v] for k, v in panel.events.items()},
        "notes": list(panel.notes),
    }
    ok = _atomic_write(pmeta, json.dumps(meta).encode())
    if ok and dd is not None:
        _prune(cache_dir, dd, panel.fingerprint)
    return ok


def _prune(cache_dir: Path, data_dir: str, fingerprint: str) -> None:
    for m in cache_dir.glob("panel-*.meta.json"):
        try:
            meta = json.loads(m.read_text())
        except (OSError, ValueError):
            continue
        if meta.get("data_dir") == data_dir and meta.get("fingerprint") != fingerprint:
            key = m.name[len("panel-"):-len(".meta.json")]
            for p in _paths(cache_dir, key)[::-1]:  # meta first: the entry disappears atomically for readers
                try:
                    p.unlink()
                except OSError:
                    pass
