"""config/sweep.toml and config/episodes.toml: every problem is one sentence `file: key: what is wrong`, raised as
config.errors.ConfigError before any data is read. One test per table: an unknown key, a value of the wrong type,
and a value out of range (or not one of the allowed names)."""
from __future__ import annotations

from pathlib import Path

import pytest

from analysis.episodes import load_episodes
from analysis.sweep import expand, load_sweep
from config.errors import ConfigError


def error_of(load, tmp_path: Path, text: str) -> tuple[str, str]:
    """(message, file name) of the ConfigError raised by loading `text` from a file."""
    path = tmp_path / "grid.toml"
    path.write_text(text)
    with pytest.raises(ConfigError) as e:
        load(path)
    return str(e.value), str(path)


def assert_one_sentence(msg: str, path: str, key: str, *words: str) -> None:
    assert msg.startswith(f"{path}: {key}: "), msg
    assert "\n" not in msg and "more problem" not in msg, msg
    for w in words:
        assert w in msg, msg


def sweep_expanded(path: Path):
    """load_sweep, then the expansion against config/alvh.toml's hedge (where combinations are checked)."""
    from config.settings import load_config

    return expand(load_sweep(path), load_config("config/alvh.toml").hedge)


# ---- config/sweep.toml ----------------------------------------------------------------------------------------
@pytest.mark.parametrize("text, key, words", [
    ("[sweep]\nbogus = 1\n", "sweep.bogus", ["unknown key"]),
    ("[sweep]\nlimit = \"ten\"\n", "sweep.limit", ["integer"]),
    ("[sweep]\nlimit = 0\n", "sweep.limit", ["greater than or equal to 1"]),
    ("[sweep]\nstart = \"2020-13-01\"\n", "sweep.start", ["date"]),
    ("[sweep]\nstart = 2020-01-01\nend = 2019-01-01\n", "sweep", ["end must be after start"]),
])
def test_sweep_table(tmp_path, text, key, words):
    msg, path = error_of(load_sweep, tmp_path, text)
    assert_one_sentence(msg, path, key, *words)


@pytest.mark.parametrize("text, key, words", [
    ("[axes]\ncolour = [\"red\"]\n", "axes.colour", ["unknown key"]),
    ("[axes]\nweights = [[0.4, 0.4, 0.2], \"equal\"]\n", "axes.weights[1]", ["valid list"]),
    ("[axes]\nweights = [[0.4, 1.5, 0.2]]\n", "axes.weights[0][1]", ["less than or equal to 1"]),
    ("[axes]\nreading = [\"vega\", \"gamma\"]\n", "axes.reading[1]", ["'vega', 'equity' or 'contracts'"]),
    ("[axes]\ninstruments = [\"gold\"]\n", "axes.instruments[0]", ["'futures'", "'calendars'"]),
    ("[axes]\nactivation = [\"sometimes\"]\n", "axes.activation[0]", ["'progressive'"]),
    ("[axes]\ncost_mult = [1.0, 0.0]\n", "axes.cost_mult[1]", ["greater than 0"]),
])
def test_axes_table(tmp_path, text, key, words):
    msg, path = error_of(load_sweep, tmp_path, text)
    assert_one_sentence(msg, path, key, *words)


@pytest.mark.parametrize("text, key, words", [
    ("[axes.paths]\n\"budget.vega_offset\" = [1.0]\n", "axes.paths", ["must start with 'hedge.'"]),
    ("[axes.paths]\n\"hedge.budget.vega_offset\" = 1.0\n", "axes.paths.hedge.budget.vega_offset", ["valid list"]),
    ("[axes.paths]\n\"hedge.budget.vega_offset\" = [0.5, -1.0]\n", "hedge.budget.vega_offset", ["greater than 0"]),
    ("[axes.paths]\n\"hedge.layers.0.threshold\" = [\"x\"]\n", "hedge.layers[0].threshold", ["valid number"]),
    ("[axes.paths]\n\"hedge.layers.7.threshold\" = [20]\n", "axes.paths.hedge.layers.7.threshold", ["no such key"]),
])
def test_axes_paths_table_is_checked_on_every_combination(tmp_path, text, key, words):
    msg, path = error_of(sweep_expanded, tmp_path, text)
    assert_one_sentence(msg, path, key, *words)


def test_sweep_file_missing_or_not_toml(tmp_path):
    with pytest.raises(ConfigError, match=r"^nowhere/grid\.toml: file does not exist$"):
        load_sweep("nowhere/grid.toml")
    msg, path = error_of(load_sweep, tmp_path, "[axes\n")
    assert msg.startswith(f"{path}: not valid TOML: ") and "\n" not in msg


def test_the_default_files_load():
    assert load_sweep("config/sweep.toml").source == "config/sweep.toml"
    spec, named = load_episodes("config/episodes.toml")
    assert len(named) == len(spec.episode) >= 11


# ---- config/episodes.toml -------------------------------------------------------------------------------------
EPISODE = "[[episode]]\nname = \"X\"\nstart = 2020-02-19\nend = 2020-08-18\n"


@pytest.mark.parametrize("text, key, words", [
    # [claim]
    ("[claim]\nhigh = 50\n", "claim.high", ["unknown key"]),
    ("[claim]\nmet = \"a lot\"\n", "claim.met", ["valid number"]),
    ("[claim]\nmet = 45.0\nexceeded = 40.0\n", "claim", ["exceeded must be at least met"]),
    # [detect]
    ("[detect]\nvix_max = 80\n", "detect.vix_max", ["unknown key"]),
    ("[detect]\nmedian_days = 1.5\n", "detect.median_days", ["integer"]),
    ("[detect]\nmedian_days = 2\n", "detect.median_days", ["greater than or equal to 5"]),
    # [verdict]
    ("[verdict]\nscenario = \"alvh\"\n", "verdict.scenario", ["unknown key"]),
    ("[verdict]\nladders = \"five\"\n", "verdict.ladders", ["integer"]),
    ("[verdict]\nladders = 9\n", "verdict.ladders", ["less than or equal to 5"]),
    # [verdict.vxth]: the baseline's hedge table, checked when the file is read
    ("[verdict.vxth]\ngamma = 1\n", "verdict.vxth.gamma", ["unknown key"]),
    ("[verdict.vxth]\ndelta = \"x\"\n", "verdict.vxth.delta", ["valid number"]),
    ("[verdict.vxth]\ndelta = 1.5\n", "verdict.vxth.delta", ["less than 1"]),
    # [verdict.spx_puts]
    ("[verdict.spx_puts]\nstrike = 1\n", "verdict.spx_puts.strike", ["unknown key"]),
    ("[verdict.spx_puts]\ntarget_dte = \"soon\"\n", "verdict.spx_puts.target_dte", ["integer"]),
    ("[verdict.spx_puts]\nbudget_pct = 0.5\n", "verdict.spx_puts.budget_pct", ["less than or equal to 0.1"]),
    # [[episode]]
    (EPISODE + "colour = \"red\"\n", "episode[0].colour", ["unknown key"]),
    (EPISODE + EPISODE.replace("2020-02-19", "\"soon\""), "episode[1].start", ["date"]),
    (EPISODE.replace("2020-08-18", "2020-01-01"), "episode[0]", ["'X' must end after it starts"]),
])
def test_episode_file_tables(tmp_path, text, key, words):
    msg, path = error_of(load_episodes, tmp_path, text)
    assert_one_sentence(msg, path, key, *words)
