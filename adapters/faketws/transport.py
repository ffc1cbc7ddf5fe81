"""Sockets: the listener, each client's read loop (the ``API\\0`` handshake, then frames to the decoder),
closing and reopening the listener, and running a server's event loop on its own thread."""

from __future__ import annotations

import asyncio
import concurrent.futures
import contextlib
import functools
import logging
import threading
import time
from collections.abc import Awaitable, Callable

from . import wire
from .clock import ServerClock
from .outbox import Outbox
from .sessions import Sessions
from .settings import SUPPORTED_VERSIONS, Settings

log = logging.getLogger("alvh.faketws")


class Transport:
    def __init__(self, host: str, port: int, settings: Settings, clock: ServerClock, sessions: Sessions,
                 outbox: Outbox, dispatch: Callable[..., None]):
        self.host = host
        self.requested_port = port
        self.port = port
        self.settings = settings
        self.clock = clock
        self.sessions = sessions
        self.outbox = outbox
        self.dispatch = dispatch
        self.loop: asyncio.AbstractEventLoop | None = None
        self.thread_id: int | None = None
        self.closing = False
        self.resetting_until = 0.0  # monotonic time until which connections are refused
        self._server: asyncio.base_events.Server | None = None
        self._handler_tasks: set[asyncio.Task] = set()
        self._reopen_handle: asyncio.TimerHandle | None = None

    # ------------------------------------------------------------ listener
    async def start(self) -> None:
        self.loop = asyncio.get_running_loop()
        self.thread_id = threading.get_ident()
        self.closing = False
        await self._listen(self.requested_port)

    async def _listen(self, port: int) -> None:
        self._server = await asyncio.start_server(self._on_client, self.host, port, reuse_address=True)
        self.port = self._server.sockets[0].getsockname()[1]

    def stop_accepting(self) -> None:
        """First step of shutting down: no new clients, no pending reopen."""
        self.closing = True
        if self._reopen_handle:
            self._reopen_handle.cancel()
            self._reopen_handle = None

    async def aclose(self) -> None:
        self.stop_accepting()
        for conn in self.sessions.all():
            conn.abort()
        pending = [t for t in self._handler_tasks if not t.done()]
        if pending:
            await asyncio.wait(pending, timeout=2)
        if self._server is not None:
            self._server.close()
            with contextlib.suppress(Exception):
                await asyncio.wait_for(self._server.wait_closed(), 2)
            self._server = None
        await asyncio.sleep(0)

    def close_for(self, seconds: float) -> None:
        """Abort every socket and close the listener: connections are refused for ``seconds``,
        then the server listens again on the same port."""
        assert self.loop is not None
        self.resetting_until = time.monotonic() + seconds
        for conn in self.sessions.all():
            conn.abort()
        if self._server is not None:
            self._server.close()
            self._server = None
        port = self.port

        def reopen() -> None:
            self._reopen_handle = None
            if self.closing:
                return

            async def go() -> None:
                try:
                    await self._listen(port)
                except OSError:
                    log.exception("FakeTWS: could not re-listen on %s after reset", port)

            self.loop.create_task(go())  # type: ignore[union-attr]

        self._reopen_handle = self.loop.call_later(seconds, reopen)

    @property
    def open_tasks(self) -> int:
        return len(self._handler_tasks)

    @property
    def is_listening(self) -> bool:
        return self._server is not None and time.monotonic() >= self.resetting_until

    # ------------------------------------------------------------ one client
    async def _on_client(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        if self.closing or time.monotonic() < self.resetting_until:
            writer.transport.abort()
            return
        conn = self.sessions.open(reader, writer, self.settings.server_version)
        task = asyncio.current_task()
        if task is not None:
            self._handler_tasks.add(task)
            task.add_done_callback(self._handler_tasks.discard)
        try:
            prefix = await reader.readexactly(4)
            if prefix != b"API\0":
                log.warning("FakeTWS: bad handshake prefix %r", prefix)
                return
            (n,) = wire.HEADER.unpack(await reader.readexactly(4))
            payload = await reader.readexactly(n)
            lo, hi, _opts = wire.parse_version_range(payload)
            self.outbox.record("in", conn, 0, ["API", payload.decode(errors="replace")], name="handshake")
            version = min(self.settings.server_version, hi)
            if version < lo or version not in SUPPORTED_VERSIONS:
                log.warning("FakeTWS: client range %s..%s incompatible with %s", lo, hi, self.settings.server_version)
                return
            conn.version = version
            conn.write_raw(wire.encode_msg([str(version), self.clock.tws_time()]))
            self.outbox.record("out", conn, 0, [str(version), self.clock.tws_time()], name="handshake")
            while not conn.closed:
                (n,) = wire.HEADER.unpack(await reader.readexactly(4))
                if n > wire.MAX_FRAME:
                    raise ValueError("frame too large")
                payload = await reader.readexactly(n)
                self.dispatch(conn, wire.decode_payload(payload))
        except (asyncio.IncompleteReadError, ConnectionError, OSError):
            pass
        except asyncio.CancelledError:  # server shutting down
            pass
        except Exception:  # pragma: no cover - a bug in a handler: log and drop the client
            log.exception("FakeTWS: error serving connection %s", conn.id)
        finally:
            conn.closed = True
            self.sessions.forget(conn)
            with contextlib.suppress(Exception):
                writer.close()
            log.debug("FakeTWS: connection %s (client %s) closed", conn.id, conn.client_id)


def on_server_loop(fn):
    """Run a public FakeTWS method on the server's loop when called from another thread."""

    @functools.wraps(fn)
    def wrapper(self, *args, **kwargs):
        loop = self.transport.loop
        if loop is None or not loop.is_running() or threading.get_ident() == self.transport.thread_id:
            return fn(self, *args, **kwargs)
        fut: concurrent.futures.Future = concurrent.futures.Future()

        def run():
            try:
                fut.set_result(fn(self, *args, **kwargs))
            except BaseException as e:  # noqa: BLE001 - re-raised in the caller's thread
                fut.set_exception(e)

        loop.call_soon_threadsafe(run)
        return fut.result(timeout=10)

    return wrapper


def run_loop_in_thread(start: Callable[[], Awaitable[object]], name: str) -> threading.Thread:
    """Start a daemon thread with a new event loop that awaits ``start()`` then runs forever; return
    once started, re-raising what ``start()`` raised."""
    ready = threading.Event()
    errors: list[BaseException] = []

    def run():
        loop = asyncio.new_event_loop()
        asyncio.set_event_loop(loop)
        try:
            loop.run_until_complete(start())
        except BaseException as e:  # noqa: BLE001
            errors.append(e)
            ready.set()
            loop.close()
            return
        ready.set()
        try:
            loop.run_forever()
        finally:
            loop.run_until_complete(loop.shutdown_asyncgens())
            loop.close()

    t = threading.Thread(target=run, name=name, daemon=True)
    t.start()
    ready.wait(10)
    if errors:
        raise errors[0]
    return t
