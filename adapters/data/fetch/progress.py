"""Progress of a fetch on stderr: a tqdm bar on a terminal, plain lines in a log otherwise.

Errors are not written here: the caller prints each failure once, at the end, and a run with no
network stops after a few failures with one sentence (``runner.py``).
"""
from __future__ import annotations

import sys
import time
from typing import Protocol, TextIO

from .report import FetchResult

LINE_EVERY_FILES = 25      # a log line every this many files ...
LINE_EVERY_S = 10.0        # ... or this many seconds, whichever comes first


class Progress(Protocol):
    def update(self, res: FetchResult) -> None: ...

    def close(self) -> None: ...


class NoProgress:
    def update(self, res: FetchResult) -> None:
        pass

    def close(self) -> None:
        pass


class BarProgress:
    """tqdm bar, erased at the end."""

    def __init__(self, total: int, stream: TextIO) -> None:
        from tqdm import tqdm

        self._bar = tqdm(total=total, unit="file", desc="alvh data fetch", file=stream, leave=False)

    def update(self, res: FetchResult) -> None:
        self._bar.set_postfix_str(res.target, refresh=False)
        self._bar.update(1)

    def close(self) -> None:
        self._bar.close()


class LineProgress:
    """``alvh data fetch: 50/310 files (48 fetched, 2 failed)`` every few files or seconds."""

    def __init__(self, total: int, stream: TextIO, clock=time.monotonic) -> None:
        self._total, self._stream, self._clock = total, stream, clock
        self._done = 0
        self._counts: dict[str, int] = {}
        self._last_line = clock()
        self._last_done = 0

    def update(self, res: FetchResult) -> None:
        self._done += 1
        self._counts[res.status] = self._counts.get(res.status, 0) + 1
        if (self._done - self._last_done >= LINE_EVERY_FILES or self._clock() - self._last_line >= LINE_EVERY_S
                or self._done == self._total):
            self._line()

    def _line(self) -> None:
        counts = ", ".join(f"{n} {s.replace('_', ' ')}" for s, n in sorted(self._counts.items()))
        print(f"alvh data fetch: {self._done}/{self._total} files ({counts})", file=self._stream, flush=True)
        self._last_line, self._last_done = self._clock(), self._done

    def close(self) -> None:
        if self._done != self._last_done:
            self._line()


def progress_for(total: int, enabled: bool, stream: TextIO | None = None) -> Progress:
    stream = sys.stderr if stream is None else stream
    if not enabled or total == 0:
        return NoProgress()
    return BarProgress(total, stream) if stream.isatty() else LineProgress(total, stream)
