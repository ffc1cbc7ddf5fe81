"""The analysis modules import each other in one direction: no cycles, counting imports inside functions too
(a deferred import hides a cycle from Python, not from the reader)."""
from __future__ import annotations

import ast
import graphlib
from pathlib import Path

ANALYSIS = Path(__file__).resolve().parents[3] / "analysis"


def analysis_imports(path: Path) -> set[str]:
    """Names of the analysis modules that `path` imports anywhere in its body."""
    out = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            if node.module == "analysis":
                out.update(a.name for a in node.names)
            elif node.module.startswith("analysis."):
                out.add(node.module.split(".")[1])
        elif isinstance(node, ast.Import):
            out.update(a.name.split(".")[1] for a in node.names if a.name.startswith("analysis."))
    return out


def test_no_import_cycles_between_analysis_modules():
    graph = {p.stem: analysis_imports(p) for p in ANALYSIS.glob("*.py") if p.stem != "__init__"}
    assert graph["verdict"] >= {"episodes", "runs", "tasks"} and graph["sweep"] >= {"episodes", "runs", "tasks"}
    graphlib.TopologicalSorter(graph).prepare()   # raises CycleError naming the cycle


def test_a_cycle_is_caught(tmp_path):
    (tmp_path / "a.py").write_text("def f():\n    from analysis.b import g\n")
    (tmp_path / "b.py").write_text("from analysis import a\n")
    graph = {p.stem: analysis_imports(p) for p in tmp_path.glob("*.py")}
    try:
        graphlib.TopologicalSorter(graph).prepare()
    except graphlib.CycleError:
        return
    raise AssertionError(f"cycle not found in {graph}")
