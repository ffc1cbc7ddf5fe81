"""Every table of a run config is typed at load: one mistake -> one sentence naming the file and the key."""
from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from config.errors import ConfigError
from config.settings import RunConfig, load_config

ROOT = Path(__file__).resolve().parents[3]


def write(tmp_path: Path, text: str, name: str = "bad.toml") -> Path:
    p = tmp_path / name
    p.write_text(text)
    return p


def error_of(tmp_path: Path, text: str) -> str:
    path = write(tmp_path, text)
    with pytest.raises(ConfigError) as e:
        load_config(path)
    msg = str(e.value)
    assert msg.startswith(f"{path}: ") and "\n" not in msg
    return msg[len(f"{path}: "):]


LAYER = "[[hedge.layers]]\nname = 'near'\nweight = 0.4\nthreshold = 18\n"

# one case per table; each (TOML text, expected "key: message" start)
CASES = {
    "run": ("[run]\nstart = 'soon'\n", "run.start: input should be a valid date"),
    "run-order": ("[run]\nstart = 2020-01-01\nend = 2019-01-01\n", "run: run.end must be after run.start"),
    "pricing": ("[pricing]\ndiv_yield = 'high'\n", "pricing.div_yield: input should be a valid number"),
    "pricing-skew": ("[pricing.spx_skew]\nslope = 'steep'\n", "pricing.spx_skew.slope: input should be a valid number"),
    "pricing-vix-contango": ("[pricing.vix_options]\ncontango_min = 0.2\ncontango_max = 0.1\n",
                             "pricing: pricing.vix_options.contango_min (0.2) is above contango_max (0.1)"),
    "pricing-level-scale": ("[pricing.spx_surface]\nlevel_scale = 0\n",
                            "pricing: pricing.spx_surface.level_scale must be above 0 (got 0)"),
    "execution": ("[execution]\nfill_timing = 'whenever'\n", "execution.fill_timing: input should be"),
    "execution-costs": ("[execution.costs]\nspx_option = -1\n", "execution.costs.spx_option: input should be greater"),
    "margin": ("[margin]\nvx_margin_fraction = 2\n", "margin.vx_margin_fraction: input should be less than"),
    "risk": ("[risk]\nmax_orders_per_day = 0\n", "risk.max_orders_per_day: input should be greater than"),
    "risk-inf": ("[risk]\nmax_hedge_notional = inf\n", "risk.max_hedge_notional: input should be a finite number"),
    "condor": ("[condor]\nshort_delta = 'sixteen'\n", "condor.short_delta: input should be a valid number"),
    "condor-enum": ("[condor]\nentry_frequency = 'hourly'\n", "condor.entry_frequency: input should be"),
    "condor-unknown": ("[condor]\nshort_detla = 0.16\n", "condor.short_detla: unknown key"),
    "hedge-kind": ("[hedge]\nkind = 'magic'\n", "hedge: unknown hedge kind; use one of alvh, static, vxth, spx_puts, none"),
    "hedge-threshold": ("[[hedge.layers]]\nname = 'near'\nweight = 0.4\nthreshold = 'eighteen'\n",
                        "hedge.layers[0].threshold: input should be a valid number"),
    "hedge-budget": ("[hedge.budget]\nreadng = 'vega'\n", "hedge.budget.readng: unknown key"),
    "hedge-budget-enum": ("[hedge.budget]\nreading = 'gamma'\n", "hedge.budget.reading: input should be"),
    "hedge-instrument": (LAYER + "instrument = { type = 'vx', mnth = 1 }\n",
                         "hedge.layers[0].instrument.mnth: unknown key"),
    "hedge-instrument-type": (LAYER + "instrument = { type = 'bitcoin' }\n",
                              "hedge.layers[0].instrument: input tag 'bitcoin'"),
    "hedge-gates": ("[hedge.gates]\nuse = ['astrology']\n", "hedge.gates.use[0]: input should be"),
    "hedge-vxth": ("[hedge]\nkind = 'vxth'\ndelta = 3\n", "hedge.delta: input should be less than 1"),
    "daemon-typo": ("[daemon]\nstate_pth = 'x.sqlite'\n", "daemon.state_pth: unknown key"),
    "daemon-ib": ("[daemon.ib]\nport = 'seventy'\n", "daemon.ib.port: input should be a valid integer"),
    "daemon-bool": ("[daemon]\nallow_live = 'yes'\n", "daemon.allow_live: input should be a valid boolean"),
    "daemon-schedule": ("[daemon.schedule]\npreopen = '23:50'\n", "daemon.schedule: schedule.preopen (23:50) falls"),
    "daemon-orders": ("[daemon.orders]\nimprove_steps = -1\n", "daemon.orders.improve_steps: input should be greater"),
    "daemon-market-data": ("[daemon.market_data]\nmode = 'telepathy'\n", "daemon.market_data.mode: input should be"),
    "daemon-replay": ("[daemon.replay]\nspeed = -2\n", "daemon.replay.speed: input should be greater"),
    "root-unknown": ("nmae = 'x'\n", "nmae: unknown key"),
}


