"""Ids a restarted server must never repeat: permIds and the execId stem of each fill.

They come from the wall clock in microseconds since 2020, never from the server's clock (tests and
rehearsals pin or replay that one, so two runs would agree), and each id is larger than the one
before it for every server in this process. A server started after another one stopped therefore
issues only larger ids, in this process or a later one, as long as no server issued more than one id
per microsecond on average and the machine's clock did not step back. Two servers running at the same
time in different processes could meet in the same microsecond; they are different accounts then.
"""

from __future__ import annotations

import threading
import time

_EPOCH_US = 1_577_836_800_000_000  # 2020-01-01 UTC: ids stay around 15 digits, not 17


class _IdClock:
    def __init__(self) -> None:
        self._last = 0
        self._lock = threading.Lock()  # servers on other threads (start_in_thread) share it

    def next(self) -> int:
        with self._lock:
            self._last = max(self._last + 1, time.time_ns() // 1000 - _EPOCH_US)
            return self._last


_ids = _IdClock()


def unique_id() -> int:
    """A positive integer no server in this process issued before, and larger than any it issued."""
    return _ids.next()


def exec_id_stem() -> str:
    """The shared part of one fill's execIds, TWS-style ('0000e0d5.<hex>'); each execution of the
    fill appends '.<leg>.01'."""
    return f"0000e0d5.{unique_id():x}"
