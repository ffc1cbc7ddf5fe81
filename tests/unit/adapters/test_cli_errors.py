"""Every bad input of issue 12 is one sentence naming the input and a non-zero exit, reported before any long
work starts; every command's --help works. No test here needs the real data directory: the data a check
looks at is a directory of placeholder files and, where the panel is read, a small synthetic panel."""
from __future__ import annotations

import argparse
import sys

import numpy as np
import pandas as pd
import pytest

from adapters.cli import main as cli
from adapters.data.panel import VX_COLUMNS, MarketPanel
from engine.calendar import trading_days


@pytest.fixture
def run(monkeypatch, capsys):
    """alvh's main() without its logging set-up (it binds structlog to a stderr pytest closes); returns
    (exit code, stderr). argparse errors exit through SystemExit, like the real command."""
    monkeypatch.setattr(cli, "configure_logging", lambda **kw: None)

    def _run(*argv: str) -> tuple[int, str]:
        try:
            rc = cli.main(list(argv))
        except SystemExit as e:
            rc = e.code
        captured = capsys.readouterr()
        err = captured.err
        _run.out = captured.out
        assert "Traceback" not in err
        return rc, err

    return _run


def one_sentence(err: str) -> str:
    lines = [ln for ln in err.strip().splitlines() if ln.startswith("alvh")]
    assert len(lines) == 1, err
    return lines[0]


@pytest.fixture
def placeholder_data(tmp_path):
    """A directory with (empty) files where the condor book and the default hedge read: enough for the
    file check; the panel itself comes from `short_panel`."""
    d = tmp_path / "data"
    for rel in ("spx_daily.csv", "vix_daily.csv", "rates/dtb3_daily.csv", "vx_futures/VX_2020-03.csv"):
        (d / rel).parent.mkdir(parents=True, exist_ok=True)
        (d / rel).write_text("")
    return d


@pytest.fixture
def short_panel(monkeypatch):
    """2020-01-02 .. 2020-03-31, but VIX stops on 2020-02-28 and the VX settlements on 2020-03-20."""
    idx = pd.DatetimeIndex(trading_days("2020-01-02", "2020-03-31"), name="date")
    daily = pd.DataFrame({"spx_close": 3000.0, "vix_close": 15.0, "rate_tbill": 0.015}, index=idx)
    daily.loc[daily.index > "2020-02-28", "vix_close"] = np.nan
    vx_dates = idx[idx <= "2020-03-20"]
    vx = pd.DataFrame({c: np.nan for c in VX_COLUMNS}, index=range(len(vx_dates)))
    vx["date"] = vx_dates
    panel = MarketPanel(daily=daily, vx=vx, events={}, notes=(), fingerprint="short")
    import adapters.data.panel as panel_mod

    monkeypatch.setattr(panel_mod, "load_panel", lambda *a, **k: panel)
    return panel


def subcommands(parser: argparse.ArgumentParser, prefix=()):
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            for name, sub in action.choices.items():
                yield (*prefix, name)
                yield from subcommands(sub, (*prefix, name))


COMMANDS = [(), *subcommands(cli.build_parser())]


@pytest.mark.parametrize("command", COMMANDS, ids=lambda c: " ".join(c) or "alvh")
def test_help_of_every_command(command, run):
    rc, _ = run(*command, "--help")
    assert rc == 0 and run.out.startswith("usage: alvh")


def test_every_command_group_is_listed():
    names = {c[0] for c in COMMANDS if c}
    assert {"replay", "data", "verdict", "sweep", "validate", "calibrate", "run", "status", "halt", "resume",
            "signal"} <= names


def test_end_past_the_last_vix_row_is_named_before_the_run(run, placeholder_data, short_panel):
    rc, err = run("replay", "--config", "config/condor.toml", "--start", "2020-01-02", "--end", "2020-03-31",
                  "--data-dir", str(placeholder_data), "--out", "")
    line = one_sentence(err)
    assert rc == 1 and "vix_daily.csv" in line and "ends 2020-02-28" in line and "2020-03-31" in line


def test_missing_files_are_listed_in_one_message(run, tmp_path):
    empty = tmp_path / "empty"
    empty.mkdir()
    rc, err = run("replay", "--config", "config/alvh.toml", "--data-dir", str(empty), "--out", "")
    line = one_sentence(err)
    assert rc == 1 and "4 missing" in line
    for name in ("spx_daily.csv", "vix_daily.csv", "rates/dtb3_daily.csv", "vx_futures/"):
        assert name in line
    assert "vix_etps" not in line and "events" not in line      # what the run does not read is not asked for


def test_etp_layer_asks_for_its_etp_file(run, placeholder_data, tmp_path):
    cfg = tmp_path / "etp.toml"
    cfg.write_text('extends = "alvh.toml"\n[[hedge.layers]]\nname = "etp"\nweight = 0.1\nthreshold = 30\n'
                   'instrument = { type = "etp", symbol = "VIXM" }\n')
    rc, err = run("replay", "--config", str(cfg), "--data-dir", str(placeholder_data), "--out", "")
    line = one_sentence(err)
    assert rc == 1 and "1 missing" in line and "vix_etps/vixm_close_adjusted.csv" in line


def test_config_naming_a_directory(run):
    rc, err = run("replay", "--config", "config", "--out", "")
    assert rc == 2 and one_sentence(err) == "alvh: error: config: is a directory, not a TOML config file"