@pytest.mark.parametrize("case", sorted(CASES))
def test_every_table_names_file_and_key(tmp_path, case):
    text, expected = CASES[case]
    assert error_of(tmp_path, text).startswith(expected)


def test_extends_layers_over_the_base_and_errors_name_the_file_given(tmp_path):
    base = write(tmp_path, "[condor]\nshort_delta = 0.2\n", "base.toml")
    top = write(tmp_path, f"extends = '{base.name}'\n[hedge.budget]\nreading = 'equity'\n", "top.toml")
    cfg = load_config(top)
    assert cfg.condor.short_delta == 0.2 and cfg.hedge.budget.reading == "equity"
    loop = write(tmp_path, "extends = 'loop.toml'\n", "loop.toml")
    with pytest.raises(ConfigError, match="loops back"):
        load_config(loop)


def test_not_a_file_or_not_toml(tmp_path):
    with pytest.raises(ConfigError, match=": is a directory, not a TOML config file$"):
        load_config(tmp_path)
    with pytest.raises(ConfigError, match=": file does not exist$"):
        load_config(tmp_path / "missing.toml")
    with pytest.raises(ConfigError, match="not valid TOML"):
        load_config(write(tmp_path, "[run\n"))


def test_hedge_kinds_are_typed_and_none_means_no_hedge():
    from strategies.alvh.hedge import AlvhParams
    from strategies.baselines import SpxPutParams, VxthParams

    assert isinstance(RunConfig(hedge={}).hedge, AlvhParams)
    assert RunConfig(hedge={"kind": "static"}).hedge.activation == "always"
    assert isinstance(RunConfig(hedge={"kind": "vxth"}).hedge, VxthParams)
    assert isinstance(RunConfig(hedge={"kind": "spx_puts"}).hedge, SpxPutParams)
    assert RunConfig(hedge={"kind": "none"}).hedge is None


def test_shipped_configs_load():
    for name in ("condor", "alvh", "alvh_large_book", "alvh_strict_timing", "ib_paper"):
        cfg = load_config(ROOT / "config" / f"{name}.toml")
        assert cfg.condor is not None
    strict, alvh = load_config(ROOT / "config" / "alvh_strict_timing.toml"), load_config(ROOT / "config" / "alvh.toml")
    assert strict.execution.fill_timing == "next_snapshot" != alvh.execution.fill_timing
    assert strict.hedge == alvh.hedge and strict.condor == alvh.condor
    assert load_config(ROOT / "config" / "ib_paper.toml").risk.max_orders_per_day == 30


@pytest.mark.parametrize("command", [["replay"], ["verdict"], ["run"], ["status"], ["signal"]])
def test_cli_config_error_exits_2_before_reading_data(tmp_path, command):
    """A bad config stops with exit 2 and one sentence even when the data directory does not exist: the config is
    read first."""
    bad = write(tmp_path, "[[hedge.layers]]\nname = 'near'\nweight = 0.4\nthreshold = 'eighteen'\n")
    args = [sys.executable, "-m", "adapters.cli", *command, "--config", str(bad)]
    if command[0] in ("replay", "verdict", "signal"):
        args += ["--data-dir", str(tmp_path / "no-such-data")]
    p = subprocess.run(args, cwd=ROOT, capture_output=True, text=True, timeout=120, check=False)
    if p.returncode == 2 and "invalid choice" in p.stderr:
        pytest.skip(f"no `alvh {command[0]}` command in this build")
    lines = [ln for ln in p.stderr.splitlines() if ln.strip()]
    assert p.returncode == 2, p.stderr
    expected = (f"alvh: error: {bad}: hedge.layers[0].threshold: input should be a valid number, "
                "unable to parse string as a number")
    assert lines == [expected], p.stderr
