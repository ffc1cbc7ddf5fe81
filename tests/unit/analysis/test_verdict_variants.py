"""The verdict's variants: the surface ensemble (file checks, runs per member, robust classes over surfaces x
ladders), windows by rule and their window families, and the full cost of the hedge (the final-equity difference,
decomposed exactly)."""
from __future__ import annotations

import math
from dataclasses import replace
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from analysis.episodes import (
    ClaimBands,
    Episode,
    EpisodeFile,
    episodes_in,
    load_episodes,
    rule_recovery,
    window_family,
    with_rule_windows,
)
from analysis.scenarios import Scenario, load_surfaces
from config.errors import ConfigError
from tests.unit.analysis.test_verdict import fake_run

BASE_PRICING = {"div_yield": 0.018, "spx_model": "regime", "vix_options": {"atm_ratio": 1.0827}}


def write(tmp_path: Path, text: str) -> Path:
    p = tmp_path / "ens.toml"
    p.write_text(text)
    return p


# ---- the ensemble file --------------------------------------------------------------------------------------
def test_ensemble_members_merge_over_the_run_pricing(tmp_path):
    p = write(tmp_path, '[[member]]\nname = "base"\n[member.pricing.vix_options]\natm_ratio = 1.0827\n'
                        '[[member]]\nname = "steep"\nnote = "n"\n[member.pricing.spx_surface]\nrho0 = -0.6\n')
    ms = load_surfaces(p, BASE_PRICING)
    assert [m.name for m in ms] == ["base", "steep"]
    assert ms[1].pricing == {"spx_surface": {"rho0": -0.6}} and ms[1].note == "n"
    assert [m.name for m in load_surfaces(p, BASE_PRICING, first_only=True)] == ["base"]
    assert [m.name for m in load_surfaces(None, BASE_PRICING)] == ["default"]


@pytest.mark.parametrize("text, key, words", [
    ('[[member]]\nname = "a"\n[[member]]\nname = "b"\n[member.pricing.spx_surface]\nrho_bogus = 1.0\n',
     "member[1].pricing", ["rho_bogus"]),
    ('[[member]]\nname = "a"\n[[member]]\nname = "b"\n[member.pricing]\nspx_model = "flat"\n',
     "member[1].pricing.spx_model", ["regime"]),
    ('[[member]]\nname = "a"\n[member.pricing.spx_surface]\nrho0 = -0.3\n', "member[0].pricing",
     ["must be the default"]),
    ('[[member]]\nname = "a"\n[[member]]\nname = "a"\n', "member", ["unique"]),
    ('[[member]]\nname = "a"\nwidth = 3\n', "member[0].width", ["unknown key"]),
    ('[[member]]\nname = "has space"\n', "member[0].name", []),
])
def test_ensemble_errors_name_the_file_and_key(tmp_path, text, key, words):
    p = write(tmp_path, text)
    with pytest.raises(ConfigError) as e:
        load_surfaces(p, BASE_PRICING)
    msg = str(e.value)
    assert msg.startswith(f"{p}: {key}"), msg
    assert "\n" not in msg
    for w in words:
        assert w in msg, msg


def test_the_repository_ensemble_is_valid_and_starts_with_the_default():
    from config.settings import load_config

    spec, _ = load_episodes("config/episodes.toml")
    from analysis.episodes import surfaces_path

    path = surfaces_path(spec, "config/episodes.toml")
    assert path is not None and path.name == "surface_ensemble.toml" and path.exists()
    from config.settings import deep_merge
    from engine.marketmodel import PricingParams

    base = load_config("config/alvh.toml").model_dump(mode="json")["pricing"]
    ms = load_surfaces(path, base)
    assert len(ms) >= 2
    assert PricingParams.model_validate(deep_merge(base, ms[0].pricing)) == PricingParams.model_validate(base)
    assert len({m.name for m in ms}) == len(ms)


