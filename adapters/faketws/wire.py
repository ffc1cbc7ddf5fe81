"""TWS wire protocol framing and field encoding (server side).

Both directions carry frames of ``4-byte big-endian length`` + payload, the payload
being NUL-terminated ASCII fields.  The very first bytes a client sends are
``b"API\\0"`` followed by one length-prefixed frame holding ``v<min>..<max>``;
the server answers with one frame of exactly two fields (version, time).

This module knows nothing about the account or sockets: it encodes/decodes fields
and names message ids, so the server and the tests can share it.
"""

from __future__ import annotations

import math
import struct
from collections.abc import Iterable, Sequence

HEADER = struct.Struct(">I")
MAX_FRAME = 16 * 1024 * 1024

# The value TWS uses on the wire for "unset double" / "unset int".
UNSET_DOUBLE_STR = "1.7976931348623157E308"
UNSET_INTEGER_STR = "2147483647"


# ---------------------------------------------------------------- message ids
class IN:
    """Client -> server message ids (as sent by ib_async 2.1.0)."""

    REQ_MKT_DATA = 1
    CANCEL_MKT_DATA = 2
    PLACE_ORDER = 3
    CANCEL_ORDER = 4
    REQ_OPEN_ORDERS = 5
    REQ_ACCT_DATA = 6
    REQ_EXECUTIONS = 7
    REQ_IDS = 8
    REQ_CONTRACT_DATA = 9
    REQ_MKT_DEPTH = 10
    CANCEL_MKT_DEPTH = 11
    REQ_NEWS_BULLETINS = 12
    CANCEL_NEWS_BULLETINS = 13
    SET_SERVER_LOGLEVEL = 14
    REQ_AUTO_OPEN_ORDERS = 15
    REQ_ALL_OPEN_ORDERS = 16
    REQ_MANAGED_ACCTS = 17
    REQ_HISTORICAL_DATA = 20
    REQ_CURRENT_TIME = 49
    REQ_GLOBAL_CANCEL = 58
    REQ_MARKET_DATA_TYPE = 59
    REQ_POSITIONS = 61
    REQ_ACCOUNT_SUMMARY = 62
    CANCEL_ACCOUNT_SUMMARY = 63
    CANCEL_POSITIONS = 64
    START_API = 71
    REQ_POSITIONS_MULTI = 74
    CANCEL_POSITIONS_MULTI = 75
    REQ_ACCOUNT_UPDATES_MULTI = 76
    CANCEL_ACCOUNT_UPDATES_MULTI = 77
    REQ_SEC_DEF_OPT_PARAMS = 78
    REQ_MATCHING_SYMBOLS = 81
    REQ_HEAD_TIMESTAMP = 87
    REQ_PNL = 92
    CANCEL_PNL = 93
    REQ_PNL_SINGLE = 94
    CANCEL_PNL_SINGLE = 95
    REQ_HISTORICAL_TICKS = 96
    REQ_COMPLETED_ORDERS = 99
    REQ_USER_INFO = 104


class OUT:
    """Server -> client message ids."""

    TICK_PRICE = 1
    TICK_SIZE = 2
    ORDER_STATUS = 3
    ERR_MSG = 4
    OPEN_ORDER = 5
    ACCT_VALUE = 6
    PORTFOLIO_VALUE = 7
    ACCT_UPDATE_TIME = 8
    NEXT_VALID_ID = 9
    CONTRACT_DATA = 10
    EXECUTION_DATA = 11
    MANAGED_ACCTS = 15
    HISTORICAL_DATA = 17
    TICK_OPTION_COMPUTATION = 21
    TICK_GENERIC = 45
    TICK_STRING = 46
    CURRENT_TIME = 49
    CONTRACT_DATA_END = 52
    OPEN_ORDER_END = 53
    ACCT_DOWNLOAD_END = 54
    EXECUTION_DATA_END = 55
    TICK_SNAPSHOT_END = 57
    MARKET_DATA_TYPE = 58
    COMMISSION_REPORT = 59
    POSITION_DATA = 61
    POSITION_END = 62
    ACCOUNT_SUMMARY = 63
    ACCOUNT_SUMMARY_END = 64
    POSITION_MULTI = 71
    POSITION_MULTI_END = 72
    ACCOUNT_UPDATE_MULTI = 73
    ACCOUNT_UPDATE_MULTI_END = 74
    SECURITY_DEFINITION_OPTION_PARAMETER = 75
    SECURITY_DEFINITION_OPTION_PARAMETER_END = 76
    SYMBOL_SAMPLES = 79
    TICK_REQ_PARAMS = 81
    PNL = 94
    PNL_SINGLE = 95
    COMPLETED_ORDER = 101
    COMPLETED_ORDERS_END = 102
    USER_INFO = 107


