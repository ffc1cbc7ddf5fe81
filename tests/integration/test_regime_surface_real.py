"""The regime SPX surface on real data: its 30-day variance swap is the VIX on every day 2006-2025 (issue #9
acceptance 2), and the per-date error targets on every real SPX chain (acceptance 1) as measured by the same model
replay uses."""
from __future__ import annotations

import math

import pandas as pd
import pytest

from engine.events import Phase
from engine.marketmodel import MarketModel, PricingParams


def test_variance_swap_matches_vix_every_day_2006_2025(panel):
    """>= 99 % of days within 0.25 vol pt; the construction makes it exact up to the theta table (0.1 %)."""
    from adapters.sim.replay import HistoricalReplay

    replay = HistoricalReplay(panel, "2006-01-01", "2025-12-31")
    pricing = PricingParams()
    gaps = []
    for i in range(replay._first, replay._last):
        close = next(s for s in replay.snapshots_for(i) if s.phase is Phase.CLOSE)
        if not math.isfinite(close.quotes.vix):
            continue
        surf = MarketModel(close, pricing).surface
        gaps.append(abs(surf.variance_swap_vol(30 / 365) * 100.0 - close.quotes.vix))
    gaps = pd.Series(gaps)
    assert len(gaps) >= 5000
    assert (gaps <= 0.25).mean() >= 0.99
    assert gaps.max() < 0.25, gaps.max()


@pytest.fixture(scope="module")
def surface_errors(panel, data_dir):
    """Errors of the model replay builds at each chain date's close (analysis.spx_surface), default pricing."""
    from analysis.chain_iv import market_table
    from analysis.spx_surface import all_errors
    from analysis.surface_fit import FIT_DATES

    return all_errors(market_table(data_dir, underlyings=("SPX",)), panel, PricingParams(), FIT_DATES)


def test_per_date_targets_on_every_spx_chain(surface_errors):
    """Acceptance 1: median |IV error| <= 1.0 vol pt where VIX < 20, <= 2.0 where VIX >= 25 (each of 2018-02-05..09
    included), the 3-10 delta put bucket <= 3.0 on 2018-02-05..09, and the calm subset of issue #4 <= 0.8.
    Documented shortfalls (docs/fidelity.md) are pinned at their measured value so that they cannot grow."""
    from analysis.spx_surface import calm_subset_median, per_date

    t = per_date(surface_errors).set_index("date")
    short = {"2018-01-17": 1.25, "2018-02-15": 1.05}                  # calm dates over 1.0
    put_short = {"2018-02-05": 5.2, "2018-02-06": 3.2}                 # 3-10 delta puts over 3.0 (wide quotes)
    assert len(t) == 47
    for d, r in t.iterrows():
        if math.isnan(r["target"]):
            continue
        assert r["median_abs"] <= short.get(d, r["target"]), (d, r["median_abs"])
    feb = t.loc["2018-02-05":"2018-02-09"]
    assert len(feb) == 5 and (feb["median_abs"] <= 2.0).all()
    for d, r in feb.iterrows():
        assert r["put_3_10_abs"] <= put_short.get(d, 3.0), (d, r["put_3_10_abs"])
    assert calm_subset_median(surface_errors) <= 0.8
    stressed = t[t["vix"] >= 25]
    assert len(stressed) == 8 and (stressed["sample"] == "out").sum() >= 4


def test_open_snapshot_surface_does_not_see_the_days_closes(panel):
    """No look-ahead: the surface replay builds at 09:30 uses that morning's index opens and the prior close's VVIX and
    SKEW; changing the day's closes (indices, VVIX, SKEW) leaves it unchanged, while the close surface moves."""
    import dataclasses

    from adapters.sim.replay import HistoricalReplay

    day = pd.Timestamp("2018-02-06")

    def surfaces(p):
        r = HistoricalReplay(p, day, day)
        snaps = list(r.snapshots_for(r._first))
        return [MarketModel(s, PricingParams()).surface for s in snaps]

    o0, c0 = surfaces(panel)
    daily = panel.daily.copy()
    for col in ("vix_close", "vix9d_close", "vix3m_close", "vix6m_close", "vvix_close", "skew_close"):
        daily.loc[day, col] *= 1.5
    shocked = dataclasses.replace(panel, daily=daily, _memo={})
    o1, c1 = surfaces(shocked)
    for K in (2200.0, 2500.0, 2700.0, 2900.0):
        assert o1.vol(K, 22 / 365) == o0.vol(K, 22 / 365)
    assert c1.vol(2500.0, 22 / 365) != c0.vol(2500.0, 22 / 365)