def test_the_chain_level_sensitivity_file_prices_at_the_chains_level():
    """config/surface_chain_level.toml (docs/alvh.md section 7): the default, then the same surface with every index
    level x 0.97; the second member changes nothing else."""
    from config.settings import deep_merge, load_config
    from engine.marketmodel import PricingParams

    base = load_config("config/alvh.toml").model_dump(mode="json")["pricing"]
    ms = load_surfaces(Path("config/surface_chain_level.toml"), base)
    assert [m.name for m in ms] == ["regime", "regime-chain-level"]
    p0 = PricingParams.model_validate(deep_merge(base, ms[0].pricing)).regime_params()
    p1 = PricingParams.model_validate(deep_merge(base, ms[1].pricing)).regime_params()
    assert p0.level_scale == 1.0 and p1.level_scale == 0.97
    assert replace(p1, level_scale=1.0) == p0


def test_a_bad_ensemble_stops_the_verdict_before_any_data_is_read(tmp_path):
    from analysis.verdict import run_verdict
    from config.settings import load_config

    p = write(tmp_path, '[[member]]\nname = "a"\n[[member]]\nname = "b"\n[member.pricing.vix_options]\nbogus = 1\n')
    with pytest.raises(ConfigError, match=r"member\[1\]\.pricing"):
        run_verdict(load_config("config/alvh.toml"), str(tmp_path / "no-data-here"), surfaces=str(p),
                    progress=False)


# ---- robust classes over surfaces x ladders ------------------------------------------------------------------
def test_the_class_is_taken_over_every_surface_and_ladder():
    from analysis.scenarios import SurfaceMember
    from analysis.verdict import analyze

    eps = [Episode("spike", pd.Timestamp("2020-02-19"), pd.Timestamp("2020-08-18"))]
    scs = [Scenario("unhedged", "u", None, "unhedged"), Scenario("alvh", "a", {}, "alvh")]
    surfaces = [SurfaceMember("base"), SurfaceMember("alt", "", {"spx_surface": {"rho0": -0.6}})]
    results = []
    # reductions: base surface 50% / 40% on the two ladders, the alternative 60% / 10%
    for s, dds in ((0, (0.05, 0.06)), (1, (0.04, 0.09))):
        for lad in (0, 1):
            results.append(fake_run("unhedged", lad, 0.12, {"spike": (0.10, 0.0, -5e4)}, surface=s))
            results.append(fake_run("alvh", lad, 0.11, {"spike": (dds[lad], 1e4, -4e4)}, surface=s))
    res = analyze(results, scs, eps, ClaimBands(), "alvh", surfaces)
    r = res.episode_table.set_index("scenario").loc["alvh"]
    assert r.reduction_pct == pytest.approx(50.0)                     # the main run: base surface, ladder 0
    assert (r.range_low, r.range_high) == (pytest.approx(10.0), pytest.approx(60.0))
    assert r.variants == 4 and r.variants_held == 3 and r.surfaces == 2 and r.ladders == 2
    assert r["class"] == "held on some variants" and r.class_main == "exceeded"
    st = res.surface_table.set_index("surface")
    assert st.loc["base", "class"] == "held on every variant" and st.loc["alt", "class"] == "held on some variants"
    assert st.loc["alt", "reduction_pct"] == pytest.approx(60.0)
    assert res.tally.set_index("scenario").loc["alvh", ["held_every", "held_some"]].tolist() == [0, 1]
    assert len(res.variant_table) == 4 and set(res.variant_table.surface) == {"base", "alt"}


def test_tasks_run_surface_major_with_the_main_runs_first(monkeypatch, data_dir, panel, tmp_path):
    """The runs of one surface follow each other (a worker's price cache is per pricing), the main runs first."""
    from analysis import tasks, verdict
    from config.settings import load_config

    tasks._PANELS[str(data_dir)] = panel
    seen = []

    def capture(fn, ts, **kw):
        assert kw["group"](ts[0]) == (0, 0)   # chunks of one (surface, ladder phase)
        seen.extend(ts)
        raise RuntimeError("stop")

    monkeypatch.setattr(verdict, "run_tasks", capture)
    with pytest.raises(RuntimeError, match="stop"):
        verdict.run_verdict(load_config("config/alvh.toml"), str(data_dir), start="2020-01-02", end="2020-06-30",
                            ladders=2, progress=False, scenarios=["alvh", "vxth"])
    meta = [(t["meta"]["surface"], t["meta"]["ladder"], t["meta"]["scenario"]) for t in seen]
    n_surf = len({m[0] for m in meta})
    assert n_surf >= 2 and len(meta) == n_surf * 2 * 3
    assert meta[:3] == [(0, 0, "unhedged"), (0, 0, "alvh"), (0, 0, "vxth")]
    assert [m[0] for m in meta] == sorted(m[0] for m in meta)         # surface-major
    assert [t["keep_series"] for t in seen].count(True) == 3           # series only for the main runs
    ens = load_surfaces(Path("config/surface_ensemble.toml"),
                        load_config("config/alvh.toml").model_dump(mode="json")["pricing"])
    for t in seen:   # each task carries its member's pricing, merged over the config's
        over = ens[t["meta"]["surface"]].pricing
        for table, vals in over.items():
            if not isinstance(vals, dict):   # a scalar key such as spx_model
                assert t["config"]["pricing"][table] == vals
                continue
            for k, v in vals.items():
                assert t["config"]["pricing"][table][k] == v


