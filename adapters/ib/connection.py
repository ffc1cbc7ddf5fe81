"""The IB connection: connect with a timeout, reconnect with capped exponential backoff, pace requests.

ib_async does not reconnect by itself and several of its awaits have no timeout. This module owns
the `IB` object and the rules around it:

- `bounded(awaitable, timeout, what)`: every await on IB goes through asyncio.wait_for.
- `Pacer`: a token bucket kept under IB's 50 messages/second (default 40/s); every request the
  adapter sends takes a token first.
- `Connection.start()`: connect (bounded), trying the configured client ids in turn when TWS says
  326 (client id in use), with capped exponential backoff between rounds.
- Events: a dropped socket (disconnectedEvent) or the daily reset -> `on_down`, then the reconnect
  loop; 1100 (connectivity IB<->TWS lost) -> `on_down` with the socket kept; 1101 (restored, data
  lost) and 1102 (restored, data kept) -> `on_up(reason)`. The owner (the daemon) resubscribes market
  data and reconciles in `on_up` before trading resumes.
- A failed `on_up` (a reconcile that timed out) is retried with the same capped backoff while the link is
  up, until it succeeds; the owner decides how long is too long (the daemon halts after its deadline).
  `recover(reason)` asks for the same (e.g. after an end-of-day reconcile failed).
"""
from __future__ import annotations

import asyncio
import random
import time
from collections.abc import Awaitable, Callable
from typing import Any

import structlog

from adapters.ib.accounts import mask
from adapters.ib.errors import ErrorKind, classify
from config.daemon import IBSettings

log = structlog.get_logger("alvh.ib")


class IBTimeout(TimeoutError):
    """An IB request did not answer within its bound."""


class NotConnected(ConnectionError):
    pass


class ClientIdInUse(ConnectionError):
    pass


class FatalConnectionError(Exception):
    """Raised by an on_up callback to stop retrying (e.g. a live account the config does not allow)."""


MARKET_DATA_TYPES = {"live": 1, "frozen": 2, "delayed": 3, "delayed_frozen": 4}


async def bounded(aw: Awaitable[Any], timeout: float, what: str) -> Any:
    """Await with a timeout; raise IBTimeout naming the request."""
    try:
        return await asyncio.wait_for(aw, timeout)
    except TimeoutError:
        raise IBTimeout(f"{what} did not answer within {timeout:g}s") from None


