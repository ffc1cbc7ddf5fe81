"""The record of every message in and out, for tests to inspect (also logged at DEBUG on
``alvh.faketws``)."""

from __future__ import annotations

import logging
import time
from collections import deque
from collections.abc import Iterator
from dataclasses import dataclass

from . import wire

log = logging.getLogger("alvh.faketws")

_ARROWS = {"in": "<<<", "out": ">>>", "dropped": "xxx"}


@dataclass
class Msg:
    """One transcript entry.  direction: 'in' (client->server), 'out', 'dropped'."""

    ts: float
    direction: str
    conn_id: int
    client_id: int | None
    msg_id: int
    name: str
    fields: list[str]

    def __repr__(self) -> str:  # compact, for assertion messages
        return f"<{self.direction} c{self.client_id} {self.name} {self.fields[:8]}>"


class Transcript:
    """The last ``limit`` messages (all with None); iterates, indexes and counts like a list. The limit
    keeps a server that lives through many sessions, or streams all day, from growing without end."""

    def __init__(self, limit: int | None = None) -> None:
        self._items: deque[Msg] = deque(maxlen=limit)

    def record(self, direction: str, conn_id: int, client_id: int | None, msg_id: int, fields: list,
               name: str | None = None) -> None:
        fields = [wire.fmt_field(f) for f in fields]
        nm = name or wire.msg_name(msg_id, "in" if direction == "in" else "out")
        self._items.append(Msg(time.time(), direction, conn_id, client_id, msg_id, nm, fields))
        if log.isEnabledFor(logging.DEBUG):
            log.debug("%s c%s %s %s", _ARROWS[direction], client_id, nm, ",".join(fields))

    def received(self, msg_type: int | str | None = None, client_id: int | None = None) -> list[Msg]:
        """Entries the client sent (optionally of one type / client)."""
        mid = wire.in_msg_id(msg_type) if msg_type is not None else None
        return self._select("in", mid, client_id)

    def sent(self, msg_type: int | str | None = None, client_id: int | None = None) -> list[Msg]:
        """Entries the server sent (optionally of one type / client)."""
        mid = wire.out_msg_id(msg_type) if msg_type is not None else None
        return self._select("out", mid, client_id)

    def _select(self, direction: str, msg_id: int | None, client_id: int | None) -> list[Msg]:
        return [m for m in list(self._items) if m.direction == direction
                and (msg_id is None or m.msg_id == msg_id) and (client_id is None or m.client_id == client_id)]

    def __iter__(self) -> Iterator[Msg]:
        return iter(list(self._items))

    def __len__(self) -> int:
        return len(self._items)

    def __getitem__(self, i):
        return self._items[i]