# ---- windows by rule ----------------------------------------------------------------------------------------
def synthetic():
    idx = pd.bdate_range("2010-01-01", "2012-12-31")
    spx = pd.Series(100.0, index=idx)
    spx.loc["2010-03-01":"2011-06-30"] = 80.0
    spx.loc["2010-06-01"] = 60.0            # the trough
    spx.loc["2011-07-01":] = 101.0          # back above the 2010-02-26 close
    vix = pd.Series(30.0, index=idx)
    vix.loc["2010-09-01":] = 15.0
    vix.loc["2010-09-06"] = 25.0            # the first run of 5 closes below 20 starts 2010-09-07
    return spx, vix


def test_window_family_hand_checked():
    spx, vix = synthetic()
    start = pd.Timestamp("2010-02-26")
    rec = rule_recovery(spx, start)
    assert rec == pd.Timestamp("2011-07-01")
    ends, trough = window_family(spx, vix, start, rec)
    assert trough == pd.Timestamp("2010-06-01")
    assert ends == (("recovery", rec), ("trough+3m", pd.Timestamp("2010-09-01")),
                    ("VIX<20", pd.Timestamp("2010-09-07")), ("trough+6m", pd.Timestamp("2010-12-01")),
                    ("trough+12m", pd.Timestamp("2011-06-01")))
    # with an earlier recovery, +12m is past it: capped to the recovery, which it then repeats
    ends2, _ = window_family(spx, vix, start, pd.Timestamp("2011-01-03"))
    assert [lab for lab, _ in ends2] == ["recovery", "trough+3m", "VIX<20", "trough+6m"]
    assert max(d for _, d in ends2) == pd.Timestamp("2011-01-03")


def test_a_hand_picked_end_is_refused():
    spx, vix = synthetic()
    spec = EpisodeFile.model_validate({"episode": [{"name": "x", "start": "2010-02-26", "end": "2010-12-31"}]})
    named = [Episode("x", pd.Timestamp("2010-02-26"), pd.Timestamp("2010-12-31"))]
    with pytest.raises(ValueError, match=r"episode 'x': end 2010-12-31 is not the window's rule.*2011-07-01"):
        with_rule_windows(named, spec, spx, vix)
    ok = [Episode("x", pd.Timestamp("2010-02-26"), pd.Timestamp("2011-07-01"))]
    spec = EpisodeFile.model_validate({"episode": [{"name": "x", "start": "2010-02-26", "end": "2011-07-01",
                                                    "family": True}]})
    (e,) = with_rule_windows(ok, spec, spx, vix)
    assert e.windows[0] == ("recovery", pd.Timestamp("2011-07-01")) and len(e.window_keys()) == 5
    assert e.window_keys()[1][1] == "x @ trough+3m"


