"""Tests for ``alvh data fetch`` (adapters/data/fetch/, adapters/data/public_sources.py, adapters/cli/data.py).

One file over 500 lines because every test shares the loopback server and its recorded vendor files.

Everything runs against a ThreadingHTTPServer on 127.0.0.1 that serves small synthetic files in
each vendor's real raw format; no outside network is used.
"""
from __future__ import annotations

import json
import re
import sys
import threading
import time
import types
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

from adapters.cli.main import main as alvh_main
from adapters.data import fetch as F
from adapters.data import public_sources as PS
from adapters.data.fetch import download as D
from adapters.data.fetch import files as FF

SHARED = Path("/work/shared/data")
NOW = datetime(2024, 2, 20, 22, 0, tzinfo=UTC)      # 17:00 New York, after the close
TODAY = NOW.date()

# ----------------------------------------------------------------------------- synthetic raw files


def _weekdays(start: date, n: int) -> list[date]:
    out, d = [], start
    while len(out) < n:
        if d.weekday() < 5:
            out.append(d)
        d += timedelta(days=1)
    return out


DAYS = _weekdays(date(2024, 1, 2), 20)        # four weeks of sessions


def _us(d: date) -> str:
    return d.strftime("%m/%d/%Y")


def cboe_ohlc(level: float, first: str | None = None) -> bytes:
    rows = ["DATE,OPEN,HIGH,LOW,CLOSE"]
    for i, d in enumerate(DAYS):
        c = level + 0.37 * ((i * 7) % 5) - 0.6
        rows.append(f"{_us(d)},{c - 0.11:.6f},{c + 1.02:.6f},{c - 0.23:.6f},{c:.6f}")
    if first:
        rows[1] = first
    return ("\r\n".join(rows) + "\r\n").encode()


def cboe_single(name: str, level: float) -> bytes:
    rows = [f"DATE,{name}"] + [f"{_us(d)},{level + 0.5 * (i % 4):.6f}" for i, d in enumerate(DAYS)]
    return ("\n".join(rows) + "\n").encode()


def vx_raw(expiry: date, code: str, base: float) -> bytes:
    label = f"{code} ({expiry:%b %Y})"
    rows = ["Trade Date,Futures,Open,High,Low,Close,Settle,Change,Total Volume,EFP,Open Interest"]
    days = [d for d in _weekdays(date(2024, 1, 2), 40) if d <= min(expiry, TODAY)]
    for i, d in enumerate(days):
        s = base + 0.05 * (i % 6)
        rows.append(f"{d.isoformat()},{label},{s - 0.1:.4f},{s + 0.45:.4f},{s - 0.15:.4f},{s + 0.01:.4f},"
                    f"{s:.4f},{0.05 * ((i % 3) - 1):.4f},{45000 - 100 * i},{120 + i},{150000 + 50 * i}")
    return ("\n".join(rows) + "\n").encode()


def fred_raw(series: str, *, old: bool) -> bytes:
    rows = [("DATE" if old else "observation_date") + f",{series}"]
    d = date(2024, 1, 1)
    for i in range(28):
        day = d + timedelta(days=i)
        if series == "DTB3" and day.weekday() >= 5:
            continue
        holiday = day in (date(2024, 1, 1), date(2024, 1, 15))
        missing = "." if old else ""
        rows.append(f"{day.isoformat()},{missing if holiday else ('5.24' if series == 'DTB3' else '5.33')}")
    return ("\n".join(rows) + "\n").encode()


def stooq_raw() -> bytes:
    rows = ["Date,Open,High,Low,Close,Volume", "2024-01-02,4745.2,4754.33,4722.67,4742.83,3743050000"]
    for i, d in enumerate(DAYS[1:], start=1):
        c = 4742.83 + 9.5 * ((i * 3) % 7) - 20
        rows.append(f"{d.isoformat()},{c - 5:.2f},{c + 14.1:.2f},{c - 17.3:.2f},{c:.2f},{3500000000 + i * 1000}")
    return ("\n".join(rows) + "\n").encode()


def _vix_expiry_fallback(year: int, month: int) -> date:
    """Test-only fallback: Wednesday 30 days before the 3rd Friday of the next month (no holidays)."""
    y, m = (year + 1, 1) if month == 12 else (year, month + 1)
    first = date(y, m, 1)
    third_friday = first + timedelta(days=(4 - first.weekday()) % 7 + 14)
    return third_friday - timedelta(days=30)


try:  # use the engine's expiry rule when it exists (no holidays in the months used here)
    from engine.calendar import vix_expiry as _VIX_EXPIRY
except ImportError:
    _VIX_EXPIRY = _vix_expiry_fallback

EXP_FEB, EXP_MAR, EXP_APR = date(2024, 2, 14), date(2024, 3, 20), date(2024, 4, 17)
# Feb (settled), Mar (live) and Apr 2024, which the test server does not list yet.
VX_TEST = PS.with_options(PS.CATALOGUE["vx"], start="2024-02", end="2024-04", expiry_fn=_VIX_EXPIRY, listed_days=40)
ALL_TEST_SOURCES = ([PS.CATALOGUE[n] for n in PS.CATALOGUE if n not in ("vx", "vx_cfe", "spx")]
                    + [VX_TEST, PS.spx_source("stooq")])

IDX = "/api/global/us_indices/daily_prices/"
VXP = "/data/us/futures/market_statistics/historical_data/VX/"


def raw_files() -> dict[str, bytes]:
    return {
        IDX + "VIX_History.csv": cboe_ohlc(13.5, "01/02/2024,13.210000,14.230000,13.100000,13.200000"),
        IDX + "VIX9D_History.csv": cboe_ohlc(12.4),
        IDX + "VIX3M_History.csv": cboe_ohlc(15.8),
        IDX + "VIX6M_History.csv": cboe_ohlc(17.1),
        IDX + "VVIX_History.csv": b"DATE,VVIX\n01/02/2024,86.250000\n" + cboe_single("VVIX", 84.0).split(b"\n", 2)[2],
        IDX + "SKEW_History.csv": cboe_single("SKEW", 144.12),
        VXP + "VX_2024-02-14.csv": vx_raw(EXP_FEB, "G", 14.9),
        VXP + "VX_2024-03-20.csv": vx_raw(EXP_MAR, "H", 15.8),
        "/graph/fredgraph.csv?id=DTB3": fred_raw("DTB3", old=False),
        "/graph/fredgraph.csv?id=DFF": fred_raw("DFF", old=True),
        "/q/d/l/?s=^spx&i=d": stooq_raw(),
    }