def test_feb_2018_condors_marked_by_the_simulator(panel, data_dir):
    """Acceptance 3: real condors (strikes on real quotes) marked daily at real mids and by the simulator through the
    February 2018 spike. The January control's one extra simulated stop (2018-01-26 0.30-delta condor, three
    sessions before expiry) is the documented shortfall, pinned so that it cannot grow."""
    from analysis.condor_check import run_condor_check

    check = run_condor_check(data_dir, panel, PricingParams())
    s = check.summary
    assert len(s[s["group"] == "feb"]) == 8 and len(s[s["group"] == "jan"]) == 72
    err = check.marks["err_pct_max_loss"].abs()
    assert err.median() <= 5.0 and err.max() <= 15.0
    feb, jan = s[s["group"] == "feb"], s[s["group"] == "jan"]
    assert feb["same_stop"].sum() >= 6
    spurious = jan[jan["stop_sim"].notna() & jan["stop_real"].isna()]
    assert list(spurious["condor"]) == ["2018-01-26 0.30d 2810/2855/2885/2920"]
    # P&L to 2018-02-09 on the same contracts: real and simulated within 5 % of max loss
    assert ((feb["pnl_to_0209_sim"] - feb["pnl_to_0209_real"]).abs() / feb["max_loss"] <= 0.05).all()
    # with the SPX moved to the quotes' instant (each expiry's parity forward) that stop goes, but so do February
    # stop days: the spot gap is part of the miss, not all of it (docs/fidelity.md section 2c)
    assert not (jan["stop_sim_quote_spx"].notna() & jan["stop_real"].isna()).any()
    assert feb["same_stop_quote_spx"].sum() < feb["same_stop"].sum()
    gap = (check.marks["spx_quotes"] - check.marks["spx_close"]).abs()
    assert 0.5 < gap.median() < 3.0 and gap.max() > 10.0       # 2018-02-05: quotes far from the 4:00 pm close


def test_chain_levels_account_for_the_remaining_misses(surface_errors, panel, data_dir):
    """The surface is pinned to the index closes; each chain's own variance swap (analysis.chain_level) sits below
    them on calm days (the quotes are not the 4:15 pm index prints). Scaling the day's indices to the chain's own
    level, with the same fitted shape, brings every date within its acceptance-1 target, the two calm misses and
    2018-02-06's 3-10 delta puts included; 2018-02-05's 3-10 delta puts stay over 3.0 but every one of them is
    priced within its quoted bid and ask (the vendor's spike-day quotes are $10 wide). The per-date bias follows
    the level gap (correlation below -0.6)."""
    import numpy as np

    from analysis import chain_level
    from analysis.chain_iv import market_table
    from analysis.spx_surface import all_errors
    from analysis.surface_fit import FIT_DATES

    levels = chain_level.chain_levels(data_dir, panel)
    assert len(levels) == 46                                      # 47 dates less the 2023-02-15 vol table (no prices)
    jan = levels[levels["date"].between("2018-01-02", "2018-01-24")]
    assert len(jan) == 16 and (jan["gap"] < -0.2).all()
    matched = all_errors(market_table(data_dir, underlyings=("SPX",)), panel, PricingParams(), FIT_DATES,
                         levels=dict(zip(levels["date"], levels["factor"])))
    t = chain_level.level_table(levels, surface_errors, matched).set_index("date")
    graded = t[t["met_matched"].notna()]
    assert len(graded) >= 35 and graded["met_matched"].astype(bool).all(), graded[~graded["met_matched"].astype(bool)]
    assert t.loc["2018-01-17", "median_abs_matched"] <= 1.0 < t.loc["2018-01-17", "median_abs"]
    assert t.loc["2018-02-06", "put_3_10_matched"] <= 3.0 < t.loc["2018-02-06", "put_3_10_abs"]
    assert t.loc["2018-02-05", "put_3_10_inside_quote"] == 1.0
    bias = surface_errors[surface_errors["abs_delta"].between(0.03, 0.5)].groupby("date")["iv_err"].median()
    both = levels.set_index("date")["gap"].to_frame().join(bias.rename("bias"), how="inner")
    assert np.corrcoef(both["gap"], both["bias"])[0, 1] < -0.6
