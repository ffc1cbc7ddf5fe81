"""The import direction is one way: adapters and strategies depend on engine, never the reverse; strategies
never touch adapters (so the same strategy runs in replay and live); only adapters/ib imports ib_async."""
import ast
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def imports(path: Path) -> set[str]:
    tree = ast.parse(path.read_text())
    out = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            out.update(a.name.split(".")[0] for a in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            out.add(node.module.split(".")[0])
    return out


def files(pkg: str):
    return sorted((ROOT / pkg).rglob("*.py"))


def test_engine_imports_nothing_from_the_edges():
    for f in files("engine"):
        bad = imports(f) & {"adapters", "strategies", "config", "ib_async", "ib_insync"}
        assert not bad, f"{f.relative_to(ROOT)} imports {bad}"


def test_strategies_see_only_the_engine():
    for f in files("strategies"):
        bad = imports(f) & {"adapters", "ib_async", "ib_insync"}
        assert not bad, f"{f.relative_to(ROOT)} imports {bad}"


def test_only_the_ib_adapter_imports_ib_async():
    for f in ROOT.glob("*/**/*.py"):
        rel = f.relative_to(ROOT)
        if rel.parts[0] in (".venv", "tests") or rel.parts[:2] == ("adapters", "ib"):
            continue
        assert "ib_async" not in imports(f), f"{rel} imports ib_async"
