"""The fake server's clock: a pinned datetime, a callable (a rehearsal's replay clock) or the wall clock,
and the TWS time zone it reports times in."""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable
from zoneinfo import ZoneInfo

UTC = dt.UTC
try:
    ET = ZoneInfo("US/Eastern")
except Exception:  # noqa: BLE001  # pragma: no cover - tzdata missing
    ET = UTC  # type: ignore[assignment]


def aware(t: dt.datetime) -> dt.datetime:
    """A naive datetime is read as UTC."""
    return t if t.tzinfo else t.replace(tzinfo=UTC)


class ServerClock:
    """``now`` is a fixed datetime, a ``() -> datetime`` or None (wall clock)."""

    def __init__(self, now: dt.datetime | Callable[[], dt.datetime] | None = None, timezone: str = "US/Eastern"):
        self._fixed: dt.datetime | None = None
        self._fn: Callable[[], dt.datetime] | None = None
        if callable(now):
            self._fn = now
        elif now is not None:
            self._fixed = aware(now)
        try:
            self.tz: dt.tzinfo = ZoneInfo(timezone)
            self.tz_name = timezone
        except (KeyError, ValueError):  # pragma: no cover - unknown zone / no tzdata
            self.tz, self.tz_name = UTC, "UTC"

    def now(self) -> dt.datetime:
        if self._fn is not None:
            return aware(self._fn())
        if self._fixed is not None:
            return self._fixed
        return dt.datetime.now(UTC)

    def set(self, when: dt.datetime) -> None:
        self._fn = None
        self._fixed = aware(when)

    def advance(self, seconds: float) -> None:
        if self._fixed is None:
            self._fixed = self.now()
            self._fn = None
        self._fixed += dt.timedelta(seconds=seconds)

    def tws_time(self, t: dt.datetime | None = None) -> str:
        """'yyyymmdd hh:mm:ss Zone' in the TWS zone, as the handshake and execDetails carry it."""
        t = (t or self.now()).astimezone(self.tz)
        return t.strftime("%Y%m%d %H:%M:%S ") + self.tz_name

    def local(self, t: dt.datetime | None = None) -> dt.datetime:
        return (t or self.now()).astimezone(self.tz)
