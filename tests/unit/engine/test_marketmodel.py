"""MarketModel: the snapshot state the VIX-option surface is built from."""
import datetime as dt
import math

import pytest

from engine.clock import ET
from engine.events import MarketQuotes, MarketSnapshot, Phase
from engine.instruments import vix_option
from engine.marketmodel import MarketModel, PricingParams
from engine.volsurface import VixOptionSurface

DAY = dt.date(2024, 3, 4)
FITTED = {"atm_ratio": 1.1008, "kappa": 10.1694, "long_vol": 0.2073, "long_vol_contango": 2.7085,
          "contango_min": 0.0013, "contango_max": 0.1358, "skew": 0.0, "skew_vol": 0.8657}


def _model(vx: dict[dt.date, float], vix: float = 14.0, **vix_options) -> MarketModel:
    q = MarketQuotes(spx=5100.0, vix=vix, rate=0.05, vvix=85.0, vx=vx)
    snap = MarketSnapshot(dt.datetime(2024, 3, 4, 16, 0, tzinfo=ET), DAY, Phase.CLOSE, q)
    return MarketModel(snap, PricingParams(vix_options=vix_options or FITTED))


def test_the_front_future_is_the_nearest_expiry_at_least_a_week_away():
    near, front, back = dt.date(2024, 3, 6), dt.date(2024, 3, 20), dt.date(2024, 4, 17)
    assert _model({near: 13.9, front: 15.2, back: 16.1}).vx_front() == 15.2
    assert _model({dt.date(2024, 3, 11): 15.0, back: 16.1}).vx_front() == 15.0          # exactly 7 days
    assert _model({front: math.nan, back: 16.1}).vx_front() == 16.1
    assert math.isnan(_model({near: 13.9}).vx_front())


def test_vix_options_are_priced_with_the_front_and_vix_of_the_snapshot():
    back = dt.date(2024, 7, 17)
    curve = {dt.date(2024, 3, 20): 15.2, back: 18.0}
    m = _model(curve, vix=14.0)
    expect = VixOptionSurface(18.0, 0.05, 85.0, PricingParams(vix_options=FITTED).vix_option_params(),
                              vix=14.0, front=15.2)
    assert m.vix_surface(back).atm_vol(0.37) == pytest.approx(expect.atm_vol(0.37), rel=1e-14)
    # a flatter curve (same back month, VIX up to the front) lowers the far option's price
    flat = _model(curve, vix=15.2)
    opt = vix_option(back, 22.0, "C")
    assert flat.mid_list([opt])[0] < m.mid_list([opt])[0]
