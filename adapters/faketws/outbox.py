"""Everything the server sends goes through the outbox: it is recorded in the transcript, then written,
held back (``delay_replies``) or dropped (``drop_replies``)."""

from __future__ import annotations

import asyncio
from collections.abc import Callable

from . import wire
from .sessions import Session
from .transcript import Transcript
from .wire import OUT

ALL_TYPES = "*"  # the delays key that holds back every message type


class Outbox:
    def __init__(self, transcript: Transcript, loop: Callable[[], asyncio.AbstractEventLoop | None]):
        self.transcript = transcript
        self._loop = loop
        self.drops: set[int] = set()
        self.delays: dict[int | str, float] = {}

    def record(self, direction: str, conn: Session, msg_id: int, fields: list, name: str | None = None) -> None:
        self.transcript.record(direction, conn.id, conn.client_id, msg_id, fields, name)

    def send(self, conn: Session, fields: list) -> None:
        if conn.closed:
            return
        msg_id = int(fields[0])
        if msg_id in self.drops:
            self.record("dropped", conn, msg_id, fields)
            return
        data = wire.encode_msg(fields)
        delay = self.delays.get(msg_id, self.delays.get(ALL_TYPES, 0.0))
        self.record("out", conn, msg_id, fields)
        loop = self._loop()
        if delay and loop is not None:
            loop.call_later(delay, conn.write_raw, data)
        else:
            conn.write_raw(data)

    def error(self, conn: Session, req_id: int, code: int, msg: str, advanced: str = "") -> None:
        self.send(conn, [OUT.ERR_MSG, 2, req_id, code, msg, advanced])
