"""What the FakeTWS loopback tests share: the pinned clock, the asyncio runner and poller, SPXW option
and iron-condor contracts for the real ib_async client, and a check that ib_async decoded every message."""

from __future__ import annotations

import asyncio
import datetime as dt
import time

import pytest
from ib_async import IB, ComboLeg, Contract, Option

HOST = "127.0.0.1"
NOW = dt.datetime(2024, 1, 10, 15, 0, tzinfo=dt.UTC)  # Wed 10:00 ET
WEEKLY = "20240117"  # SPXW daily/weekly expiry, 7 days out
MONTHLY = "20240119"  # 3rd Friday: both SPX (AM) and SPXW (PM) list it


@pytest.fixture(autouse=True)
def no_decode_errors(caplog):
    """Any message ib_async fails to decode (or can't route) is a FakeTWS layout bug."""
    yield
    bad = [r.getMessage() for r in caplog.records
           if r.name == "ib_async.Decoder" or "Error for " in r.getMessage()
           or "No order found" in r.getMessage() or "Unknown reqId" in r.getMessage()]
    assert not bad, bad


def run(coro, timeout: float = 20.0):
    return asyncio.run(asyncio.wait_for(coro, timeout))


async def until(pred, timeout: float = 2.0, what: str = "condition"):
    deadline = time.monotonic() + timeout
    while not pred():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        await asyncio.sleep(0.01)


def spxw(strike: float, right: str, expiry: str = WEEKLY) -> Option:
    return Option("SPX", expiry, strike, right, "SMART", tradingClass="SPXW")


async def iron_condor(ib: IB, reverse: bool = False) -> Contract:
    """4-leg SPXW iron condor: short 4900P/5100C, long 4850P/5150C (reverse flips actions)."""
    legs = [spxw(4850, "P"), spxw(4900, "P"), spxw(5100, "C"), spxw(5150, "C")]
    await ib.qualifyContractsAsync(*legs)
    actions = ["BUY", "SELL", "SELL", "BUY"]
    if reverse:
        actions = ["SELL" if a == "BUY" else "BUY" for a in actions]
    return Contract(
        secType="BAG", symbol="SPX", exchange="SMART", currency="USD",
        comboLegs=[ComboLeg(conId=c.conId, ratio=1, action=a, exchange="SMART") for c, a in zip(legs, actions)],
    )
