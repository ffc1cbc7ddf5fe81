"""The house rules, checked on the code's own imports (every import, including those inside functions and under
TYPE_CHECKING, since each one is a dependency a reader has to follow):

- engine/ imports nothing of this project outside engine/ (and no broker library);
- strategies/ never import adapters/ or analysis/ (the same strategy objects run in replay and live);
- adapters/ib never imports adapters/live (the IB adapter talks to IB; the daemon's store is reached through an
  engine port);
- only adapters/ib imports ib_async;
- no import cycle between modules.
"""
from __future__ import annotations

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
PACKAGES = ("engine", "adapters", "strategies", "config", "analysis")


def module_name(path: Path, root: Path = ROOT) -> str:
    rel = path.relative_to(root).with_suffix("")
    parts = rel.parts[:-1] if rel.name == "__init__" else rel.parts
    return ".".join(parts)


def imported_modules(path: Path, known: set[str], root: Path = ROOT) -> set[str]:
    """The project modules a file imports; relative imports are resolved against the file's package."""
    me = module_name(path, root)
    package = me if path.name == "__init__.py" else me.rpartition(".")[0]
    out: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            names = [a.name for a in node.names]
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")
                base = base[: len(base) - (node.level - 1)]
                mod = ".".join(base + ([node.module] if node.module else []))
            else:
                mod = node.module or ""
            # `from pkg import sub` depends on pkg.sub when that is a module, else on pkg itself
            names = [f"{mod}.{a.name}" if f"{mod}.{a.name}" in known else mod for a in node.names]
        else:
            continue
        for n in names:
            while n and n not in known:
                n = n.rpartition(".")[0]
            if n and n != me:
                out.add(n)
    return out


def external_roots(path: Path) -> set[str]:
    out = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            out.update(a.name.split(".")[0] for a in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            out.add(node.module.split(".")[0])
    return out


def project_files(root: Path = ROOT) -> dict[str, Path]:
    return {module_name(f, root): f for pkg in PACKAGES for f in sorted((root / pkg).rglob("*.py"))}


def import_graph(root: Path = ROOT) -> dict[str, set[str]]:
    files = project_files(root)
    known = set(files)
    return {m: imported_modules(f, known, root) for m, f in files.items()}


def cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """Strongly connected components with more than one module (Tarjan), each sorted."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on: set[str] = set()
    out: list[list[str]] = []
    counter = [0]

    def visit(v: str) -> None:
        index[v] = low[v] = counter[0]
        counter[0] += 1
        stack.append(v)
        on.add(v)
        for w in graph.get(v, ()):
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            comp = []
            while True:
                w = stack.pop()
                on.discard(w)
                comp.append(w)
                if w == v:
                    break
            if len(comp) > 1:
                out.append(sorted(comp))

    for v in sorted(graph):
        if v not in index:
            visit(v)
    return out


def violations(root: Path = ROOT) -> list[str]:
    graph = import_graph(root)
    bad = []
    for mod, deps in sorted(graph.items()):
        top = mod.split(".")[0]
        for dep in sorted(deps):
            dtop = dep.split(".")[0]
            if top == "engine" and dtop != "engine":
                bad.append(f"{mod} (engine) imports {dep}")
            if top == "strategies" and dtop in ("adapters", "analysis"):
                bad.append(f"{mod} (a strategy) imports {dep}")
            if mod.startswith("adapters.ib") and dep.startswith("adapters.live"):
                bad.append(f"{mod} (the IB adapter) imports {dep} (the daemon)")
    for f in project_files(root).values():
        mod = module_name(f, root)
        ext = external_roots(f)
        if mod.startswith("engine") and ext & {"ib_async", "ib_insync"}:
            bad.append(f"{mod} (engine) imports a broker library")
        if "ib_async" in ext and not mod.startswith("adapters.ib"):
            bad.append(f"{mod} imports ib_async (only adapters/ib may)")
    bad += [f"import cycle: {' <-> '.join(c)}" for c in cycles(graph)]
    return bad


def test_the_house_rules_hold():
    assert violations() == []


@pytest.mark.parametrize("planted, expected", [
    ("engine/_planted.py", "engine._planted (engine) imports config.wiring"),
    ("strategies/_planted.py", "strategies._planted (a strategy) imports adapters.sim.backtest"),
    ("adapters/ib/_planted.py", "adapters.ib._planted (the IB adapter) imports adapters.live.state (the daemon)"),
    ("analysis/_planted.py", "import cycle: analysis._planted <-> analysis._planted_twin"),
])
def test_each_rule_catches_a_planted_violation(tmp_path, planted, expected):
    """Copy the tree, add one violating module, and the same check must name it."""
    import shutil

    for pkg in PACKAGES:
        shutil.copytree(ROOT / pkg, tmp_path / pkg, ignore=shutil.ignore_patterns("__pycache__"))
    target = tmp_path / planted
    body = {
        "engine/_planted.py": "from config.wiring import build_kernel\n",
        "strategies/_planted.py": "def f():\n    from adapters.sim.backtest import run_backtest\n",
        "adapters/ib/_planted.py": "from adapters.live.state import StateStore\n",
        "analysis/_planted.py": "from analysis import _planted_twin\n",
    }[planted]
    target.write_text(body)
    if planted.startswith("analysis"):
        (tmp_path / "analysis" / "_planted_twin.py").write_text("import analysis._planted\n")
    assert expected in violations(tmp_path)
