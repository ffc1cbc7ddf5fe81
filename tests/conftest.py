import os
from pathlib import Path

import pytest

DATA_DIR = Path(os.environ.get("ALVH_DATA_DIR", Path(__file__).resolve().parents[1].parent / "shared" / "data"))


@pytest.fixture(scope="session")
def data_dir() -> Path:
    if not (DATA_DIR / "spx_daily.csv").exists():
        pytest.skip(f"no market data at {DATA_DIR} (set ALVH_DATA_DIR)")
    return DATA_DIR


@pytest.fixture(scope="session")
def panel(data_dir, tmp_path_factory):
    from adapters.data.panel import load_panel

    return load_panel(data_dir, cache_dir=tmp_path_factory.mktemp("panel-cache"))