def _names(cls) -> dict[int, str]:
    return {v: k for k, v in vars(cls).items() if k.isupper() and isinstance(v, int)}


IN_NAMES: dict[int, str] = _names(IN)
OUT_NAMES: dict[int, str] = _names(OUT)

# camelCase aliases matching ib_async's wrapper/client method names; usable wherever the
# server API takes a "message type" (delay_replies, drop_replies, transcript filters).
OUT_ALIASES: dict[str, int] = {
    "tickPrice": 1,
    "tickSize": 2,
    "orderStatus": 3,
    "error": 4,
    "openOrder": 5,
    "updateAccountValue": 6,
    "updatePortfolio": 7,
    "updateAccountTime": 8,
    "nextValidId": 9,
    "contractDetails": 10,
    "execDetails": 11,
    "managedAccounts": 15,
    "tickOptionComputation": 21,
    "tickGeneric": 45,
    "tickString": 46,
    "currentTime": 49,
    "contractDetailsEnd": 52,
    "openOrderEnd": 53,
    "accountDownloadEnd": 54,
    "execDetailsEnd": 55,
    "tickSnapshotEnd": 57,
    "marketDataType": 58,
    "commissionReport": 59,
    "position": 61,
    "positionEnd": 62,
    "accountSummary": 63,
    "accountSummaryEnd": 64,
    "positionMulti": 71,
    "positionMultiEnd": 72,
    "accountUpdateMulti": 73,
    "accountUpdateMultiEnd": 74,
    "securityDefinitionOptionParameter": 75,
    "securityDefinitionOptionParameterEnd": 76,
    "symbolSamples": 79,
    "tickReqParams": 81,
    "completedOrder": 101,
    "completedOrdersEnd": 102,
}

IN_ALIASES: dict[str, int] = {
    "reqMktData": 1,
    "cancelMktData": 2,
    "placeOrder": 3,
    "cancelOrder": 4,
    "reqOpenOrders": 5,
    "reqAccountUpdates": 6,
    "reqExecutions": 7,
    "reqIds": 8,
    "reqContractDetails": 9,
    "reqAutoOpenOrders": 15,
    "reqAllOpenOrders": 16,
    "reqManagedAccts": 17,
    "reqHistoricalData": 20,
    "reqCurrentTime": 49,
    "reqGlobalCancel": 58,
    "reqMarketDataType": 59,
    "reqPositions": 61,
    "reqAccountSummary": 62,
    "cancelAccountSummary": 63,
    "cancelPositions": 64,
    "startApi": 71,
    "reqPositionsMulti": 74,
    "cancelPositionsMulti": 75,
    "reqAccountUpdatesMulti": 76,
    "cancelAccountUpdatesMulti": 77,
    "reqSecDefOptParams": 78,
    "reqCompletedOrders": 99,
}


def _msg_id(key: int | str, ids, aliases: dict, direction: str) -> int:
    if isinstance(key, int):
        return key
    if key in aliases:
        return aliases[key]
    up = key.upper()
    if hasattr(ids, up):
        return getattr(ids, up)
    raise KeyError(f"unknown {direction} message type {key!r}")


def out_msg_id(key: int | str) -> int:
    """Resolve a server->client message type given as id, OUT constant name or alias."""
    return _msg_id(key, OUT, OUT_ALIASES, "outgoing")


def in_msg_id(key: int | str) -> int:
    """Resolve a client->server message type given as id, IN constant name or alias."""
    return _msg_id(key, IN, IN_ALIASES, "incoming")


def msg_name(msg_id: int, direction: str) -> str:
    table = IN_NAMES if direction == "in" else OUT_NAMES
    return table.get(msg_id, f"MSG_{msg_id}")


