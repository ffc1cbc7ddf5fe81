"""Crash points: the places where a crash matters for recovery (journal written, order sent, acknowledgement
recorded, fill recorded, mid-reconcile...), so fault tests can kill a process at an exact one.

`crashpoint(name)` does nothing unless the environment variable ALVH_CRASH_AT names that point ("name" or
"name:n" = the n-th time it is reached in this process; "any:k" = the k-th crash point of any name), in which
case the process SIGKILLs itself there. In production the variable is never set. ALVH_CRASH_TRACE=path appends
every point reached ("name:n" lines) to a file, so a test can list the points of a clean run and then crash at
each; ALVH_CRASH_LOG=path records the point that fired (fsynced before the kill).

It lives in the engine because both the IB adapter and the daemon mark points and neither may import the
other; it imports nothing but the standard library.
"""
from __future__ import annotations

import os
import signal

_counts: dict[str, int] = {}
_total = 0


def _target() -> tuple[str, int] | None:
    spec = os.environ.get("ALVH_CRASH_AT", "")
    if not spec:
        return None
    name, _, n = spec.partition(":")
    return name, int(n or 1)


def crashpoint(name: str) -> None:
    trace = os.environ.get("ALVH_CRASH_TRACE")
    target = _target()
    if target is None and not trace:
        return
    global _total
    n = _counts[name] = _counts.get(name, 0) + 1
    _total += 1
    if trace:
        with open(trace, "a") as f:
            f.write(f"{name}:{n}\n")
    if target is None:
        return
    if target == (name, n) or target == ("any", _total):
        log_path = os.environ.get("ALVH_CRASH_LOG")
        if log_path:
            with open(log_path, "a") as f:
                f.write(f"{name}:{n}\n")
                f.flush()
                os.fsync(f.fileno())
        os.kill(os.getpid(), signal.SIGKILL)


def crash_counts() -> dict[str, int]:
    """How often each crash point was reached in this process (for tests choosing points)."""
    return dict(_counts)