# ----------------------------------------------------------------------------- loopback server


@dataclass
class Route:
    body: bytes = b""
    status: int = 200
    sleep: float = 0.0
    truncate: int = 0              # this many responses are cut in half (Content-Length stays full)
    ignore_range: bool = False
    etag: str | None = None
    trickle: float = 0.0           # seconds between 16-byte pieces of the body


class _Handler(BaseHTTPRequestHandler):
    def log_message(self, *args) -> None:
        pass

    def do_GET(self) -> None:
        srv = self.server
        srv.requests.append((self.path, {k.lower(): v for k, v in self.headers.items()}))
        route = srv.routes.get(self.path)
        if route is None:
            self.send_error(404, "Not Found")
            return
        if route.sleep:
            time.sleep(route.sleep)
        if route.status != 200:
            self.send_error(route.status)
            return
        body, start = route.body, 0
        if route.etag and self.headers.get("If-None-Match") == route.etag:
            self.send_response(304)
            self.end_headers()
            return
        rng, if_range = self.headers.get("Range"), self.headers.get("If-Range")
        partial = bool(rng) and not route.ignore_range and (if_range is None or if_range == route.etag)
        if partial:
            start = int(re.match(r"bytes=(\d+)-", rng).group(1))
            if start >= len(body):
                self.send_error(416)
                return
            self.send_response(206)
            self.send_header("Content-Range", f"bytes {start}-{len(body) - 1}/{len(body)}")
        else:
            self.send_response(200)
        chunk = body[start:]
        self.send_header("Content-Type", "text/csv")
        self.send_header("Content-Length", str(len(chunk)))
        if route.etag:
            self.send_header("ETag", route.etag)
        self.end_headers()
        if route.truncate > 0:
            route.truncate -= 1
            chunk = chunk[: len(chunk) // 2]
        if route.trickle:
            for i in range(0, len(chunk), 16):
                self.wfile.write(chunk[i:i + 16])
                self.wfile.flush()
                time.sleep(route.trickle)
            return
        self.wfile.write(chunk)


class CDN:
    def __init__(self) -> None:
        self.srv = ThreadingHTTPServer(("127.0.0.1", 0), _Handler)
        self.srv.routes = {p: Route(b, etag=f'"{i}-v1"') for i, (p, b) in enumerate(raw_files().items())}
        self.srv.requests = []
        self.srv.handle_error = lambda request, client_address: None
        self.url = f"http://127.0.0.1:{self.srv.server_address[1]}"
        self.thread = threading.Thread(target=self.srv.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
        self.thread.start()

    @property
    def routes(self) -> dict[str, Route]:
        return self.srv.routes

    @property
    def requests(self) -> list[tuple[str, dict[str, str]]]:
        return self.srv.requests

    def hits(self, path: str) -> list[dict[str, str]]:
        return [h for p, h in self.requests if p == path]

    def close(self) -> None:
        self.srv.shutdown()
        self.srv.server_close()


@pytest.fixture
def cdn(monkeypatch):
    monkeypatch.setenv("no_proxy", "127.0.0.1,localhost")
    monkeypatch.delenv(PS.ENV_BASE, raising=False)
    server = CDN()
    yield server
    server.close()


def run(cdn: CDN, dest: Path, sources, **kw) -> F.FetchReport:
    opts = {"base_overrides": {"*": cdn.url}, "progress": False, "timeout": 2.0, "backoff": 0.01, "check": False,
            "now": NOW}
    opts.update(kw)
    return F.fetch_all(dest, sources=sources, **opts)


def fetch_cli(argv: list[str]) -> int:
    """``alvh data fetch ARGV`` through the real command line; usage errors exit through argparse."""
    try:
        return alvh_main(["data", "fetch", *argv])
    except SystemExit as e:
        return int(e.code or 0)


def status(report: F.FetchReport) -> dict[str, str]:
    return {r.target: r.status for r in report.results}


def lines(path: Path) -> list[str]:
    return path.read_text(encoding="utf-8").splitlines()


# ----------------------------------------------------------------------------- tests

HEADERS = {
    "vix_daily.csv": "date,open,high,low,close",
    "vix9d_daily.csv": "date,open,high,low,close",
    "vix3m_daily.csv": "date,open,high,low,close",
    "vix6m_daily.csv": "date,open,high,low,close",
    "vvix_daily.csv": "date,vvix",
    "skew_daily.csv": "date,skew",
    "spx_daily.csv": "date,open,high,low,close,volume",
    "rates/dtb3_daily.csv": "date,dtb3",
    "rates/dff_daily.csv": "date,dff",
    "vx_futures/VX_2024-02.csv": "trade_date,contract_month,expiry,futures_label,open,high,low,close,settle,"
                                 "change,total_volume,efp,open_interest,source",
    "vx_futures/contracts_index.csv": "contract_month,expiry,first_date,last_date,rows,rows_with_prices,"
                                      "rows_settle_zero,expired_in_data,source,expiry_label_corrected",
}


def test_every_source_is_normalized_to_the_shared_layout(cdn, tmp_path):
    report = run(cdn, tmp_path, ALL_TEST_SOURCES)
    assert not report.failed, [r.error for r in report.failed]
    st = status(report)
    assert st["vx_futures/VX_2024-02.csv"] == st["vx_futures/VX_2024-03.csv"] == "fetched"
    assert st["vx_futures/VX_2024-04.csv"] == "unlisted"          # future contract, 404 -> not a failure
    assert not (tmp_path / "vx_futures/VX_2024-04.csv").exists()

    for rel, header in HEADERS.items():
        assert lines(tmp_path / rel)[0] == header, rel
        shared = SHARED / ("vx_futures/VX_2020-03.csv" if rel.startswith("vx_futures/VX_") else rel)
        if shared.exists():                     # same header as the shared copy the loader reads
            assert header == shared.open(encoding="utf-8").readline().strip(), rel

    assert lines(tmp_path / "vix_daily.csv")[1] == "2024-01-02,13.210000,14.230000,13.100000,13.200000"
    assert lines(tmp_path / "vvix_daily.csv")[1] == "2024-01-02,86.250000"
    assert len(lines(tmp_path / "skew_daily.csv")) == 1 + len(DAYS)
    assert lines(tmp_path / "spx_daily.csv")[1] == "2024-01-02,4745.2,4754.33,4722.67,4742.83,3743050000"
    dtb3 = lines(tmp_path / "rates/dtb3_daily.csv")
    assert dtb3[1:3] == ["2024-01-01,", "2024-01-02,5.24"]                 # current FRED format, empty cell
    dff = lines(tmp_path / "rates/dff_daily.csv")
    assert "2024-01-15," in dff and "2024-01-14,5.33" in dff               # old format: '.' -> empty
    vx = lines(tmp_path / "vx_futures/VX_2024-02.csv")
    assert vx[1] == ("2024-01-02,2024-02,2024-02-14,G (Feb 2024),14.8000,15.3500,14.7500,14.9100,14.9000,"
                     "-0.0500,45000,120,150000,cboe_cdn")
    assert vx[-1].startswith("2024-02-14,2024-02,2024-02-14,")
    index = lines(tmp_path / "vx_futures/contracts_index.csv")
    n_feb = len(vx) - 1
    assert index[1] == f"2024-02,2024-02-14,2024-01-02,2024-02-14,{n_feb},{n_feb},0,True,cboe_cdn,False"
    assert index[2].startswith("2024-03,2024-03-20,2024-01-02,2024-02-20,") and index[2].endswith(",False,cboe_cdn,False")

    meta = json.loads((tmp_path / "vix_daily.csv.meta.json").read_text())
    assert meta["url"] == cdn.url + IDX + "VIX_History.csv" and meta["etag"] == cdn.routes[IDX + "VIX_History.csv"].etag
    assert meta["rows"] == len(DAYS) and meta["fetched_at"] == "2024-02-20T22:00:00Z"
    sources_md = (tmp_path / "SOURCES.md").read_text()
    assert cdn.url + IDX + "VIX_History.csv" in sources_md and "VX_2024-03.csv" in sources_md
    assert not list(tmp_path.rglob("*.part")) and not list(tmp_path.rglob("*.tmp"))


def test_interrupted_download_resumes_with_a_range_request(cdn, tmp_path):
    path = IDX + "VIX_History.csv"
    clean = run(cdn, tmp_path / "clean", ["vix"])
    assert not clean.failed
    cdn.requests.clear()
    cdn.routes[path].truncate = 1                     # first response dies half-way
    report = run(cdn, tmp_path / "d", ["vix"])
    assert status(report) == {"vix_daily.csv": "fetched"}
    first, second = cdn.hits(path)
    half = len(cdn.routes[path].body) // 2
    assert "range" not in first
    assert second["range"] == f"bytes={half}-" and second["if-range"] == cdn.routes[path].etag
    assert report.results[0].attempts == 2
    assert (tmp_path / "d/vix_daily.csv").read_bytes() == (tmp_path / "clean/vix_daily.csv").read_bytes()
    meta = json.loads((tmp_path / "d/vix_daily.csv.meta.json").read_text())
    assert meta["raw_bytes"] == len(cdn.routes[path].body)
    assert not (tmp_path / "d/vix_daily.csv.part").exists()


def test_a_leftover_part_file_is_resumed(cdn, tmp_path):
    path = IDX + "SKEW_History.csv"
    body = cdn.routes[path].body
    (tmp_path / "skew_daily.csv.part").write_bytes(body[:100])
    report = run(cdn, tmp_path, ["skew"])
    assert status(report) == {"skew_daily.csv": "fetched"}
    (hit,) = cdn.hits(path)
    assert hit["range"] == "bytes=100-"
    assert json.loads((tmp_path / "skew_daily.csv.meta.json").read_text())["raw_sha256"] == FF.sha256(body)


def test_a_server_that_ignores_range_restarts_the_download(cdn, tmp_path):
    path = IDX + "VVIX_History.csv"
    cdn.routes[path].ignore_range = True
    (tmp_path / "vvix_daily.csv.part").write_bytes(b"GARBAGE FROM AN OLDER VERSION\n" * 3)
    report = run(cdn, tmp_path, ["vvix"])
    assert status(report) == {"vvix_daily.csv": "fetched"}
    (hit,) = cdn.hits(path)
    assert hit["range"] == "bytes=90-"
    assert any("ignored the Range" in n for n in report.results[0].notes)
    assert lines(tmp_path / "vvix_daily.csv")[:2] == ["date,vvix", "2024-01-02,86.250000"]
    assert "GARBAGE" not in (tmp_path / "vvix_daily.csv").read_text()


def test_a_404_source_is_named_others_are_fetched_and_the_exit_status_is_nonzero(cdn, tmp_path, capsys):
    cdn.routes[IDX + "VVIX_History.csv"].status = 404
    rc = fetch_cli(["--dest", str(tmp_path), "--quiet", "--only", "vix,vvix", "--only", "dtb3",
                     "--base-url-override", f"*={cdn.url}", "--timeout", "2", "--no-check"])
    err = capsys.readouterr().err
    assert rc == 1
    assert cdn.url + IDX + "VVIX_History.csv" in err and "HTTP 404" in err
    assert len([ln for ln in err.splitlines() if ln.startswith("error:")]) == 1
    assert (tmp_path / "vix_daily.csv").exists() and (tmp_path / "rates/dtb3_daily.csv").exists()
    assert not (tmp_path / "vvix_daily.csv").exists()
    assert len(cdn.hits(IDX + "VVIX_History.csv")) == 1                # a 404 is not retried
    assert "vvix" in (tmp_path / "SOURCES.md").read_text()


def test_env_mirror_base_and_success_exit_status(cdn, tmp_path, monkeypatch, capsys):
    monkeypatch.setenv(PS.ENV_BASE, cdn.url)
    rc = fetch_cli(["--dest", str(tmp_path), "--only", "spx", "--no-check", "--timeout", "2", "--spx-source", "stooq"])
    out = capsys.readouterr().out
    assert rc == 0 and "1 fetched" in out
    assert cdn.hits("/q/d/l/?s=^spx&i=d")
    assert fetch_cli(["--dest", str(tmp_path), "--only", "nope"]) == 2


def test_a_hanging_server_fails_within_a_bounded_time(cdn, tmp_path):
    path = IDX + "SKEW_History.csv"
    cdn.routes[path].sleep = 1.5
    t0 = time.monotonic()
    report = run(cdn, tmp_path, ["skew", "vix"], timeout=0.25, retries=3)
    elapsed = time.monotonic() - t0
    assert elapsed < 2.5
    (bad,) = report.failed
    assert bad.target == "skew_daily.csv" and bad.attempts == 3
    assert cdn.url + path in bad.error and "timed out" in bad.error and "3 attempts" in bad.error
    assert status(report)["vix_daily.csv"] == "fetched"
    assert not (tmp_path / "skew_daily.csv").exists()


def test_a_trickling_server_hits_the_total_deadline(cdn, tmp_path, monkeypatch):
    monkeypatch.setattr(D, "TOTAL_TIMEOUT_FACTOR", 2)      # deadline = 2 x 0.25 s
    path = IDX + "VIX9D_History.csv"
    cdn.routes[path].trickle = 0.02                         # ~1.3 KB/s: each read is quick, the body is not
    t0 = time.monotonic()
    (bad,) = run(cdn, tmp_path, ["vix9d"], timeout=0.25, retries=2).failed
    assert time.monotonic() - t0 < 2.0
    assert "longer than 0.5 s" in bad.error and cdn.url + path in bad.error
    assert not (tmp_path / "vix9d_daily.csv").exists()


@pytest.mark.parametrize("mode", ["http500", "html", "truncated", "shorter"])
def test_a_failed_refetch_never_touches_the_existing_good_file(cdn, tmp_path, mode):
    path = IDX + "VIX_History.csv"
    assert not run(cdn, tmp_path, ["vix"]).failed
    good = (tmp_path / "vix_daily.csv").read_bytes()
    meta = (tmp_path / "vix_daily.csv.meta.json").read_bytes()
    route = cdn.routes[path]
    route.etag = None                                   # force a full re-download
    if mode == "http500":
        route.status = 500
    elif mode == "html":
        route.body = b"<html><body>Access Denied</body></html>\n"
    elif mode == "truncated":
        route.truncate = 99
    else:
        route.body = b"\n".join(route.body.splitlines()[:5]) + b"\n"
    report = run(cdn, tmp_path, ["vix"], max_age_days=0)
    (bad,) = report.failed
    assert cdn.url + path in bad.error
    assert (tmp_path / "vix_daily.csv").read_bytes() == good
    assert (tmp_path / "vix_daily.csv.meta.json").read_bytes() == meta
    if mode in ("html", "shorter"):
        assert not (tmp_path / "vix_daily.csv.part").exists()
    if mode == "html":
        assert "unusable data" in bad.error and "Access Denied" in bad.error
    if mode == "shorter":
        assert "existing file was kept" in bad.error


def test_fresh_files_are_skipped_stale_ones_revalidated_settled_contracts_never_refetched(cdn, tmp_path):
    sources = ["vix", "dtb3", VX_TEST]
    first = run(cdn, tmp_path, sources)
    assert not first.failed
    before = (tmp_path / "vix_daily.csv").read_bytes()
    cdn.requests.clear()

    again = run(cdn, tmp_path, sources, now=NOW + timedelta(hours=2))
    assert status(again).pop("vx_futures/VX_2024-04.csv") == "unlisted"
    assert set(status(again).values()) - {"unlisted"} == {"skipped"}
    assert [p for p, _ in cdn.requests] == [VXP + "VX_2024-04-17.csv"]   # only the unlisted contract

    stale = run(cdn, tmp_path, sources, now=NOW + timedelta(days=2), today=TODAY + timedelta(days=2))
    st = status(stale)
    assert st["vix_daily.csv"] == st["rates/dtb3_daily.csv"] == "not_modified"
    assert st["vx_futures/VX_2024-02.csv"] == "skipped"             # settled: never re-fetched
    assert st["vx_futures/VX_2024-03.csv"] == "not_modified"        # live contract: revalidated
    assert not cdn.hits(VXP + "VX_2024-02-14.csv")
    (hit,) = cdn.hits(IDX + "VIX_History.csv")
    assert hit["if-none-match"] == cdn.routes[IDX + "VIX_History.csv"].etag
    assert (tmp_path / "vix_daily.csv").read_bytes() == before
    meta = json.loads((tmp_path / "vix_daily.csv.meta.json").read_text())
    assert meta["fetched_at"] == "2024-02-20T22:00:00Z" and meta["checked_at"] == "2024-02-22T22:00:00Z"

    (tmp_path / "vix_daily.csv").write_text("date,open,high,low,close\n")    # damaged by hand
    repaired = run(cdn, tmp_path, ["vix"], now=NOW + timedelta(days=2, hours=1))
    assert status(repaired) == {"vix_daily.csv": "fetched"}
    assert (tmp_path / "vix_daily.csv").read_bytes() == before


def test_a_settled_vx_file_brought_by_the_user_is_kept(cdn, tmp_path):
    vx_dir = tmp_path / "vx_futures"
    vx_dir.mkdir()
    own = ("trade_date,contract_month,expiry,futures_label,open,high,low,close,settle,change,total_volume,efp,"
           "open_interest,source\n"
           "2024-02-13,2024-02,2024-02-14,G (Feb 24),15.00,15.50,14.90,15.20,15.25,0.10,1000,0,9000,my_copy\n"
           "2024-02-14,2024-02,2024-02-14,G (Feb 24),0.00,0.00,0.00,0.00,15.31,0.06,0,0,8000,my_copy\n")
    (vx_dir / "VX_2024-02.csv").write_text(own)
    (vx_dir / "contracts_index.csv").write_text(
        "contract_month,expiry,first_date,last_date,rows,rows_with_prices,rows_settle_zero,expired_in_data,"
        "source,expiry_label_corrected\n2024-02,2024-02-14,2024-02-13,2024-02-14,2,2,0,True,someone/repo,True\n")
    report = run(cdn, tmp_path, [VX_TEST])
    assert status(report)["vx_futures/VX_2024-02.csv"] == "skipped" and not report.failed
    assert not cdn.hits(VXP + "VX_2024-02-14.csv")
    assert (vx_dir / "VX_2024-02.csv").read_text() == own
    index = lines(vx_dir / "contracts_index.csv")
    assert index[1] == "2024-02,2024-02-14,2024-02-13,2024-02-14,2,2,0,True,someone/repo,True"
    assert index[2].startswith("2024-03,") and index[2].endswith(",cboe_cdn,False")
    assert "vx_futures/VX_2024-02.csv" in (tmp_path / "SOURCES.md").read_text()


def test_check_data_errors_are_reported(cdn, tmp_path, monkeypatch):
    class Err(Exception):
        def __init__(self, file, row, message):
            super().__init__(f"{file}: {message}")
            self.file = file

    seen = []

    def check_data(data_dir):
        seen.append(Path(data_dir))
        return types.SimpleNamespace(ok=False, warnings=["vix_daily.csv: 3 OHLC rows inconsistent"], errors=[
            Err("vix_daily.csv", 2, "close is NaN"), Err("events/fomc_dates_2015_2026.csv", None, "file is missing"),
            Err("vix_etps/vxx_close_adjusted.csv", None, "file not found"),
            Err("vx_futures/VX_2024-03.csv", None, "contract file is missing")])

    fake = types.ModuleType("adapters.data.panel")
    fake.check_data = check_data
    monkeypatch.setitem(sys.modules, "adapters.data.panel", fake)
    report = run(cdn, tmp_path, ["vix"], check=True)
    assert seen == [tmp_path]
    assert report.check_ok is False
    assert report.check_errors == ["vix_daily.csv: close is NaN", "vx_futures/VX_2024-03.csv: contract file is missing"]
    assert report.unprovided == ["events/fomc_dates_2015_2026.csv", "vix_etps/vxx_close_adjusted.csv"]
    assert report.check_warnings[0].startswith("2 file(s) the data check expects are not provided")
    assert report.partial and report.ok                     # --only: check errors do not fail the fetch
    full = F.FetchReport(dest=tmp_path, check_ok=False, check_errors=["x"])
    assert not full.ok


def test_stooq_html_interstitial_gets_a_hint_and_an_api_key_never_leaks(cdn, tmp_path):
    keyed = "/q/d/l/?apikey=SECRET&s=^spx&i=d"
    cdn.routes[keyed] = Route(b"<!DOCTYPE html><html><body>Get your apikey</body></html>")
    overrides = {"*": cdn.url, "spx": cdn.url + "/q/d/l/?apikey=SECRET"}
    (bad,) = run(cdn, tmp_path, ["spx"], base_overrides=overrides).failed
    assert "apikey=***" in bad.error and "API key" in bad.error and "docs/fetch.md" in bad.error
    cdn.routes[keyed] = Route(stooq_raw())
    assert not run(cdn, tmp_path, ["spx"], base_overrides=overrides).failed
    assert cdn.hits(keyed)
    assert not [p for p in tmp_path.rglob("*") if p.is_file() and b"SECRET" in p.read_bytes()]


def test_stooq_partial_intraday_row_is_dropped():
    raw = "Date,Open,High,Low,Close,Volume\n2024-01-02,1,2,0.5,1.5,10\n2024-01-03,1.5,2,1,1.8,3\n"
    ctx = PS.NormalizeContext("spx", "u", now=datetime(2024, 1, 3, 19, 0, tzinfo=UTC))      # 14:00 NY
    out = PS.stooq_normalizer(raw, ctx)
    assert out.rows == 1 and out.last_date == "2024-01-02" and "intraday" in out.notes[0]
    ctx = PS.NormalizeContext("spx", "u", now=datetime(2024, 1, 3, 23, 0, tzinfo=UTC))      # 18:00 NY
    assert PS.stooq_normalizer(raw, ctx).rows == 2


def test_vx_normalizer_skips_a_disclaimer_and_accepts_us_dates():
    raw = ("CFE data is compiled for the convenience of site visitors and is furnished without responsibility.\n"
           "Trade Date,Futures,Open,High,Low,Close,Settle,Change,Total Volume,EFP,Open Interest\n"
           "01/02/2013,F (Jan 13),16.80,16.80,15.50,15.60,15.60,-2.10,97535,3632,120663,\n")
    out = PS.vx_normalizer(raw, PS.NormalizeContext("vx", "u", expiry=date(2013, 1, 16)))
    assert out.text.splitlines()[1] == \
        "2013-01-02,2013-01,2013-01-16,F (Jan 13),16.80,16.80,15.50,15.60,15.60,-2.10,97535,3632,120663,cboe_cdn"
    with pytest.raises(PS.NormalizeError, match="expected columns"):
        PS.vx_normalizer("<html>nope</html>", PS.NormalizeContext("vx", "u", expiry=date(2013, 1, 16)))


def test_base_url_overrides():
    assert PS.parse_base_overrides(["vix=http://a/x/", "fred=http://b"]) == {"vix": "http://a/x/", "fred": "http://b"}
    assert PS.parse_base_overrides("cboe_index=http://a,stooq=http://c/q") == {
        "cboe_index": "http://a", "stooq": "http://c/q"}
    assert PS.parse_base_overrides("http://127.0.0.1:9/?a=b,c") == {"*": "http://127.0.0.1:9/?a=b,c"}
    with pytest.raises(ValueError):
        PS.parse_base_overrides(["nonsense"])
    vix, dtb3 = PS.CATALOGUE["vix"], PS.CATALOGUE["dtb3"]
    env = {PS.ENV_BASE: "http://mirror:1"}
    assert PS.resolve_base(vix, {}, env={}) == PS.DEFAULT_BASES["cboe_index"]
    assert PS.resolve_base(vix, {}, env=env) == "http://mirror:1/api/global/us_indices/daily_prices"
    assert PS.resolve_base(vix, {"cboe_index": "http://g"}, env=env) == "http://g"
    assert PS.resolve_base(vix, {"cboe_index": "http://g", "vix": "http://v/"}, env=env) == "http://v/"
    (job,) = vix.downloads("http://v/", TODAY)
    assert job.url == "http://v/VIX_History.csv" and job.target == "vix_daily.csv"
    (job,) = dtb3.downloads(PS.resolve_base(dtb3, {}, env=env), TODAY)
    assert job.url == "http://mirror:1/graph/fredgraph.csv?id=DTB3"
    jobs = VX_TEST.downloads(PS.DEFAULT_BASES["cboe_vx"], TODAY)
    assert [j.url.rsplit("/", 1)[1] for j in jobs] == ["VX_2024-02-14.csv", "VX_2024-03-20.csv", "VX_2024-04-17.csv"]
    assert [j.optional for j in jobs] == [False, False, True]
    assert len(PS.CATALOGUE["vx"].months(date(2026, 11, 25))) == (2027 - 2014) * 12 + 8
    cfe = PS.CATALOGUE["vx_cfe"].downloads(PS.DEFAULT_BASES["cboe_cfe"], TODAY)
    assert len(cfe) == (2014 - 2004) * 12 - 4 and cfe[0].url.endswith("/volume-and-price/CFE_K04_VX.csv")
    assert [j.target for j in cfe if j.optional] == [f"vx_futures/VX_{m}.csv" for m in
                                                      ("2004-12", "2005-04", "2005-07", "2005-09")]


# ----------------------------------------------------------------------------- providers, offline, flags


def test_cfe_archive_contracts_take_their_expiry_from_the_last_row(cdn, tmp_path):
    raw = SHARED / "vx_futures/raw/cfe_2004_2014"
    if not raw.is_dir():
        pytest.skip("needs the CFE originals in shared/data")
    arch = "/resources/futures/archive/volume-and-price/"
    for code in ("K04", "M04", "N04"):
        cdn.routes[f"{arch}CFE_{code}_VX.csv"] = Route((raw / f"CFE_{code}_VX.csv").read_bytes())
    src = PS.with_options(PS.CATALOGUE["vx_cfe"], end="2004-07", expiry_fn=_VIX_EXPIRY,
                          unlisted_months=("2004-06",))
    del cdn.routes[f"{arch}CFE_M04_VX.csv"]                  # a month CFE never listed: 404 -> unlisted
    report = run(cdn, tmp_path, [src])
    assert status(report) == {"vx_futures/VX_2004-05.csv": "fetched", "vx_futures/VX_2004-06.csv": "unlisted",
                              "vx_futures/VX_2004-07.csv": "fetched"}
    for month in ("2004-05", "2004-07"):     # the same rows and values as the normalized shared copy
        got = [ln.split(",")[:13] for ln in lines(tmp_path / f"vx_futures/VX_{month}.csv")[1:]]
        ref = [ln.split(",")[:13] for ln in lines(SHARED / f"vx_futures/VX_{month}.csv")[1:]]
        assert got == ref, month
    jul = report.results[2]
    assert any("expiry 2004-07-14 (last trade date) differs from the rule's 2004-07-21" in n for n in jul.notes)
    index = lines(tmp_path / "vx_futures/contracts_index.csv")
    assert index[2].startswith("2004-07,2004-07-14,") and index[2].endswith(",True,cboe_cfe_archive,False")


def test_cboe_close_only_spx_and_the_notice_when_neither_key_nor_yfinance(cdn, tmp_path, monkeypatch):
    cdn.routes[IDX + "SPX_History.csv"] = Route(b"DATE,SPX\r\n01/02/2024,4742.83\r\n01/03/2024,4704.81\r\n")
    monkeypatch.setattr(PS, "_yfinance_installed", lambda: False)
    report = run(cdn, tmp_path, ["spx"])
    (res,) = report.results
    assert res.status == "fetched" and res.url == cdn.url + IDX + "SPX_History.csv"
    assert lines(tmp_path / "spx_daily.csv") == ["date,open,high,low,close,volume", "2024-01-02,,,,4742.83,",
                                                 "2024-01-03,,,,4704.81,"]
    (notice,) = report.notices
    assert notice.startswith("spx_daily.csv: Stooq needs an API key and yfinance is not installed")
    assert "pip install 'alvh[fetch]'" in notice
    assert "NOTE: spx_daily.csv: Stooq needs" in (tmp_path / "SOURCES.md").read_text()
    monkeypatch.setattr(PS, "_yfinance_installed", lambda: True)
    assert PS.spx_source("auto", {}, env={}).group == "yahoo"
    assert PS.spx_source("auto", {"stooq": "https://stooq.com/q/d/l/?apikey=K"}, env={}).group == "stooq"


def test_yahoo_bars_through_yfinance_are_written_to_cents(tmp_path, monkeypatch):
    import pandas as pd

    calls = []

    class Ticker:
        def __init__(self, symbol):
            self.symbol = symbol

        def history(self, **kw):
            calls.append((self.symbol, kw))
            idx = pd.DatetimeIndex(["2024-01-02", "2024-01-03"], tz="America/New_York")
            return pd.DataFrame({"Open": [4745.2001953125, 4725.06982421875], "High": [4754.330078125, 4729.2900390625],
                                 "Low": [4722.669921875, 4699.7099609375], "Close": [4742.830078125, 4704.81005859375],
                                 "Adj Close": [4742.830078125, 4704.81005859375], "Volume": [3743050000, 3950760000]},
                                index=idx)

    monkeypatch.setitem(sys.modules, "yfinance", types.SimpleNamespace(Ticker=Ticker))
    report = F.fetch_all(tmp_path, sources=["spx"], spx_provider="yahoo", progress=False, check=False, now=NOW)
    (res,) = report.results
    assert res.status == "fetched" and res.url == "yfinance:^GSPC" and not report.notices
    assert calls == [("^GSPC", {"period": "max", "interval": "1d", "auto_adjust": False, "actions": False,
                                "timeout": 30.0, "raise_errors": True})]
    assert lines(tmp_path / "spx_daily.csv") == ["date,open,high,low,close,volume",
                                                 "2024-01-02,4745.20,4754.33,4722.67,4742.83,3743050000",
                                                 "2024-01-03,4725.07,4729.29,4699.71,4704.81,3950760000"]
    assert json.loads((tmp_path / "spx_daily.csv.meta.json").read_text())["url"] == "yfinance:^GSPC"

    def broken(self, **kw):
        raise RuntimeError("Too Many Requests. Rate limited")

    monkeypatch.setattr(Ticker, "history", broken)
    (bad,) = F.fetch_all(tmp_path, sources=["spx"], spx_provider="yahoo", progress=False, check=False,
                         max_age_days=0, now=NOW).failed
    assert bad.error == "spx: yfinance:^GSPC failed: Too Many Requests. Rate limited."
    assert lines(tmp_path / "spx_daily.csv")[2].startswith("2024-01-03,4725.07")      # the good file is kept


def _closed_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]      # nothing listens here once the socket is closed


def test_an_unreachable_network_stops_after_three_failures_with_one_sentence(tmp_path, monkeypatch, capsys):
    monkeypatch.delenv(PS.ENV_BASE, raising=False)
    dead = f"http://127.0.0.1:{_closed_port()}"
    t0 = time.monotonic()
    report = F.fetch_all(tmp_path, sources=["vix", "vix9d", "vix3m", "vix6m", "vvix", "skew", "dtb3", "dff",
                                            VX_TEST], base_overrides={"*": dead}, progress=False, backoff=0.2,
                         workers=2, now=NOW)
    assert time.monotonic() - t0 < 60.0   # a hang guard only: the stop itself is asserted by the counts below
    assert report.stopped.startswith("stopped after 3 downloads in a row could not reach 127.0.0.1 (")
    assert "--base-url-override" in report.stopped and not report.ok
    assert len(report.failed) <= 3 + 2 and all(r.unreachable for r in report.failed)
    assert len(report.by_status("not_tried")) >= len(report.results) - 5 > 0
    assert report.check_ok is None                            # nothing to check: the run stopped

    rc = fetch_cli(["--dest", str(tmp_path / "cli"), "--base-url-override", dead, "--only", "vix,vix9d,vix3m,vix6m,skew",
                    "--timeout", "1"])
    err = capsys.readouterr().err.splitlines()
    assert rc == 1
    assert sum("could not reach" in ln for ln in err) == 1
    assert not [ln for ln in err if ln.startswith("error:")]    # no repeated connection errors


def test_progress_lines_go_to_the_log_when_stderr_is_not_a_terminal(cdn, tmp_path, capsys):
    rc = fetch_cli(["--dest", str(tmp_path), "--only", "vix,vvix,skew", "--base-url-override", cdn.url,
                    "--no-check"])
    err = capsys.readouterr().err
    assert rc == 0
    assert "alvh data fetch: 3/3 files (3 fetched)" in err.splitlines()
    fetch_cli(["--dest", str(tmp_path), "--only", "vix", "--base-url-override", cdn.url, "--no-check", "--quiet"])
    assert capsys.readouterr().err == ""


def test_every_documented_flag_reaches_fetch_all(tmp_path, monkeypatch, capsys):
    seen = {}

    def fake_fetch_all(dest, **kw):
        seen.update(kw, dest=dest)
        return F.FetchReport(dest=dest, check_ok=True)

    monkeypatch.setattr(F, "fetch_all", fake_fetch_all)
    rc = fetch_cli(["--dest", str(tmp_path), "--only", "vix,vx", "--only", "dtb3", "--max-age", "0", "--quiet",
                    "--timeout", "7.5", "--base-url-override", "fred=http://m/f", "--base-url-override",
                    "http://mirror", "--no-check", "--spx-source", "cboe"])
    assert rc == 0
    assert seen == {"dest": tmp_path, "sources": ["vix", "vx", "dtb3"], "base_overrides": {"fred": "http://m/f",
                    "*": "http://mirror"}, "max_age_days": 0.0, "progress": False, "timeout": 7.5, "check": False,
                    "spx_provider": "cboe"}
    monkeypatch.setenv("ALVH_CACHE_DIR", str(tmp_path / "c"))
    assert fetch_cli([]) == 0 and seen["dest"] == tmp_path / "c" / "data" and seen["spx_provider"] == "auto"
    assert seen["progress"] and seen["check"] and seen["timeout"] == 30.0 and seen["max_age_days"] == 1.0
    capsys.readouterr()
    assert fetch_cli(["--list"]) == 0
    listing = capsys.readouterr().out
    assert "CFE_<month letter><YY>_VX.csv" in listing and "yfinance:^GSPC  (--spx-source yahoo)" in listing
    for bad in (["--timeout", "0"], ["--max-age", "-1"], ["--only", "vix,nope"], ["--spx-source", "google"],
                ["--base-url-override", "nonsense"]):
        assert fetch_cli(bad) == 2, bad


# ----------------------------------------------------------------------------- an empty directory to a replay

E2E_TODAY = date(2025, 6, 30)
MONTH_ABBR = ["Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec"]


def _shared_rows(rel: str, until: str) -> list[dict[str, str]]:
    import csv

    with open(SHARED / rel, newline="", encoding="utf-8") as f:
        return [r for r in csv.DictReader(f) if r[next(iter(r))] <= until]


def _us_iso(iso: str) -> str:
    y, m, d = iso.split("-")
    return f"{m}/{d}/{y}"


def recorded_public_sources(until: str) -> dict[str, bytes]:
    """The public files as their vendors publish them, rebuilt from the shared copies (rows up to
    ``until``): Cboe's ``*_History.csv`` (``MM/DD/YYYY``; SPX as ``DATE,SPX`` closes), FRED's
    ``observation_date,<ID>``, the CDN's per-contract VX files with Cboe's label, and CFE's archive
    files, which are the shared raw CFE originals byte for byte."""
    out: dict[str, bytes] = {}

    def put(path: str, header: str, rows: list[str]) -> None:
        out[path] = ("\r\n".join([header, *rows]) + "\r\n").encode()

    for name, rel, cols in (("VIX", "vix_daily.csv", "open,high,low,close"), ("VIX9D", "vix9d_daily.csv", None),
                            ("VIX3M", "vix3m_daily.csv", None), ("VIX6M", "vix6m_daily.csv", None),
                            ("VVIX", "vvix_daily.csv", "vvix"), ("SKEW", "skew_daily.csv", "skew")):
        cols = (cols or "open,high,low,close").split(",")
        put(IDX + f"{name}_History.csv", "DATE," + ",".join(c.upper() for c in cols),
            [",".join([_us_iso(r["date"]), *(r[c] for c in cols)]) for r in _shared_rows(rel, until)])
    put(IDX + "SPX_History.csv", "DATE,SPX",
        [f"{_us_iso(r['date'])},{r['close']}" for r in _shared_rows("spx_daily.csv", until) if r["date"] >= "1985"])
    dtb3 = _shared_rows("rates/dtb3_daily.csv", until)
    dtb3 += [r for r in _shared_rows("rates/dtb3_daily_2000_2026.csv", until) if r["date"] > dtb3[-1]["date"]]
    put("/graph/fredgraph.csv?id=DTB3", "observation_date,DTB3", [f"{r['date']},{r['dtb3']}" for r in dtb3])
    put("/graph/fredgraph.csv?id=DFF", "observation_date,DFF",
        [f"{r['date']},{r['dff']}" for r in _shared_rows("rates/dff_daily.csv", until)])

    raw_cols = ["open", "high", "low", "close", "settle", "change", "total_volume", "efp", "open_interest"]
    for f in sorted((SHARED / "vx_futures").glob("VX_*.csv")):
        y, m = (int(x) for x in f.stem[3:].split("-"))
        code = "FGHJKMNQUVXZ"[m - 1]
        if y < 2014:
            out[f"/resources/futures/archive/volume-and-price/CFE_{code}{y % 100:02d}_VX.csv"] = (
                SHARED / f"vx_futures/raw/cfe_2004_2014/CFE_{code}{y % 100:02d}_VX.csv").read_bytes()
            continue
        rows = _shared_rows(f"vx_futures/{f.name}", until)
        if rows:
            label = f"{code} ({MONTH_ABBR[m - 1]} {y})"
            put(VXP + f"VX_{str(_VIX_EXPIRY(y, m))[:10]}.csv", "Trade Date,Futures,Open,High,Low,Close,Settle,Change,"
                "Total Volume,EFP,Open Interest", [",".join([r["trade_date"], label, *(r[c] for c in raw_cols)])
                                                   for r in rows])
    return out


@pytest.mark.skipif(not (SHARED / "vx_futures/raw/cfe_2004_2014").is_dir(), reason="needs shared/data")
def test_an_empty_directory_becomes_one_the_alvh_replay_accepts(cdn, tmp_path):
    import numpy as np
    import pandas as pd

    from adapters.data import check_data, load_panel
    from adapters.sim.backtest import run_backtest
    from config.settings import load_config

    cdn.routes.clear()
    cdn.routes.update({p: Route(b) for p, b in recorded_public_sources(E2E_TODAY.isoformat()).items()})
    dest = tmp_path / "data"
    report = F.fetch_all(dest, base_overrides={"*": cdn.url}, spx_provider="cboe", progress=False,
                         backoff=0.01, today=E2E_TODAY, now=datetime(2025, 6, 30, 22, 0, tzinfo=UTC))
    assert not report.failed and not report.stopped, [r.error for r in report.failed][:3]
    assert report.check_ok and report.ok and not report.check_errors, report.check_errors[:3]
    unlisted = {r.target for r in report.by_status("unlisted")}
    assert unlisted == {f"vx_futures/VX_{m}.csv" for m in ("2004-12", "2005-04", "2005-07", "2005-09", "2026-03")}
    assert check_data(dest).ok

    panel = load_panel(dest, cache_dir=tmp_path / "cache")
    ref = load_panel(SHARED, cache_dir=tmp_path / "cache-shared")
    window = slice("2006-01-03", E2E_TODAY.isoformat())
    got, want = panel.daily.loc[window], ref.daily.loc[window]
    for col in ("spx_close", "vix_close", "vix_open", "vix9d_close", "vix6m_close", "vvix_close", "skew_close",
                "rate_tbill", "dff"):
        pd.testing.assert_series_equal(got[col], want[col], check_freq=False, obj=col)
    # VIX3M: Cboe's history starts 2009-09-18; shared/data back-fills it from Yahoo's VXV, which is not fetched
    assert got.loc[:"2009-09-17", "vix3m_close"].isna().all()
    pd.testing.assert_series_equal(got.loc["2009-09-18":, "vix3m_close"], want.loc["2009-09-18":, "vix3m_close"],
                                   check_freq=False)
    assert got[["spx_close", "vix_close", "rate_tbill"]].notna().all().all()
    assert got["spx_open"].isna().all()                      # Cboe publishes SPX closes only
    assert got["vxx_close"].isna().all() and not len(panel.events["fomc"])   # optional, not fetched

    dates, expiries, settle = panel.vx_matrix()
    rdates, rexp, rsettle = ref.vx_matrix()
    common = np.intersect1d(expiries, rexp)
    rows = dates <= pd.Timestamp(E2E_TODAY)
    np.testing.assert_array_equal(settle[rows][:, np.searchsorted(expiries, common)],
                                  rsettle[rdates <= pd.Timestamp(E2E_TODAY)][:, np.searchsorted(rexp, common)])
    assert len(common) == len(expiries) == 258               # 2004-05 .. 2026-02, less four never-listed months

    cfg = load_config("config/alvh.toml")
    res = run_backtest(cfg, panel, start="2008-09-02", end="2008-12-31")
    assert len(res.trades) > 0 and res.equity["equity"].notna().all()
    assert {"condor", "hedge"} <= set(res.fills["book"])     # the VIX layers traded on the fetched VX curve