class Pacer:
    """Token bucket: at most `rate` messages per second, bursts up to `burst`."""

    def __init__(self, rate: float = 40.0, burst: float | None = None,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self.rate = float(rate)
        self.burst = float(burst if burst is not None else max(1.0, rate / 4))
        self._tokens = self.burst
        self._clock = clock
        self._last = clock()
        self._lock = asyncio.Lock()
        self.sent = 0

    def _refill(self) -> None:
        now = self._clock()
        self._tokens = min(self.burst, self._tokens + (now - self._last) * self.rate)
        self._last = now

    async def acquire(self, n: int = 1) -> None:
        async with self._lock:
            for _ in range(n):
                self._refill()
                while self._tokens < 1.0:
                    await asyncio.sleep((1.0 - self._tokens) / self.rate)
                    self._refill()
                self._tokens -= 1.0
                self.sent += 1


def backoff_delays(initial: float, factor: float, cap: float, jitter: float = 0.1,
                   rng: random.Random | None = None):
    """Capped exponential backoff: initial, initial*factor, ... <= cap, each +-jitter."""
    rng = rng or random.Random()
    d = initial
    while True:
        yield min(cap, d) * (1.0 + rng.uniform(-jitter, jitter))
        d = min(cap, d * factor)


class Connection:
    """Owns the ib_async IB object; calls `on_up(reason)` when trading may (re)start and `on_down(reason)`
    when it must pause. Reasons: connected, reconnected, restored_data_lost, restored_data_kept."""

    def __init__(self, settings: IBSettings, *, ib=None,
                 on_up: Callable[[str], Awaitable[None]] | None = None,
                 on_down: Callable[[str], None] | None = None,
                 rng: random.Random | None = None) -> None:
        if ib is None:
            from ib_async import IB

            ib = IB()
        self.settings = settings
        self.ib = ib
        self.pacer = Pacer(settings.max_messages_per_second)
        self.on_up = on_up
        self.on_down = on_down
        self.rng = rng or random.Random()
        self.state = "disconnected"   # disconnected | connecting | up | degraded | closed
        self.link_ok = True           # False between 1100/2110 and 1101/1102 (IB <-> TWS connectivity)
        self.client_id: int | None = None
        self.account: str = ""        # the account traded: the owner checks it against `managed`
        self.managed: list[str] = []  # managedAccounts of the login
        self.last_error: str = ""     # the last connect/recovery failure, for the owner's reports
        self.failures = 0             # connect/recovery attempts that failed, ever
        self.connects = 0
        self.errors: list[tuple[int, int, str]] = []
        self._closing = False
        self._reconnect_task: asyncio.Task | None = None
        self._up_task: asyncio.Task | None = None
        self._id_in_use: asyncio.Future | None = None
        ib.disconnectedEvent += self._on_disconnected
        ib.errorEvent += self._on_error

    # ---- connect -------------------------------------------------------------------------------
    @property
    def is_up(self) -> bool:
        return self.state == "up" and self.link_ok and self.ib.isConnected()

    def client_ids(self) -> list[int]:
        ids = [self.settings.client_id] + [i for i in self.settings.client_id_fallbacks if i != self.settings.client_id]
        return ids

    async def _connect_once(self, client_id: int) -> None:
        s = self.settings
        loop = asyncio.get_running_loop()
        self._id_in_use = loop.create_future()
        task = asyncio.ensure_future(self.ib.connectAsync(s.host, s.port, clientId=client_id, timeout=s.connect_timeout,
                                                          account=s.account))
        try:
            done, _ = await asyncio.wait({task, self._id_in_use}, timeout=s.connect_timeout + 2.0,
                                         return_when=asyncio.FIRST_COMPLETED)
            if self._id_in_use in done:
                task.cancel()
                await asyncio.gather(task, return_exceptions=True)
                self.ib.disconnect()
                raise ClientIdInUse(f"client id {client_id} is in use (326)")
            if task not in done:
                task.cancel()
                await asyncio.gather(task, return_exceptions=True)
                self.ib.disconnect()
                raise IBTimeout(f"connect to {s.host}:{s.port} did not complete within {s.connect_timeout:g}s")
            task.result()
        finally:
            self._id_in_use = None
        if not self.ib.isConnected():
            raise NotConnected("socket closed while connecting")

    async def connect(self) -> None:
        """One round over the client ids; raises the last error if none connects."""
        self.state = "connecting"
        last: Exception | None = None
        for cid in self.client_ids():
            try:
                await self._connect_once(cid)
            except ClientIdInUse as e:
                log.warning("client_id_in_use", client_id=cid, code=326)
                last = e
                continue
            except (TimeoutError, OSError, IBTimeout, ConnectionError) as e:
                last = e
                break
            self.client_id = cid
            self.connects += 1
            self.link_ok = True
            self.managed = [a for a in self.ib.managedAccounts() if a]
            self.account = self.settings.account or (self.managed[0] if len(self.managed) == 1 else "")
            await self.pacer.acquire()
            self.ib.reqMarketDataType(MARKET_DATA_TYPES[self.settings.market_data_type])
            self.state = "up"
            log.info("connected", host=self.settings.host, port=self.settings.port, client_id=cid,
                     account=mask(self.account), server_version=self.ib.client.serverVersion(),
                     market_data_type=self.settings.market_data_type)
            return
        self.state = "disconnected"
        raise last if last is not None else NotConnected("no client id to try")

    async def start(self) -> None:
        """Connect, retrying with backoff (bounded by reconnect_attempts when set), then run on_up."""
        await self._connect_with_backoff(first=True)

    async def _connect_with_backoff(self, first: bool) -> None:
        """Connect, then run on_up (resubscribe + reconcile); any failure of either backs off and retries.
        The state stays "connecting" until on_up has finished, so trading never resumes half-way."""
        s = self.settings
        delays = backoff_delays(s.reconnect_initial, s.reconnect_factor, s.reconnect_max, rng=self.rng)
        attempt = 0
        while not self._closing:
            attempt += 1
            try:
                await self.connect()
                if self.on_up is not None:
                    self.state = "connecting"
                    await self.on_up("connected" if first else "reconnected")
                self.state = "up"
                return
            except FatalConnectionError:
                self.state = "closed"
                self._closing = True
                if self.ib.isConnected():
                    self.ib.disconnect()
                raise
            except asyncio.CancelledError:
                raise
            except Exception as e:
                self.last_error = str(e) or type(e).__name__
                self.failures += 1
                self.state = "connecting"
                if self.ib.isConnected():
                    self.ib.disconnect()
                self.state = "disconnected"
                if s.reconnect_attempts and attempt >= s.reconnect_attempts:
                    log.error("connect_failed", attempts=attempt, error=str(e) or type(e).__name__)
                    raise
                delay = next(delays)
                log.warning("reconnecting", attempt=attempt, delay=round(delay, 2), error=str(e) or type(e).__name__)
                await asyncio.sleep(delay)

    # ---- events --------------------------------------------------------------------------------
    def _on_disconnected(self) -> None:
        if self._closing or self.state in ("connecting", "closed"):
            return
        was = self.state
        self.state = "disconnected"
        log.warning("disconnected", previous=was)
        if self.on_down is not None:
            self.on_down("socket_closed")
        self._spawn_reconnect()

    def _spawn_reconnect(self) -> None:
        if self._reconnect_task is not None and not self._reconnect_task.done():
            return
        try:
            loop = asyncio.get_running_loop()
        except RuntimeError:
            return
        self._reconnect_task = loop.create_task(self._reconnect())

    async def _reconnect(self) -> None:
        try:
            await self._connect_with_backoff(first=False)
        except asyncio.CancelledError:
            raise
        except Exception as e:  # noqa: BLE001
            log.error("reconnect_gave_up", error=str(e))

    def _on_error(self, req_id: int, code: int, message: str, contract: Any) -> None:
        kind = classify(code)
        self.errors.append((req_id, code, message))
        del self.errors[:-200]
        if kind is ErrorKind.CLIENT_ID_IN_USE:
            if self._id_in_use is not None and not self._id_in_use.done():
                self._id_in_use.set_result(code)
            return
        if kind is ErrorKind.INFO:
            log.debug("ib_notice", code=code, message=message)
            return
        if kind is ErrorKind.CONNECTIVITY_LOST:
            self.link_ok = False
            if self.state == "up":
                self.state = "degraded"
            log.warning("connectivity_lost", code=code, message=message)
            if self.on_down is not None:
                self.on_down("connectivity_lost")
            return
        if kind in (ErrorKind.RESTORED_DATA_LOST, ErrorKind.RESTORED_DATA_KEPT):
            reason = kind.value
            log.info("connectivity_restored", code=code, data_lost=kind is ErrorKind.RESTORED_DATA_LOST)
            self.link_ok = True
            if self.ib.isConnected() and self.state in ("up", "degraded"):
                self.state = "up"
                self._spawn_up(reason)
            return
        if kind is ErrorKind.SOCKET:
            log.warning("socket_error", code=code, message=message)
            return
        if kind in (ErrorKind.MARKET_DATA, ErrorKind.COMPETING_SESSION, ErrorKind.PACING):
            log.warning("ib_" + kind.value, code=code, req_id=req_id, message=message)
            return
        # order-related errors are logged by the broker, which knows the intent
        if kind not in (ErrorKind.ORDER_REJECTED, ErrorKind.ORDER_CANCELLED, ErrorKind.ORDER_WARNING,
                        ErrorKind.DUPLICATE_ORDER_ID, ErrorKind.CONTRACT):
            log.info("ib_error", code=code, req_id=req_id, message=message)

    def recover(self, reason: str) -> None:
        """Run on_up again (resubscribe + reconcile), with backoff until it succeeds."""
        if self.ib.isConnected() and self.state in ("up", "degraded"):
            self._spawn_up(reason)

    def _spawn_up(self, reason: str) -> None:
        if self.on_up is None:
            return
        self._up_task = asyncio.get_running_loop().create_task(self._up_with_backoff(reason))

    async def _up_with_backoff(self, reason: str) -> None:
        """on_up until it succeeds. Gives way when the socket drops (the reconnect loop takes over) or the
        link is lost again (the next 1101/1102 starts over)."""
        s = self.settings
        delays = backoff_delays(s.reconnect_initial, s.reconnect_factor, s.reconnect_max, rng=self.rng)
        attempt = 0
        while not self._closing:
            attempt += 1
            try:
                await self.on_up(reason)
                return
            except FatalConnectionError as e:
                log.error("resume_refused", reason=reason, error=str(e))
                return
            except asyncio.CancelledError:
                raise
            except Exception as e:  # noqa: BLE001 - retried below
                self.last_error = str(e) or type(e).__name__
                self.failures += 1
                delay = next(delays)
                log.error("resume_failed", reason=reason, attempt=attempt, error=self.last_error,
                          retry_in=round(delay, 2))
            await asyncio.sleep(delay)
            if not (self.ib.isConnected() and self.state in ("up", "degraded") and self.link_ok):
                log.info("resume_retry_dropped", reason=reason, note="waiting for the connection to come back")
                return

    # ---- memory --------------------------------------------------------------------------------
    def forget_done(self, done_statuses: frozenset[str]) -> int:
        """Drop finished trades and their fills from ib_async's caches (end of day). ib_async keeps every
        Trade and Fill of a connection for the connection's life; a daemon that stays connected for months
        would grow without bound. Working trades are kept."""
        w = self.ib.wrapper
        done = [key for key, tr in w.trades.items() if tr.orderStatus.status in done_statuses]
        perms = set()
        for key in done:
            tr = w.trades.pop(key)
            perms.add(tr.order.permId)
            w.permId2Trade.pop(tr.order.permId, None)
        for exec_id in [k for k, f in w.fills.items() if f.execution.permId in perms or f.execution.permId == 0]:
            del w.fills[exec_id]
        return len(done)

    # ---- shutdown ------------------------------------------------------------------------------
    async def close(self) -> None:
        self._closing = True
        for t in (self._reconnect_task, self._up_task):
            if t is not None and not t.done():
                t.cancel()
                await asyncio.gather(t, return_exceptions=True)
        if self.ib.isConnected():
            self.ib.disconnect()
        self.state = "closed"
