"""Interactive Brokers error and status codes, kept as data.

TWS reports everything - connectivity, pacing, order rejections, farm notices - through one
`error(reqId, code, message)` callback. The adapter decides what to do from the code alone, so the
codes live here as named sets and `classify()` maps a code to one `ErrorKind`. Sources: IB's
"Message Codes" page and ib_async 2.1.0's wrapper.error (see docs/daemon.md).
"""
from __future__ import annotations

import enum


class ErrorKind(str, enum.Enum):
    INFO = "info"                          # farm notices and other informational messages
    CONNECTIVITY_LOST = "connectivity_lost"        # 1100, 2110: pause trading, keep the socket
    RESTORED_DATA_LOST = "restored_data_lost"      # 1101: resubscribe market data, then reconcile
    RESTORED_DATA_KEPT = "restored_data_kept"      # 1102: reconcile, resume
    CLIENT_ID_IN_USE = "client_id_in_use"          # 326: connect never completes; change id or back off
    SOCKET = "socket"                      # 502/504/507/509...: the socket is unusable -> reconnect
    PACING = "pacing"                      # 100, 162 (historical), 420: slow down
    MARKET_DATA = "market_data"            # not subscribed / delayed only: the quote is missing
    COMPETING_SESSION = "competing_session"        # 10197: another session holds market data
    ORDER_REJECTED = "order_rejected"      # the order is dead at IB (201, 10058, ...)
    ORDER_CANCELLED = "order_cancelled"    # 202 (cancel confirmed), 10148 (already cancelled/filled)
    ORDER_WARNING = "order_warning"        # 399, 404, 10167...: the order is still live
    CONTRACT = "contract"                  # 200 (no security definition), 321 (request validation)
    DUPLICATE_ORDER_ID = "duplicate_order_id"      # 103
    OTHER = "other"


CONNECTIVITY_LOST = frozenset({1100, 2110})
RESTORED_DATA_LOST = frozenset({1101})
RESTORED_DATA_KEPT = frozenset({1102})
CLIENT_ID_IN_USE = frozenset({326})
SOCKET_ERRORS = frozenset({502, 504, 507, 509, 1300})
PACING = frozenset({100, 162, 420})
# the quote is missing: not subscribed, no permissions (10167 is only "showing delayed data": a warning)
MARKET_DATA = frozenset({354, 10089, 10090, 10168, 10186})
COMPETING_SESSION = frozenset({10197})
DUPLICATE_ORDER_ID = frozenset({103})
ORDER_CANCELLED = frozenset({202, 10148})
ORDER_WARNING = frozenset({105, 110, 329, 399, 404, 10167})  # the order is still live
CONTRACT = frozenset({200, 321})
ORDER_REJECTED = frozenset({
    104, 106, 107, 109, 111, 113, 116, 117, 118, 119, 120, 121, 122, 123, 124, 125, 126, 129,
    131, 132, 133, 134, 135, 136, 137, 140, 141, 142, 143, 144, 146, 147, 148, 151, 152, 153, 154, 155,
    156, 157, 158, 159, 160, 161, 163, 164, 166, 167, 168, 201, 203, 383, 387, 388, 391, 392, 393, 394,
    395, 396, 397, 398, 400, 401, 402, 403, 405, 406, 407, 408, 409, 410, 411, 412, 413, 417, 418, 419,
    421, 422, 423, 424, 425, 426, 427, 428, 429, 430, 433, 434, 435, 436, 437, 438, 10052, 10058, 10059,
    10060, 10061, 10062, 10063, 10064, 10065, 10066, 10067, 10068, 10069, 10070, 10071, 10072, 10073,
    10074, 10075, 10076, 10077, 10078, 10079, 10080, 10081, 10082, 10083, 10084, 10085, 10086, 10087,
    10088, 10147, 10149, 10187, 10318,
})
# informational: farm status and API notices (ib_async treats every 2100-2199 code as a warning)
INFO = frozenset({2103, 2104, 2105, 2106, 2107, 2108, 2119, 2137, 2150, 2158, 2168, 2169, 10285})

_TABLE: list[tuple[frozenset[int], ErrorKind]] = [
    (CONNECTIVITY_LOST, ErrorKind.CONNECTIVITY_LOST),
    (RESTORED_DATA_LOST, ErrorKind.RESTORED_DATA_LOST),
    (RESTORED_DATA_KEPT, ErrorKind.RESTORED_DATA_KEPT),
    (CLIENT_ID_IN_USE, ErrorKind.CLIENT_ID_IN_USE),
    (SOCKET_ERRORS, ErrorKind.SOCKET),
    (PACING, ErrorKind.PACING),
    (COMPETING_SESSION, ErrorKind.COMPETING_SESSION),
    (MARKET_DATA, ErrorKind.MARKET_DATA),
    (DUPLICATE_ORDER_ID, ErrorKind.DUPLICATE_ORDER_ID),
    (ORDER_CANCELLED, ErrorKind.ORDER_CANCELLED),
    (ORDER_WARNING, ErrorKind.ORDER_WARNING),
    (CONTRACT, ErrorKind.CONTRACT),
    (ORDER_REJECTED, ErrorKind.ORDER_REJECTED),
    (INFO, ErrorKind.INFO),
]


def classify(code: int) -> ErrorKind:
    """The one kind a TWS error code belongs to (unknown codes are OTHER)."""
    code = int(code)
    for codes, kind in _TABLE:
        if code in codes:
            return kind
    if 2100 <= code < 2200:
        return ErrorKind.INFO
    return ErrorKind.OTHER


def is_order_terminal(code: int) -> bool:
    """An error on a live order id that ends the order at IB (ib_async marks the trade Cancelled)."""
    return classify(code) in (ErrorKind.ORDER_REJECTED, ErrorKind.ORDER_CANCELLED, ErrorKind.DUPLICATE_ORDER_ID)


# Order statuses as TWS spells them
WORKING_STATUSES = frozenset({"PendingSubmit", "ApiPending", "PreSubmitted", "Submitted", "PendingCancel"})
ACKED_STATUSES = frozenset({"PreSubmitted", "Submitted"})
DONE_STATUSES = frozenset({"Filled", "Cancelled", "ApiCancelled", "Inactive"})
