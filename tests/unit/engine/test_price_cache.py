"""SnapshotPrices / PriceCache: what is shared, what is keyed, what is bounded (results: tests/integration/test_shared_prices_replay.py)."""
import datetime as dt
import math

from engine.clock import ET
from engine.events import MarketQuotes, MarketSnapshot, Phase
from engine.instruments import spx_option, vix_option, vx_future
from engine.marketmodel import MarketModel, PriceCache, PricingParams, pricing_key

DAY = dt.date(2024, 3, 4)
EXP = dt.date(2024, 4, 19)
VXE = dt.date(2024, 4, 17)


def _snap(spx: float = 5100.0) -> MarketSnapshot:
    q = MarketQuotes(spx=spx, vix=14.0, rate=0.05, vix9d=13.0, vix3m=15.5, vix6m=16.5, vvix=85.0,
                     vx={VXE: 15.2}, etps={"VIXY": 12.0})
    return MarketSnapshot(dt.datetime(2024, 3, 4, 16, 0, tzinfo=ET), DAY, Phase.CLOSE, q)


def test_a_store_is_shared_by_snapshot_and_pricing_parameters():
    cache = PriceCache()
    p = PricingParams()
    s1, s2 = _snap(), _snap()
    a = cache.entry(s1, pricing_key(p))
    assert cache.entry(s1, pricing_key(p)) is a
    assert cache.entry(s2, pricing_key(p)) is not a                        # another snapshot object
    assert cache.entry(s1, pricing_key(PricingParams(div_yield=0.02))) is not a
    assert (cache.hits, cache.misses) == (1, 3)


def test_models_on_one_store_price_once_and_agree_with_a_private_model():
    p = PricingParams()
    snap = _snap()
    store = PriceCache().entry(snap, pricing_key(p))
    legs = [spx_option(EXP, k, r) for k in range(4000, 6000, 25) for r in "PC"]   # 160 SPX options
    legs += [vix_option(VXE, 18.0, "C"), vx_future(VXE)]
    first = MarketModel(snap, p, prices=store)
    shared = first.mid_list(legs)
    again = MarketModel(snap, p, prices=store)
    assert again.mid_list(legs) == shared and len(store.mids) == len(legs)
    # with a store every SPX option is priced on its own: the same as pricing each alone without one
    alone = [MarketModel(snap, p).mid_list([leg])[0] for leg in legs]
    assert shared == alone
    assert all(math.isfinite(x) for x in shared)


def test_memos_live_with_the_store():
    p = PricingParams()
    snap = _snap()
    store = PriceCache().entry(snap, pricing_key(p))
    MarketModel(snap, p, prices=store).memo("strikes")["k"] = 4950.0
    assert MarketModel(snap, p, prices=store).memo("strikes") == {"k": 4950.0}
    assert MarketModel(snap, p).memo("strikes") == {}                      # a private model has its own


def test_the_cache_evicts_oldest_snapshots_past_its_bound():
    p = PricingParams()
    cache = PriceCache(max_values=400)
    snaps = [_snap(5000.0 + i) for i in range(40)]
    legs = [spx_option(EXP, k, "P") for k in range(4500, 5000, 25)]        # 20 prices per snapshot
    for s in snaps:
        MarketModel(s, p, prices=cache.entry(s, pricing_key(p))).mid_list(legs)
    assert cache.values <= 400 + 28
    assert len(cache) < 40
    # the newest survive, the oldest were dropped and are priced afresh when asked again
    assert cache.entry(snaps[-1], pricing_key(p)).mids
    assert not cache.entry(snaps[0], pricing_key(p)).mids
