"""Fidelity computations: parity forwards and market IVs on a synthetic chain, the S&P 500 total-return proxy,
the calibrated config, the surface acceptance figure, and `alvh validate` on a short real window."""
from __future__ import annotations

import json
import math
import tomllib
from dataclasses import replace
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from adapters.data.chains import ChainSnapshot
from analysis import chain_iv, replicas
from analysis import spx_surface as S
from engine.pricing import black76_price

ROOT = Path(__file__).resolve().parents[2]


def _synthetic_chain(F0=4000.0, r=0.05, vol_atm=0.20, skew=-0.8, trade_date="2023-03-08") -> tuple[ChainSnapshot, dict]:
    """Calls and puts priced with Black-76 on a known forward and discount rate, quoted +/- 2 % around the price."""
    td = pd.Timestamp(trade_date)
    rows, truth = [], {}
    for dte, root in ((14, "SPXW"), (30, "SPXW"), (44, "SPX")):
        expiry = td + pd.Timedelta(days=dte)
        h, m = (9, 30) if root == "SPX" else (16, 0)
        T = ((expiry + pd.Timedelta(hours=h, minutes=m)) - (td + pd.Timedelta(hours=16, minutes=15))).total_seconds() / (365 * 86400)
        Fe = F0 * math.exp(0.01 * T)
        truth[(expiry, root)] = (Fe, math.exp(-r * T), T)
        for K in np.arange(3000, 5001, 25.0):
            vol = vol_atm + skew * 0.1 * math.log(K / Fe)
            for right in ("C", "P"):
                px = float(black76_price(Fe, K, T, r, vol, right == "C"))
                rows.append({"expiry": expiry, "root": root, "strike": K, "right": right, "bid": round(px * 0.98, 4),
                             "ask": round(px * 1.02 + 0.05, 4), "true_vol": vol})
    q = pd.DataFrame(rows)
    q["mid"] = (q["bid"] + q["ask"]) / 2
    q["mid"] = np.where(q["bid"] > 0, q["mid"], np.nan)
    return ChainSnapshot(trade_date=td, underlying_last=F0, quotes=q), truth


def test_parity_forward_and_discount_factor_are_recovered():
    chain, truth = _synthetic_chain()
    fw = chain_iv.chain_forwards(chain).set_index(["expiry", "root"])
    for key, (Fe, D, T) in truth.items():
        assert fw.loc[key, "F"] == pytest.approx(Fe, rel=2e-4)
        assert fw.loc[key, "T"] == pytest.approx(T, rel=1e-9)
        if fw.loc[key, "dte"] >= 20:
            assert fw.loc[key, "D"] == pytest.approx(D, abs=2e-4)


def test_market_iv_from_mid_recovers_the_quoted_vol():
    chain, _ = _synthetic_chain()
    mk = chain_iv.chain_market_iv(chain)
    assert len(mk) > 100
    sub = mk[(mk["abs_delta"] > 0.05) & (mk["abs_delta"] < 0.5)]
    # quotes are +/-2 % (+0.05) around the true price, so the mid IV is within a few tenths of a vol point
    assert np.median(np.abs(sub["iv_mkt"] - sub["true_vol"])) * 100 < 0.3
    assert ((mk["right"] == "P") == (mk["strike"] < mk["F"])).all()       # out-of-the-money side only
    assert (mk.loc[mk["right"] == "C", "delta_mkt"] > 0).all() and (mk.loc[mk["right"] == "P", "delta_mkt"] < 0).all()


def test_total_return_proxy_reproduces_published_annual_sp500_total_returns(panel):
    from engine import dividends
    from strategies.benchmarks import SPX_DIVIDEND_POINTS

    assert SPX_DIVIDEND_POINTS is dividends.SPX_DIVIDEND_POINTS      # one table, in engine.dividends
    annual = replicas.spx_tr_annual(panel)
    for year, published in replicas.PUBLISHED_SPX_TR.items():
        assert annual[year] == pytest.approx(published, abs=5e-4), year
    derived = replicas.derive_dividend_points(panel, {2008: replicas.PUBLISHED_SPX_TR[2008], 2020: replicas.PUBLISHED_SPX_TR[2020]})
    assert derived[2008] == pytest.approx(SPX_DIVIDEND_POINTS[2008], abs=0.02)
    assert derived[2020] == pytest.approx(SPX_DIVIDEND_POINTS[2020], abs=0.02)


