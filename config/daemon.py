"""Typed settings of the paper-trading daemon (the [daemon] table): IB connection, schedule, order working,
market data and the paper-replay rehearsal. Risk limits are not here: they are the engine's ([risk] table), so the
replay enforces exactly what the daemon enforces. Documented in docs/daemon.md."""
from __future__ import annotations

import datetime as dt
from typing import Literal

from pydantic import Field, StrictBool, field_validator, model_validator

from engine.params import Params


class IBSettings(Params):
    host: str = "127.0.0.1"
    port: int = Field(7497, ge=0, le=65535, description="TWS paper 7497, Gateway paper 4002")
    client_id: int = Field(17, ge=0)
    client_id_fallbacks: list[int] = Field(default_factory=list, description="tried in turn when TWS answers 326")
    account: str = Field("", description="pick this account when the login manages several")
    connect_timeout: float = Field(10.0, gt=0, le=120)
    request_timeout: float = Field(10.0, gt=0, le=120)
    market_data_type: Literal["live", "frozen", "delayed", "delayed_frozen"] = "live"
    max_messages_per_second: float = Field(40.0, gt=0, lt=50, description="pacing: IB allows 50/s")
    reconnect_initial: float = Field(1.0, gt=0, le=60)
    reconnect_factor: float = Field(2.0, ge=1, le=10)
    reconnect_max: float = Field(60.0, gt=0, le=3600)
    reconnect_attempts: int = Field(0, ge=0, description="0 = keep trying")


class MarketDataParams(Params):
    mode: Literal["stream", "snapshot"] = "stream"
    indices: list[str] = Field(default_factory=lambda: ["VIX9D", "VIX3M", "VIX6M", "VVIX", "SKEW"],
                               description="optional indices besides SPX and VIX (skipped when not available)")
    vx_months: int = Field(6, ge=0, le=12)
    etps: list[str] = Field(default_factory=lambda: ["VIXY", "VIXM", "VXX"])
    max_age_seconds: float = Field(30.0, gt=0, description="older quotes are refreshed, then called stale")
    snapshot_timeout: float = Field(12.0, gt=0, le=60)
    rate: float = Field(0.04, ge=-0.05, le=0.25, description="risk-free rate (IB has no T-bill quote)")
    max_option_spread: float = Field(0.5, gt=0, description="an option quote wider than this fraction of mid is unusable "
                                                              "(only when the mid is above 1.00)")


class OrderParams(Params):
    improve_steps: int = Field(3, ge=0, le=20, description="price steps from the start price to the bound")
    step_seconds: float = Field(20.0, gt=0, le=600)
    start_fraction: float = Field(0.0, ge=0, le=1, description="0 = start at mid, 1 = start at the natural price")
    max_concession: float = Field(1.0, ge=0, le=2, description="bound = mid + this x (natural - mid), capped by the strategy limit")
    timeout_seconds: float = Field(120.0, gt=0, le=7200, description="after the last step, cancel the remainder")
    combo_tick: float = Field(0.05, gt=0, description="SPX complex orders price in 0.05 steps")
    commission_wait_seconds: float = Field(2.0, ge=0, le=60, description="wait this long for commission reports")
    send_deadline_seconds: float = Field(120.0, gt=0, description="an intent not sendable within this is abandoned")
    cancel_on_shutdown: StrictBool = Field(False, description="cancel working orders on a clean shutdown")


def time_in_window(t: dt.time, window: tuple[dt.time, dt.time]) -> bool:
    start, end = window
    if start <= end:
        return start <= t < end
    return t >= start or t < end  # wraps midnight


class ScheduleParams(Params):
    preopen: dt.time = Field(dt.time(9, 20), description="pre-open checks (ET)")
    open_snapshot: dt.time = Field(dt.time(9, 31), description="OPEN-phase snapshot (ET)")
    close_lead_minutes: int = Field(15, ge=1, le=120, description="CLOSE-phase snapshot this long before the session close")
    hedge_every_minutes: int = Field(15, ge=0, le=390, description="INTRADAY hedge checks every N minutes (0 = none)")
    eod_after_close_minutes: int = Field(20, ge=0, le=240, description="end-of-day job this long after the close")
    reset_window: tuple[dt.time, dt.time] = Field((dt.time(23, 45), dt.time(0, 45)),
                                                 description="broker reset window (ET); nothing runs inside it")
    misfire_grace_seconds: int = Field(300, ge=0, description="a job missed by less than this still runs (e.g. after a restart)")
    heartbeat_seconds: float = Field(5.0, gt=0, le=300)
    plan_at: dt.time = Field(dt.time(1, 0), description="when each day's jobs are planned (ET), after the reset window")

    @field_validator("reset_window", mode="before")
    @classmethod
    def _window(cls, v):
        if isinstance(v, (list, tuple)) and len(v) == 2:
            return tuple(dt.time.fromisoformat(x) if isinstance(x, str) else x for x in v)
        return v

    @model_validator(mode="after")
    def _outside_reset(self):
        for name in ("preopen", "open_snapshot", "plan_at"):
            t = getattr(self, name)
            if time_in_window(t, self.reset_window):
                raise ValueError(f"schedule.{name} ({t:%H:%M}) falls inside the broker reset window "
                                 f"{self.reset_window[0]:%H:%M}-{self.reset_window[1]:%H:%M}")
        if self.preopen >= self.open_snapshot:
            raise ValueError("schedule.preopen must be before schedule.open_snapshot")
        return self


class PaperReplayParams(Params):
    date: dt.date | None = Field(None, description="historical day to rehearse (or --paper-replay DATE)")
    speed: float = Field(0.0, ge=0, description="simulated seconds per wall second between jobs; 0 = jump")
    warmup_start: dt.date | None = Field(None, description="replay-engine start for the pre-day state (default run.start)")
    server: Literal["internal", "external"] = Field("internal",
                        description="internal: start a FakeTWS in-process; external: connect to daemon.ib host:port")
    hedge_checks: StrictBool = Field(False, description="run intraday hedge checks (quotes stay at the open's; the replay "
                                                  "engine has no intraday snapshot, so decisions may differ)")
    use_panel: StrictBool = Field(True, description="false: no market data at all - the (external) server's quotes only, "
                                              "no pre-day state (drills)")


class DaemonParams(Params):
    state_path: str = Field("state/alvh-daemon.sqlite", description="SQLite state store (WAL)")
    allow_live: StrictBool = Field(False, description="with --allow-live, permit a non-DU (live) account")
    strategy_factory: str | None = Field(None, description="'module:function' -> list[Strategy] given the RunConfig; "
                                                           "default: the configured [condor]/[hedge] books")
    halt_poll_seconds: float = Field(1.0, gt=0, le=60)
    ready_wait_seconds: float = Field(60.0, gt=0, description="a job waits this long for a (re)connection, then is "
                                                              "deferred to when trading is ready (within its window)")
    recovery_deadline_seconds: float = Field(900.0, gt=0, description="not reconnected and reconciled for this long "
                                                                      "(retries go on): halt with the reason")
    ib: IBSettings = Field(default_factory=IBSettings)
    schedule: ScheduleParams = Field(default_factory=ScheduleParams)
    orders: OrderParams = Field(default_factory=OrderParams)
    market_data: MarketDataParams = Field(default_factory=MarketDataParams)
    replay: PaperReplayParams = Field(default_factory=PaperReplayParams)
