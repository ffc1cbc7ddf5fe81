"""Packaging: the licence file matches pyproject, the default install is lean (what a replay needs), every
dependency is pinned in constraints.txt (the versions behind the published figures), and .ci/run installs with
those pins and runs the README's test command word for word."""
from __future__ import annotations

import re
import subprocess
import sys
import tomllib
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
PROJECT = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]


def name(req: str) -> str:
    return re.split(r"[\[<>=!~; ]", req, maxsplit=1)[0].lower().replace("_", "-")


def test_license_file_matches_pyproject():
    assert PROJECT["license"] == "Apache-2.0" and PROJECT["license-files"] == ["LICENSE"]
    text = (ROOT / "LICENSE").read_text()
    assert "Apache License" in text and "Version 2.0, January 2004" in text and "END OF TERMS AND CONDITIONS" in text


def test_the_default_install_has_no_development_or_optional_packages():
    core = {name(r) for r in PROJECT["dependencies"]}
    assert not core & {"pytest", "hypothesis", "ruff", "ib-async", "dask", "apscheduler", "yfinance",
                       "pydantic-settings"}
    extras = PROJECT["optional-dependencies"]
    assert {name(r) for r in extras["ib"]} == {"ib-async", "apscheduler"}
    assert "alvh[ib,sweep]" in extras["dev"]


def test_constraints_pin_every_dependency():
    pins = {}
    for line in (ROOT / "constraints.txt").read_text().splitlines():
        if line.strip() and not line.startswith("#"):
            pkg, _, version = line.partition("==")
            assert version, f"constraints.txt: {line!r} is not pinned with =="
            pins[name(pkg)] = version
    wanted = {name(r) for r in PROJECT["dependencies"]}
    for extra in ("ib", "sweep", "dev"):
        wanted |= {name(r) for r in PROJECT["optional-dependencies"][extra] if not r.startswith("alvh")}
    assert wanted - {"dask"} <= set(pins) and "distributed" in pins     # dask[distributed] -> dask, distributed


def test_ci_installs_the_pins_and_runs_the_readme_commands():
    readme = (ROOT / "README.md").read_text()
    ci = (ROOT / ".ci" / "run").read_text()
    blocks = re.findall(r"```bash\n(.*?)\n```", readme, re.DOTALL)
    install, test = blocks[0], blocks[1]
    assert "pip install -c constraints.txt -e ." in install and "alvh replay --config config/condor.toml" in install
    assert test in ci.splitlines()                                   # word for word
    assert "pip install -q -c constraints.txt -e '.[dev]'" in ci


def test_the_replay_path_imports_no_optional_package():
    """What the lean install runs (the CLI, replay, verdict, signal) must import without the extras."""
    code = ("import sys\n"
            "for m in ('ib_async', 'apscheduler', 'distributed', 'dask', 'pytest', 'hypothesis', 'yfinance'):\n"
            "    sys.modules[m] = None\n"
            "from adapters.cli.main import build_parser\n"
            "build_parser()\n"
            "import adapters.sim.backtest, analysis.verdict, analysis.verdict_report, analysis.signal, analysis.sweep\n")
    r = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, timeout=120,
                       check=False)
    assert r.returncode == 0, r.stderr
