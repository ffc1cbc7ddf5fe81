"""Sweeps: grid expansion, cost scaling, the local process pool and a Dask cluster on loopback, and
"the market panel is loaded once per worker, not once per configuration"."""
import json
import os

import pytest

from analysis import tasks
from analysis.sweep import SweepSpec, expand, load_sweep, run_sweep, scale_costs
from analysis.tasks import run_tasks


def base_hedge():
    from config.settings import load_config

    return load_config("config/alvh.toml").hedge


def test_default_grid_has_at_least_500_valid_configurations():
    spec = load_sweep("config/sweep.toml")
    confs = expand(spec, base_hedge())
    assert len(confs) >= 500
    assert len({json.dumps(c["hedge"], sort_keys=True) + str(c["cost_mult"]) for c in confs}) == len(confs)


def test_axes_apply_to_the_hedge_table():
    spec = SweepSpec.model_validate({"axes": {
        "thresholds": [[16, 20, 25]], "weights": [[0.6, 0.3, 0.1]], "reading": ["contracts"],
        "instruments": ["calls"], "activation": ["scaled"], "cost_mult": [2.0],
        "paths": {"hedge.budget.vega_offset": [0.25, 1.0], "hedge.layers.0.hysteresis": [3.0]}}})
    confs = expand(spec, base_hedge())
    assert len(confs) == 2
    h = confs[1]["hedge"]
    assert [lp["threshold"] for lp in h["layers"]] == [16, 20, 25]
    assert [lp["weight"] for lp in h["layers"]] == [0.6, 0.3, 0.1]
    assert h["budget"]["reading"] == "contracts" and h["budget"]["vega_offset"] == 1.0
    assert h["activation"] == "scaled" and h["layers"][0]["hysteresis"] == 3.0
    assert {lp["instrument"]["type"] for lp in h["layers"]} == {"vix_call"}
    assert confs[0]["cost_mult"] == 2.0


def test_scale_costs_multiplies_commissions_spreads_and_slippage():
    ex = scale_costs({}, 2.0)
    assert ex["costs"]["vx_future"] == pytest.approx(5.0)
    assert ex["spreads"]["vix_option"]["base"] == pytest.approx(0.04)
    assert ex["slippage_ticks"] == pytest.approx(1.0)
    assert scale_costs({}, 1.0)["costs"]["spx_option"] == pytest.approx(1.25)


SMALL = {"sweep": {"start": "2020-02-03", "end": "2020-04-30"},
         "axes": {"thresholds": [[18, 22, 28], [20, 25, 32]], "reading": ["vega", "equity"]}}


def test_sweep_in_a_local_process_pool(data_dir, panel, tmp_path):
    tasks._PANELS[str(data_dir)] = panel      # forked workers inherit it: no reload per configuration
    spec = SweepSpec.model_validate(SMALL)
    table, info = run_sweep(spec, str(data_dir), workers=2, out=tmp_path, progress=False)
    assert len(table) == 4 and info["configurations"] == 4 and info["baseline_runs"] == 1
    assert (tmp_path / "sweep.parquet").is_file() and (tmp_path / "sweep.csv").is_file()
    assert "red_mar_2020" in table and table["red_mar_2020"].notna().all()
    serial, _ = run_sweep(spec, str(data_dir), workers=1, progress=False)
    cols = ["config", "max_dd_pct", "red_mar_2020", "hedge_pnl"]
    assert table[cols].equals(serial[cols])   # deterministic whichever way it runs
    pids = run_tasks(tasks.process_info, [{}] * 6, data_dir=str(data_dir), workers=2, progress=False)
    assert all(p["panel_loads"] <= 1 for p in pids)