def test_verdict_out_naming_a_file_fails_before_any_data_is_read(run, tmp_path):
    existing = tmp_path / "verdict"
    existing.write_text("x")
    rc, err = run("verdict", "--out", str(existing), "--data-dir", str(tmp_path / "no-such-dir"))
    assert rc == 1 and one_sentence(err) == f"alvh: error: --out {existing}: is a file, not a directory"


def test_validate_start_after_the_default_end(run):
    rc, err = run("validate", "--start", "2030-01-01")
    assert rc == 1 and "--start 2030-01-01" in one_sentence(err) and "2025-12-31" in err


def test_paper_replay_on_a_weekend(run):
    pytest.importorskip("ib_async")
    rc, err = run("run", "--config", "config/ib_paper.toml", "--paper-replay", "2018-02-03")
    line = one_sentence(err)
    assert rc == 1 and "--paper-replay 2018-02-03: not an NYSE session (a Saturday)" in line
    assert "2018-02-02 and 2018-02-05" in line


def test_paper_replay_on_a_holiday(run):
    pytest.importorskip("ib_async")
    rc, err = run("run", "--config", "config/ib_paper.toml", "--paper-replay", "2018-01-15")
    assert rc == 1 and "(a Monday holiday)" in one_sentence(err)


def test_signal_on_a_weekend(run):
    rc, err = run("signal", "--date", "2020-03-07")
    assert rc == 1 and "--date 2020-03-07: not an NYSE session (a Saturday)" in one_sentence(err)


def test_signal_html_naming_a_directory(run, tmp_path):
    rc, err = run("signal", "--html", str(tmp_path))
    assert rc == 1 and one_sentence(err) == f"alvh: error: --html {tmp_path}: is a directory, not a file"


def test_run_without_the_ib_extra(run, monkeypatch):
    for name in [m for m in sys.modules if m == "ib_async" or m.startswith(("ib_async.", "adapters.ib", "adapters.live.daemon"))]:
        monkeypatch.delitem(sys.modules, name)
    monkeypatch.setitem(sys.modules, "ib_async", None)     # "not installed"
    rc, err = run("run", "--config", "config/ib_paper.toml")
    line = one_sentence(err)
    assert rc == 1 and "pip install 'alvh[ib]'" in line


def test_status_without_the_ib_extra(run, monkeypatch, tmp_path):
    for name in [m for m in sys.modules if m == "ib_async" or m.startswith(("ib_async.", "adapters.ib", "adapters.live.daemon"))]:
        monkeypatch.delitem(sys.modules, name)
    monkeypatch.setitem(sys.modules, "ib_async", None)
    rc, err = run("status", "--state", str(tmp_path / "none.sqlite"))
    assert rc == 1 and "alvh[ib]" in one_sentence(err)


def test_run_with_a_config_without_a_daemon_table(run):
    pytest.importorskip("ib_async")
    rc, err = run("run", "--config", "config/condor.toml")
    assert rc == 2 and "config/condor.toml: daemon: the daemon needs a [daemon] table" in one_sentence(err)


def test_sweep_scheduler_unreachable(run):
    pytest.importorskip("distributed")
    rc, err = run("sweep", "--scheduler", "tcp://127.0.0.1:1", "--out", "")
    assert rc == 1 and one_sentence(err).startswith("alvh: error: --scheduler tcp://127.0.0.1:1: no Dask scheduler answers")


def test_sweep_scheduler_not_an_address(run):
    pytest.importorskip("distributed")
    rc, err = run("sweep", "--scheduler", "nonsense:x", "--out", "")
    assert rc == 1 and "not an address of the form tcp://host:port" in one_sentence(err)


def test_verdict_scheduler_without_dask(run, monkeypatch):
    monkeypatch.setitem(sys.modules, "distributed", None)
    rc, err = run("verdict", "--scheduler", "tcp://127.0.0.1:8786", "--out", "")
    assert rc == 1 and "pip install 'alvh[sweep]'" in one_sentence(err)


@pytest.mark.parametrize("argv, named", [
    (("replay", "--log-level", "BOGUS"), "--log-level: 'BOGUS' is not a log level"),
    (("sweep", "--limit", "-1"), "--limit: '-1' must be at least 1"),
    (("sweep", "--limit", "0"), "--limit: '0' must be at least 1"),
    (("verdict", "--ladders", "9"), "--ladders: '9': a weekly ladder has at most 5 phases"),
    (("verdict", "--workers", "0"), "--workers: '0' must be at least 1"),
    (("run", "--config", "config/ib_paper.toml", "--speed", "-2"), "--speed: '-2' must be >= 0"),
    (("replay", "--start", "2020-13-01"), "--start: '2020-13-01' is not a date in YYYY-MM-DD form"),
])
def test_bad_flag_values_are_usage_errors(run, argv, named):
    rc, err = run(*argv)
    assert rc == 2 and named in err.strip().splitlines()[-1]


def test_data_check_with_a_config_lists_what_the_config_lacks(run, tmp_path):
    empty = tmp_path / "empty"
    empty.mkdir()
    rc, err = run("data", "check", "--config", "config/condor.toml", "--data-dir", str(empty))
    last = err.strip().splitlines()[-1]
    assert rc == 1 and last.startswith("alvh data check: config/condor.toml cannot run on") and "3 missing" in last
    assert "vx_futures" not in last      # the condor book alone does not read VX


def test_calibrate_never_defaults_into_the_package(tmp_path):
    from adapters.cli.validate import CALIBRATED_OUT

    args = cli.build_parser().parse_args(["calibrate"])
    assert args.out == CALIBRATED_OUT == "config/calibrated.toml"      # relative: the working directory
