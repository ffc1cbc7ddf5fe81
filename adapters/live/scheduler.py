"""The daemon's day: jobs computed per session on the exchange calendar, run by apscheduler.

Per XNYS session (early closes included, from exchange_calendars):
  preopen         checks: connected, account, reconciled, market data flowing
  open            OPEN-phase snapshot -> strategies (condor exits, hedge checks)
  hedge-HHMM      INTRADAY snapshots every `hedge_every_minutes` between open and close, so an
                  intraday VIX threshold crossing acts the same day
  close           CLOSE-phase snapshot `close_lead_minutes` before the session close (15:45 on a
                  normal day, 12:45 on an early close): condor entries/exits, end-of-day marks
  eod             after the close: cancel leftover DAY orders, persist, one summary log line
Nothing is scheduled inside the broker's daily reset window (default 23:45-00:45 ET): a plan that
would put a job there is refused when the config is loaded.

`plan_session` is a pure function (tested on its own); `SessionScheduler` installs a plan into an
apscheduler AsyncIOScheduler for live runs. Paper replay runs the same plan on an accelerated clock
(see paper_replay.py), so a rehearsal exercises the very same job list. `job_window` is how long a job
deferred for lack of a connection may still run (see jobs.py).
"""
from __future__ import annotations

import datetime as dt
import time
import warnings
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from functools import lru_cache

import pandas as pd

from config.daemon import ScheduleParams, time_in_window
from engine.clock import ET
from engine.events import Phase


@dataclass(frozen=True, slots=True)
class Job:
    session: dt.date
    name: str
    at: dt.datetime          # tz-aware, ET
    kind: str                # "preopen" | "snapshot" | "eod"
    phase: Phase | None = None

    @property
    def key(self) -> str:
        return f"{self.session.isoformat()}:{self.name}"


def in_reset_window(ts: dt.datetime, params: ScheduleParams) -> bool:
    return time_in_window(ts.astimezone(ET).time().replace(tzinfo=None), params.reset_window)


@lru_cache(maxsize=1)
def _xnys():
    import exchange_calendars as xcals

    return xcals.get_calendar("XNYS", start="1990-01-01", end="2030-12-31")


def is_session(day: dt.date) -> bool:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # exchange_calendars' own pandas deprecation noise
        return bool(_xnys().is_session(pd.Timestamp(day)))


def session_hours(day: dt.date) -> tuple[dt.datetime, dt.datetime]:
    """(open, close) of an XNYS session in ET (early closes included)."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        cal = _xnys()
        ts = pd.Timestamp(day)
        o = cal.session_open(ts).tz_convert(ET).to_pydatetime()
        c = cal.session_close(ts).tz_convert(ET).to_pydatetime()
    return o, c


def next_session(day: dt.date, include_today: bool = True) -> dt.date:
    d = day if include_today else day + dt.timedelta(days=1)
    for _ in range(15):
        if is_session(d):
            return d
        d += dt.timedelta(days=1)
    raise ValueError(f"no session within 15 days after {day}")


def _at(day: dt.date, t: dt.time) -> dt.datetime:
    return dt.datetime.combine(day, t, tzinfo=ET)


def plan_session(day: dt.date, params: ScheduleParams) -> list[Job]:
    """The session's jobs in time order; [] when `day` is not a trading day."""
    if not is_session(day):
        return []
    _, close = session_hours(day)
    open_at = _at(day, params.open_snapshot)
    close_at = close - dt.timedelta(minutes=params.close_lead_minutes)
    if close_at <= open_at:
        close_at = open_at + dt.timedelta(minutes=1)
    jobs = [Job(day, "preopen", _at(day, params.preopen), "preopen"),
            Job(day, "open", open_at, "snapshot", Phase.OPEN)]
    if params.hedge_every_minutes:
        step = dt.timedelta(minutes=params.hedge_every_minutes)
        t = open_at + step
        while t < close_at:
            jobs.append(Job(day, f"hedge-{t:%H%M}", t, "snapshot", Phase.INTRADAY))
            t += step
    jobs.append(Job(day, "close", close_at, "snapshot", Phase.CLOSE))
    jobs.append(Job(day, "eod", close + dt.timedelta(minutes=params.eod_after_close_minutes), "eod"))
    out = [j for j in jobs if not in_reset_window(j.at, params)]
    return sorted(out, key=lambda j: j.at)


def job_window(job: Job, params: ScheduleParams) -> dt.datetime:
    """Until when a job that could not run on time may still run: a snapshot job until the next snapshot job
    of its session (the close job until the session close), the pre-open check until the open job, the
    end-of-day job until midnight."""
    if job.kind == "eod":
        return _at(job.session + dt.timedelta(days=1), dt.time(0, 0))
    later = [j.at for j in plan_session(job.session, params) if j.kind == "snapshot" and j.at > job.at]
    if later:
        return min(later)
    return session_hours(job.session)[1]


class ReplayClock:
    """Paper-replay clock: jumps to each job's time; between jobs it runs at `speed` x wall time (0 = frozen)."""

    def __init__(self, start: dt.datetime, speed: float = 0.0) -> None:
        self._t = start
        self._mark = time.monotonic()
        self.speed = speed

    def now(self) -> dt.datetime:
        if self.speed:
            return self._t + dt.timedelta(seconds=(time.monotonic() - self._mark) * self.speed)
        return self._t

    def set(self, t: dt.datetime) -> None:
        now = self.now()
        self._t = max(now, t)
        self._mark = time.monotonic()


JobRunner = Callable[[Job], Awaitable[None]]


class SessionScheduler:
    """apscheduler (3.x, asyncio) installation of the session plans, re-planned every day at `plan_at`."""

    def __init__(self, params: ScheduleParams, run_job: JobRunner, heartbeat: Callable[[], Awaitable[None]],
                 now: Callable[[], dt.datetime]) -> None:
        from apscheduler.schedulers.asyncio import AsyncIOScheduler

        self.params = params
        self.run_job = run_job
        self.heartbeat = heartbeat
        self.now = now
        self.scheduler = AsyncIOScheduler(timezone=ET)
        self.installed: list[Job] = []

    def start(self) -> None:
        from apscheduler.triggers.cron import CronTrigger
        from apscheduler.triggers.interval import IntervalTrigger

        p = self.params
        self.scheduler.add_job(self.heartbeat, IntervalTrigger(seconds=p.heartbeat_seconds, timezone=ET),
                               id="heartbeat", coalesce=True, max_instances=1, misfire_grace_time=None)
        self.scheduler.add_job(self.plan_today, CronTrigger(hour=p.plan_at.hour, minute=p.plan_at.minute, timezone=ET),
                               id="plan", coalesce=True, max_instances=1, misfire_grace_time=3600)
        self.scheduler.start()
        self.plan_today()

    def plan_today(self) -> list[Job]:
        now = self.now()
        day = now.astimezone(ET).date()
        grace = dt.timedelta(seconds=self.params.misfire_grace_seconds)
        added = []
        for job in plan_session(day, self.params):
            if self.scheduler.get_job(job.key) is not None:
                continue
            run_at = job.at
            if job.at < now:
                if now - job.at > grace:
                    continue  # missed for good: the runner logs it when it looks at the day's jobs
                run_at = now + dt.timedelta(milliseconds=50)
            self.scheduler.add_job(self.run_job, "date", run_date=run_at, args=[job], id=job.key, coalesce=True,
                                   max_instances=1, misfire_grace_time=self.params.misfire_grace_seconds or None)
            added.append(job)
        self.installed += added
        return added

    def shutdown(self) -> None:
        if self.scheduler.running:
            self.scheduler.shutdown(wait=False)
