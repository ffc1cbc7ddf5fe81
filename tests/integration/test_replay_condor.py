"""End-to-end: real history -> replay -> condor book -> simulated broker -> ledger."""
import datetime as dt
import subprocess
import sys

import numpy as np
import pandas as pd
import pytest

from adapters.sim.backtest import run_backtest, write_outputs
from adapters.sim.replay import HistoricalReplay
from config.settings import ConfigError, load_config
from engine.events import Phase


@pytest.fixture(scope="module")
def cfg():
    return load_config("config/condor.toml")


@pytest.fixture(scope="module")
def result_2020(cfg, panel):
    return run_backtest(cfg, panel, start="2019-10-01", end="2020-06-30")


def test_replay_snapshots_use_only_what_is_known(panel):
    r = HistoricalReplay(panel, "2020-03-13", "2020-03-18")
    i = r.dates.index(dt.date(2020, 3, 16))
    o, c = list(r.snapshots_for(i))
    assert o.phase is Phase.OPEN and c.phase is Phase.CLOSE and o.ts < c.ts
    assert c.quotes.vix == pytest.approx(82.69)
    # at the open, VX is the day's opening trade (54.00), never the day's settle, and not stale
    mar = dt.date(2020, 3, 18)
    assert o.quotes.vx[mar] == pytest.approx(54.00)
    assert "VX 2020-03-18" not in o.quotes.stale and {"vvix", "skew", "VXX"} <= o.quotes.stale
    assert c.quotes.vx[mar] == pytest.approx(72.625) and not c.quotes.stale
    # the Mar-2020 VIX settlement value is published only at the open of 2020-03-18
    j = r.dates.index(mar)
    o18, c18 = list(r.snapshots_for(j))
    assert mar in o18.quotes.vx_final and mar not in o.quotes.vx_final
    assert mar not in c18.quotes.vx
    # the expiring contract does not trade at that open: its prior settlement (68.825) is carried, named stale
    prior = panel.vx[(panel.vx["date"] == pd.Timestamp("2020-03-17")) & (panel.vx["expiry"] == pd.Timestamp(mar))]
    assert o18.quotes.vx[mar] == pytest.approx(prior["settle"].iloc[0]) == pytest.approx(68.825)
    assert "VX 2020-03-18" in o18.quotes.stale



def test_replay_spxtr_is_the_total_return_index_and_the_open_knows_only_the_prior_close(panel):
    from engine.dividends import SPX_DIVIDEND_POINTS, total_return_index

    r = HistoricalReplay(panel, "2020-03-13", "2020-03-18")
    i = r.dates.index(dt.date(2020, 3, 16))
    _, fri_c = list(r.snapshots_for(i - 1))          # Friday 2020-03-13
    mon_o, mon_c = list(r.snapshots_for(i))          # Monday 2020-03-16
    d = panel.daily
    tr = total_return_index(d.index, d["spx_close"])
    assert fri_c.quotes.etps["SPXTR"] == pytest.approx(tr[i - 1], rel=1e-12)
    assert mon_c.quotes.etps["SPXTR"] == pytest.approx(tr[i], rel=1e-12)
    # close to close: the price move plus 3 calendar days of the year's dividend points, accrued evenly
    p0, p1 = d["spx_close"].iloc[i - 1], d["spx_close"].iloc[i]
    hand = fri_c.quotes.etps["SPXTR"] * (p1 + SPX_DIVIDEND_POINTS[2020] * 3 / 365) / p0
    assert mon_c.quotes.etps["SPXTR"] == pytest.approx(hand, rel=1e-12)
    # the open: the prior TR close moved by the SPX open over the prior SPX close (no accrual, no close of the day)
    assert mon_o.quotes.etps["SPXTR"] == pytest.approx(fri_c.quotes.etps["SPXTR"] * mon_o.quotes.spx / p0, rel=1e-12)
    assert mon_o.quotes.spx == pytest.approx(d["spx_open"].iloc[i])
    assert mon_o.quotes.etps["SPXTR"] != pytest.approx(mon_c.quotes.etps["SPXTR"], rel=1e-3)
    # the TR index is the same whatever the replay window: built once over the whole panel
    r2 = HistoricalReplay(panel, "2020-03-16", "2020-03-16")
    assert list(r2.snapshots_for(i))[1].quotes.etps["SPXTR"] == mon_c.quotes.etps["SPXTR"]