def test_sweep_over_surfaces(data_dir, panel, tmp_path):
    """`[sweep] surfaces`: every configuration and baseline on every member. The first member (the config's own
    pricing) reproduces the plain sweep row for row; the chains'-level member differs; sweep_surfaces.csv spans
    both. A bad ensemble file stops the sweep before any data is read."""
    import pandas as pd

    from config.errors import ConfigError

    tasks._PANELS[str(data_dir)] = panel
    plain, _ = run_sweep(SweepSpec.model_validate(SMALL), str(data_dir), workers=1, progress=False)
    spec = SweepSpec.model_validate({**SMALL, "sweep": {**SMALL["sweep"], "surfaces": "config/surface_chain_level.toml"}})
    table, info = run_sweep(spec, str(data_dir), workers=2, out=tmp_path, progress=False)
    assert len(table) == 8 and info["baseline_runs"] == 2 and info["surfaces"] == ["regime", "regime-chain-level"]
    cols = ["config", "max_dd_pct", "red_mar_2020", "hedge_pnl", "cagr_pct"]
    first = table[table["surface"] == "regime"].reset_index(drop=True)
    assert first[cols].equals(plain[cols])
    other = table[table["surface"] == "regime-chain-level"].reset_index(drop=True)
    assert not other["hedge_pnl"].equals(first["hedge_pnl"])
    assert json.loads((tmp_path / "sweep_info.json").read_text())["surfaces"] == info["surfaces"]
    spread = pd.read_csv(tmp_path / "sweep_surfaces.csv")
    assert list(spread["config"]) == sorted(first["config"]) and (spread["surfaces"] == 2).all()
    assert (spread["mean_reduction_min"] <= spread["mean_reduction_median"]).all()
    assert (spread["mean_reduction_median"] <= spread["mean_reduction_max"]).all()
    assert (spread["n_met_every_surface"] <= spread["n_met_some_surface"]).all()
    bad = tmp_path / "bad.toml"
    bad.write_text('[[member]]\nname = "x"\nnote = "y"\n[member.pricing]\nspx_model = "nope"\n')
    tasks._PANELS.clear()                    # nothing may be loaded before the file is refused
    with pytest.raises(ConfigError, match="bad.toml"):
        run_sweep(SweepSpec.model_validate({**SMALL, "sweep": {**SMALL["sweep"], "surfaces": str(bad)}}),
                  str(data_dir), workers=1, progress=False)
    assert str(data_dir) not in tasks._PANELS


def test_sweep_on_a_dask_cluster_loads_the_panel_once_per_worker(data_dir, tmp_path):
    distributed = pytest.importorskip("distributed")
    tasks._PANELS.clear()
    loads_before = tasks.PANEL_LOADS
    spec = SweepSpec.model_validate(SMALL)
    with distributed.LocalCluster(host="127.0.0.1", protocol="tcp", processes=False, n_workers=1, threads_per_worker=1,
                                  dashboard_address=None) as cluster:
        table, info = run_sweep(spec, str(data_dir), scheduler=cluster.scheduler_address, out=tmp_path,
                                progress=False)
    assert len(table) == 4 and info["scheduler"].startswith("tcp://127.0.0.1")
    # the parent loaded it once for episode detection; the in-process worker reused it for all 5 runs
    assert tasks.PANEL_LOADS - loads_before == 1
    local, _ = run_sweep(spec, str(data_dir), workers=1, progress=False)
    assert table["max_dd_pct"].round(10).equals(local["max_dd_pct"].round(10))


def test_dask_worker_processes_each_load_the_panel_once(data_dir):
    distributed = pytest.importorskip("distributed")
    with distributed.LocalCluster(host="127.0.0.1", protocol="tcp", processes=True, n_workers=2, threads_per_worker=1,
                                  dashboard_address=None) as cluster:
        infos = tasks._run_dask(tasks.process_info, [{}] * 8, str(data_dir), cluster.scheduler_address, False, "probe")
    pids = {i["pid"] for i in infos}
    assert os.getpid() not in pids                     # ran in separate worker processes
    assert all(i["panel_loads"] == 1 for i in infos)   # 8 tasks, each process loaded the panel exactly once