# ---------------------------------------------------------------- encoding
def fmt_float(x: float | None) -> str:
    """Float for the wire: '' for None/nan, shortest repr otherwise."""
    if x is None:
        return ""
    x = float(x)
    if math.isnan(x):
        return ""
    if math.isinf(x):
        return "Infinite" if x > 0 else "-Infinite"
    # repr gives the shortest round-tripping form ('5650.0', '0.35', '1e-05')
    return repr(x)


def fmt_field(v) -> str:
    """Format one field the way TWS does: bools as 1/0, None as empty."""
    if v is None:
        return ""
    if isinstance(v, bool):
        return "1" if v else "0"
    if isinstance(v, int):
        return str(v)
    if isinstance(v, float):
        return fmt_float(v)
    return str(v)


def encode_payload(fields: Sequence) -> bytes:
    """Join fields into one NUL-terminated payload (no length prefix)."""
    return b"".join(fmt_field(f).encode("ascii", errors="replace") + b"\0" for f in fields)


def frame(payload: bytes) -> bytes:
    return HEADER.pack(len(payload)) + payload


def encode_msg(fields: Sequence) -> bytes:
    """Encode fields into a complete length-prefixed frame."""
    return frame(encode_payload(fields))


def decode_payload(payload: bytes) -> list[str]:
    """Split a frame payload into string fields (drops the trailing empty element)."""
    fields = payload.decode("ascii", errors="backslashreplace").split("\0")
    if fields and fields[-1] == "":
        fields.pop()
    return fields


def split_frames(buf: bytes) -> tuple[list[bytes], bytes]:
    """Split as many complete frames as possible from buf; return (payloads, rest)."""
    out = []
    while len(buf) >= 4:
        (n,) = HEADER.unpack_from(buf)
        if n > MAX_FRAME:
            raise ValueError(f"frame too large: {n}")
        if len(buf) < 4 + n:
            break
        out.append(buf[4 : 4 + n])
        buf = buf[4 + n :]
    return out, buf


def parse_version_range(payload: bytes) -> tuple[int, int, str]:
    """Parse the handshake payload 'v157..178[ options]' -> (min, max, options)."""
    text = payload.decode("ascii", errors="replace").strip("\0")
    opts = ""
    if " " in text:
        text, opts = text.split(" ", 1)
    if not text.startswith("v"):
        raise ValueError(f"bad version range {text!r}")
    body = text[1:]
    if ".." in body:
        lo, hi = body.split("..", 1)
    else:
        lo = hi = body
    return int(lo), int(hi), opts


# ---------------------------------------------------------------- decoding helper
class FieldReader:
    """Sequential typed reader over a message's string fields."""

    def __init__(self, fields: Iterable[str]):
        self.fields = list(fields)
        self.pos = 0

    def remaining(self) -> int:
        return len(self.fields) - self.pos

    def str(self) -> str:
        if self.pos >= len(self.fields):
            raise IndexError("message too short")
        v = self.fields[self.pos]
        self.pos += 1
        return v

    def int(self, default: int = 0) -> int:
        v = self.str()
        if v == "" or v == UNSET_INTEGER_STR:
            return default
        return int(float(v))

    def float(self, default: float | None = None) -> float | None:
        v = self.str()
        if v == "":
            return default
        if v in ("Infinite", "inf"):
            return math.inf
        f = float(v)
        if f >= 1.7e308:
            return default
        return f

    def bool(self) -> bool:
        v = self.str()
        if v == "":
            return False
        if v.lower() in ("true", "false"):
            return v.lower() == "true"
        return bool(int(float(v)))

    def skip(self, n: int = 1) -> None:
        self.pos += n


def read_contract(r: FieldReader) -> dict:
    """The 12 contract fields most requests start with, under ib_async's names."""
    return {
        "conId": r.int(),
        "symbol": r.str(),
        "secType": r.str(),
        "lastTradeDateOrContractMonth": r.str(),
        "strike": r.float(0.0) or 0.0,
        "right": r.str(),
        "multiplier": r.str(),
        "exchange": r.str(),
        "primaryExchange": r.str(),
        "currency": r.str(),
        "localSymbol": r.str(),
        "tradingClass": r.str(),
    }