def test_calibrated_toml_is_a_valid_config_fragment():
    from config.settings import RunConfig
    from engine.regime_surface import RegimeParams

    data = tomllib.loads((ROOT / "config" / "calibrated.toml").read_text())
    cfg = RunConfig.model_validate({**data, "condor": None})
    assert cfg.pricing.spx_model == "regime"
    assert set(data["pricing"]["spx_surface"]) <= set(RegimeParams.__dataclass_fields__)
    # the committed fit is the engine default: replay prices with it whether or not a config names it
    fitted, default = cfg.pricing.regime_params(), RegimeParams()
    for name in data["pricing"]["spx_surface"]:
        assert getattr(fitted, name) == pytest.approx(getattr(default, name), abs=1e-3), name
    vo = cfg.pricing.vix_option_params()
    assert vo.kappa == data["pricing"]["vix_options"]["kappa"] > 0
    assert set(cfg.execution.spreads) == {"spx_option", "vix_option", "vx_future", "etp"}
    text = (ROOT / "config" / "calibrated.toml").read_text()
    assert "2018-02-05" in text and "2019-08-29" in text and "2022-02-04 in-sample" in text


def test_surface_with_calibrated_pricing_on_the_cboe_chains(panel, data_dir):
    """Issue #4's acceptance subset (10-30 delta, 20-60 DTE) on the three later Cboe chains, pricing as validate does."""
    from analysis.chain_iv import market_table
    from analysis.surface_fit import FIT_DATES
    from analysis.validation import pricing_for

    pricing, source = pricing_for(None)
    assert Path(source) == ROOT / "config" / "calibrated.toml"       # by default validate prices as calibrated
    fitted = tomllib.loads((ROOT / "config" / "calibrated.toml").read_text())["pricing"]
    assert pricing.vix_option_params().atm_ratio == fitted["vix_options"]["atm_ratio"]
    market = market_table(data_dir, underlyings=("SPX",))
    later = ("2023-08-18", "2023-09-14", "2024-01-05")
    err = S.all_errors(market[market["date"].isin(pd.to_datetime(list(later)))], panel, pricing, FIT_DATES)
    assert S.calm_subset_median(err, later) <= 0.8
    sub = err[err["abs_delta"].between(0.10, 0.30) & err["dte"].between(20, 60)]
    assert (sub.groupby("date")["iv_err"].apply(lambda x: x.abs().median()) <= 1.0).all()


@pytest.fixture
def cli_main(monkeypatch):
    """adapters.cli.main.main without its logging set-up: configure_logging binds structlog to the sys.stderr of the
    moment, which pytest closes after the test and would break every later test that logs."""
    from adapters.cli import main as cli

    monkeypatch.setattr(cli, "configure_logging", lambda **kw: None)
    return cli.main


def test_alvh_validate_on_a_short_real_window(data_dir, tmp_path, monkeypatch, cli_main):
    main = cli_main
    monkeypatch.setenv("ALVH_CACHE_DIR", str(tmp_path / "cache"))
    out = tmp_path / "validate"
    rc = main(["validate", "--start", "2019-01-01", "--end", "2020-12-31", "--out", str(out),
               "--data-dir", str(data_dir)])
    assert rc == 0
    summary = json.loads((out / "summary.json").read_text())
    vixy = summary["etps"]["VIXY"]
    assert vixy["start"] == "2019-01-02" and vixy["end"] == "2020-12-31"
    assert vixy["daily_corr"] >= 0.90 and vixy["weekly_corr"] >= 0.98
    assert summary["etps"]["VIXM"]["weekly_corr"] >= 0.95
    assert summary["vxth"]["2020Q1"] > 0.3
    for name in ("report.md", "etp_tracking.png", "etp_annual.png", "surface_smiles.png", "surface_errors.png",
                 "vix_options.png", "condors_feb2018.png", "cndr.png", "vxth.png", "vxth_sensitivity.png",
                 "surface_dates.csv", "surface_buckets.csv", "condor_summary.csv", "vix_options.csv"):
        assert (out / name).is_file(), name
    report = (out / "report.md").read_text()
    assert "Acceptance figures" in report and "VXTH replica 2020Q1" in report
    checks = {r["check"]: r for r in summary["acceptance"]}
    assert checks["30-day variance swap of the SPX surface vs VIX: days within 0.25 vol pt"]["met"]
    assert any(c.startswith("SPX surface 2018-02-06") for c in checks)


