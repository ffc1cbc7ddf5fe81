"""Loopback TWS-protocol test server (FakeTWS) for the IB paper adapter's tests and rehearsals.

    from adapters.faketws import FakeTWS, FillPartial
    async with FakeTWS() as srv:
        ...

See docs/ib-test-server.md.
"""

from .contracts import BAG_CONID, SPX_CONID, VIX_CONID, ContractSpec, ContractUniverse
from .expiries import third_friday, vx_expiry
from .fills import FillAll, FillDecision, FillPartial, FillPolicy, MarketableFill, NeverFill, Reject
from .pricing import bs_price, implied_vol
from .quotes import DefaultQuoteProvider, Quote


def __getattr__(name: str):
    # imported lazily so `python -m adapters.faketws.server` runs without a runpy warning
    if name in ("FakeTWS", "Msg"):
        from . import server

        return getattr(server, name)
    raise AttributeError(name)


__all__ = [
    "BAG_CONID",
    "SPX_CONID",
    "VIX_CONID",
    "ContractSpec",
    "ContractUniverse",
    "DefaultQuoteProvider",
    "FakeTWS",
    "FillAll",
    "FillDecision",
    "FillPartial",
    "FillPolicy",
    "MarketableFill",
    "Msg",
    "NeverFill",
    "Quote",
    "Reject",
    "bs_price",
    "implied_vol",
    "third_friday",
    "vx_expiry",
]