def test_every_named_window_follows_its_rule_on_real_data(panel):
    """config/episodes.toml: every end is the first SPX close back at the start's close; GFC and Aug 2015 carry
    a window family computed from the data."""
    spec, named = load_episodes("config/episodes.toml")
    eps = {e.name: e for e in episodes_in(spec, named, panel.daily, pd.Timestamp("2006-01-01"),
                                          pd.Timestamp("2025-12-31"))}
    assert all(eps[e.name].end == rule_recovery(panel.daily["spx_close"].dropna(), e.start) for e in named)
    gfc = eps["GFC 2008"]
    assert gfc.trough == pd.Timestamp("2009-03-09")
    assert dict(gfc.windows) == {"recovery": pd.Timestamp("2013-03-28"), "trough+3m": pd.Timestamp("2009-06-09"),
                                 "trough+6m": pd.Timestamp("2009-09-09"), "VIX<20": pd.Timestamp("2010-01-05"),
                                 "trough+12m": pd.Timestamp("2010-03-09")}
    aug = eps["Aug 2015"]
    assert aug.end == pd.Timestamp("2016-07-08") and aug.trough == pd.Timestamp("2016-02-11")
    assert [lab for lab, _ in aug.windows] == ["recovery", "VIX<20", "trough+3m"]
    assert {n for n, e in eps.items() if e.windows} == {"GFC 2008", "Aug 2015"}


# ---- the full cost ------------------------------------------------------------------------------------------
def test_cost_decomposition_sums_to_the_final_equity_difference(data_dir, panel):
    """A short real-data run, hedged and unhedged: hedge P&L + interest given up + condor path effect is the
    final-equity difference within $1, each term read from its own ledger total."""
    from analysis import tasks
    from analysis.runs import make_task, run_task
    from analysis.scenarios import standard_scenarios
    from analysis.verdict import _full_table, cost_table
    from config.settings import load_config

    tasks._PANELS[str(data_dir)] = panel
    cfg = load_config("config/alvh.toml")
    scs = [s for s in standard_scenarios(cfg.hedge) if s.name in ("unhedged", "alvh")]
    cd = cfg.model_dump(mode="json")
    by = {}
    for sc in scs:
        t = make_task(cd, sc.hedge, task_id=sc.name, start="2018-01-02", end="2018-12-31",
                      meta={"scenario": sc.name, "ladder": 0})
        by[(sc.name, 0, 0)] = run_task(t, str(data_dir))
    for r in by.values():   # the ledger: equity - initial = books + interest
        m = r["metrics"]
        assert m["final_equity"] - m["initial_equity"] == pytest.approx(
            m["condor_pnl"] + m["hedge_pnl"] + m["interest"], abs=1.0)
    cost = cost_table(_full_table(by, scs, {s.name: "" for s in scs})).set_index("scenario").loc["alvh"]
    mh, mu = by[("alvh", 0, 0)]["metrics"], by[("unhedged", 0, 0)]["metrics"]
    diff = mh["final_equity"] - mu["final_equity"]
    assert cost.final_equity_diff == pytest.approx(diff, abs=1e-6)
    parts = cost.hedge_trading + cost.hedge_fees + cost.interest + cost.condor_path
    assert abs(parts - diff) <= 1.0 and abs(cost.residual) <= 1.0
    assert cost.hedge_trading + cost.hedge_fees == pytest.approx(mh["hedge_pnl"], abs=1e-6)
    assert cost.hedge_fees < 0 and cost.interest != 0.0 and cost.hedge_trading != 0.0
    assert cost.interest == pytest.approx(mh["interest"] - mu["interest"])
    per_yr = 100.0 / (mu["initial_equity"] * mu["years"])
    assert cost.final_equity_diff_pct_yr == pytest.approx(diff * per_yr)
    assert math.isclose(sum(cost[f"{k}_pct_yr"] for k in ("hedge_trading", "hedge_fees", "interest", "condor_path",
                                                          "residual")), cost.final_equity_diff_pct_yr,
                        rel_tol=1e-9)
    assert np.isfinite(cost.cagr_diff_pct)


def test_cli_surfaces_flag_errors_before_any_data_is_read(tmp_path, monkeypatch, capsys, data_dir):
    """`alvh verdict --surfaces <file>`: a missing or bad file is one sentence and exit 2, before the data."""
    from adapters.cli import main as cli

    monkeypatch.setattr(cli, "configure_logging", lambda **kw: None)
    bad = write(tmp_path, '[[member]]\nname = "a"\n[member.pricing]\ndiv_yield = 0.5\n')
    for arg, words in ((str(tmp_path / "none.toml"), "file does not exist"),
                       (str(bad), "member[0].pricing.div_yield")):
        rc = cli.main(["verdict", "--surfaces", arg, "--out", "", "--data-dir", str(data_dir)])
        err = capsys.readouterr().err
        assert rc == 2 and words in err and "Traceback" not in err, err