def test_validate_rejects_a_reversed_window(data_dir, capsys, cli_main):
    main = cli_main
    assert main(["validate", "--start", "2020-01-01", "--end", "2019-01-01", "--data-dir", str(data_dir)]) == 1
    assert "must be after" in capsys.readouterr().err


def test_vix_option_smile_on_the_three_real_chains(panel, data_dir):
    """Issue #9 target 4 (median |IV error| of 10-50 delta calls, 14-120 DTE, per chain): the replay's smile
    (config/condor.toml) is what the fit on the chains gives, and its errors are those the docs report: within 3 vol
    points on 2021-04-26 and 2023-02-15, 3.13 on 2019-08-29 (short, stated); with a chain held out, far worse."""
    from analysis import vix_options as vo
    from config.settings import load_config

    replay = load_config(ROOT / "config" / "condor.toml").pricing.vix_option_params()
    mk = vo.load_vix_market(data_dir, panel)
    refit = vo.fit_vix_options(mk)
    assert vo.fitted_values(refit) == pytest.approx(vo.fitted_values(replay), abs=2e-4)
    tab = vo.per_chain(vo.errors(replay, mk)).set_index("date")["calls_median_abs"]
    assert tab["2021-04-26"] <= 3.0 and tab["2023-02-15"] <= 3.0
    assert 3.0 < tab["2019-08-29"] <= 3.2
    before = vo.per_chain(vo.errors(replace(replay, long_vol_contango=0.0), mk)).set_index("date")["calls_median_abs"]
    assert (before > tab).sum() >= 2           # the contango term is what brings the long end in


def test_chain_variance_swap_recovers_a_flat_vol():
    """analysis.chain_level.expiry_variance (the VIX formula on one expiry) on a flat-vol synthetic chain returns that
    vol: quotes +/- 2 % (+0.05) around Black-76 prices, strikes 3000-5000 every 25 around a 4000 forward."""
    from analysis.chain_level import expiry_variance

    chain, truth = _synthetic_chain(vol_atm=0.20, skew=0.0)
    for (expiry, root), (Fe, D, T) in truth.items():
        q = chain.quotes[(chain.quotes["expiry"] == expiry) & (chain.quotes["root"] == root)]
        vs = expiry_variance(q, Fe, T, -math.log(D) / T)
        assert vs == pytest.approx(0.20, abs=0.004), (expiry, vs)
    # quotes missing altogether (bid and ask 0, a vendor gap) are skipped, two zero bids in a row end a side
    q = chain.quotes[chain.quotes["root"] == "SPX"].copy()
    Fe, D, T = next(v for (e, r), v in truth.items() if r == "SPX")
    gap = (q["right"] == "P") & q["strike"].isin([3800.0, 3825.0])
    q.loc[gap, ["bid", "ask"]] = 0.0
    assert expiry_variance(q, Fe, T, -math.log(D) / T) == pytest.approx(0.20, abs=0.004)
    q.loc[gap, "ask"] = 0.05                                      # now two real zero bids: the put side stops there
    assert expiry_variance(q, Fe, T, -math.log(D) / T) < 0.20 - 0.004


def test_vix_chains_own_level_against_vvix(panel, data_dir):
    """analysis.chain_level.vix_levels: each priced VIX chain's own 30-day level, built as VVIX is (monthlies around
    30 days). The 2021 chain (the 16:15 stamp, the close) agrees with that day's VVIX close within 1 %; the 2019
    pre-open download sits 2.6 % under the prior VVIX close it is scored with, and at its own level the calls'
    error falls under the 3 vol pt target (docs/fidelity.md section 2b). 2023 is a vol table: no level."""
    from analysis.chain_level import vix_levels
    from analysis.validation import pricing_for, vix_chain_table
    from analysis.vix_options import errors, load_vix_market

    lv = vix_levels(data_dir, panel).set_index("date")
    assert lv.loc["2021-04-26", "factor"] == pytest.approx(1.0, abs=0.01)
    assert 0.965 < lv.loc["2019-08-29", "factor"] < 0.985
    assert math.isnan(lv.loc["2023-02-15", "factor"])
    pricing, _ = pricing_for(None)
    mk = load_vix_market(data_dir, panel)
    t = vix_chain_table(mk, errors(pricing.vix_option_params(), mk), lv.reset_index(), pricing).set_index("date")
    assert t.loc["2019-08-29", "calls_median_abs"] > 3.0 >= t.loc["2019-08-29", "calls_median_abs_matched"]
    assert math.isnan(t.loc["2023-02-15", "calls_median_abs_matched"])