def test_condor_book_trades_and_books_balance(result_2020):
    res = result_2020
    eq = res.equity
    assert len(res.trades) > 10
    # equity = initial + condor P&L + interest, every day
    recon = res.config.run.initial_equity + eq["pnl_condor"] + eq["interest"]
    assert np.allclose(eq["equity"], recon, atol=1e-4)
    # 2020 hurt: the drawdown starts with the February crash (the book kept losing into the June rally)
    assert pd.Timestamp("2020-02-20") <= pd.Timestamp(res.summary.dd_trough) <= pd.Timestamp("2020-06-30")
    assert pd.Timestamp(res.summary.dd_peak) <= pd.Timestamp("2020-02-24")
    assert res.summary.max_drawdown > 0.03
    assert (res.fills["commission"] > 0).all()
    # every condor leg set is ordered long put < short put < short call < long call
    t = res.trades
    assert (t.long_put < t.short_put).all() and (t.short_put < t.short_call).all() and (t.short_call < t.long_call).all()
    assert set(t.exit_reason) <= {"take_profit", "stop", "time", "expired"}


def test_condor_sizing_respects_risk_limits(result_2020, cfg):
    t = result_2020.trades
    width = np.maximum(t.short_put - t.long_put, t.long_call - t.short_call)
    max_loss = (width - t.credit) * 100 * t.quantity
    equity_cap = cfg.condor.risk_per_trade * result_2020.equity["equity"].max()
    assert (max_loss <= equity_cap * 1.02).all()


def test_replay_is_deterministic(cfg, panel, tmp_path):
    a = run_backtest(cfg, panel, start="2020-01-01", end="2020-04-30")
    b = run_backtest(cfg, panel, start="2020-01-01", end="2020-04-30")
    write_outputs(a, tmp_path / "a")
    write_outputs(b, tmp_path / "b")
    for name in ("equity.csv", "trades.csv", "fills.csv", "summary.json"):
        assert (tmp_path / "a" / name).read_bytes() == (tmp_path / "b" / name).read_bytes(), name


def test_bad_config_key_names_the_key(tmp_path):
    bad = tmp_path / "bad.toml"
    bad.write_text("[condor]\nshort_delta = 0.7\n")
    with pytest.raises(ConfigError, match="condor.short_delta"):
        load_config(bad)
    bad.write_text("[condor]\nshort_detla = 0.16\n")
    with pytest.raises(ConfigError, match="short_detla"):
        load_config(bad)


def test_cli_replay_and_config_error_exit_codes(data_dir, tmp_path):
    out = tmp_path / "out"
    cmd = [sys.executable, "-m", "adapters.cli", "replay", "--config", "config/condor.toml", "--start", "2021-01-01",
           "--end", "2021-03-31", "--data-dir", str(data_dir), "--out", str(out)]
    p = subprocess.run(cmd, check=False, capture_output=True, text=True, timeout=300)
    assert p.returncode == 0, p.stderr
    assert "max drawdown" in p.stdout and "Sharpe" in p.stdout
    assert (out / "equity.csv").exists() and (out / "trades.parquet").exists() and (out / "fills.csv").exists()
    bad = tmp_path / "bad.toml"
    bad.write_text("[run]\nstart = 2020-01-01\nend = 2019-01-01\n")
    p = subprocess.run(cmd[:5] + [str(bad), "--data-dir", str(data_dir)], check=False, capture_output=True, text=True, timeout=120)
    assert p.returncode == 2 and "run" in p.stderr and p.stderr.count("\n") == 1


def test_cli_data_check_fails_on_corrupted_copy(data_dir, tmp_path):
    import shutil

    copy = tmp_path / "data"
    shutil.copytree(data_dir, copy)
    path = copy / "vix_daily.csv"
    lines = path.read_text().splitlines()
    n = next(i for i, l in enumerate(lines) if l.startswith("2020-03-16"))
    lines[n] = "2020-03-16,,,,"
    path.write_text("\n".join(lines) + "\n")
    p = subprocess.run([sys.executable, "-m", "adapters.cli", "data", "check", "--data-dir", str(copy)],
                       check=False, capture_output=True, text=True, timeout=300)
    assert p.returncode != 0
    assert "vix_daily.csv" in p.stderr and f"row {n + 1}" in p.stderr


def test_cli_bad_dates_are_one_sentence_errors(data_dir, capsys):
    from adapters.cli.main import main

    with pytest.raises(SystemExit) as e:
        main(["replay", "--start", "notadate", "--data-dir", str(data_dir)])
    assert e.value.code != 0 and "YYYY-MM-DD" in capsys.readouterr().err
    rc = main(["replay", "--start", "2030-01-01", "--end", "2031-01-01", "--data-dir", str(data_dir), "--out", ""])
    err = capsys.readouterr().err
    assert rc == 1 and "the data does not cover 2030-01-01 .. 2031-01-01" in err and "spx_daily.csv" in err
    assert err.count("\n") == 1
