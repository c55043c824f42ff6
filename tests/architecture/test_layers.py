"""The layout holds: import contracts bite, no import cycle in node/, small modules.

``make lint`` runs the contracts in ``.importlinter``; these tests show that a
wrong-way import really fails them (in a scratch copy of the tree), and check
what import-linter does not: that node/ has no import cycle at all (imports
under ``TYPE_CHECKING`` included) and that no module outgrew its room.
"""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import grimp
import pytest

ROOT = Path(__file__).resolve().parents[2]
LINT_IMPORTS = Path(sys.executable).with_name("lint-imports")
MAX_LINES = 500


def _scratch_tree(tmp_path: Path) -> Path:
    tree = tmp_path / "tree"
    for part in ("protocol", "node"):
        shutil.copytree(ROOT / part, tree / part,
                        ignore=shutil.ignore_patterns("__pycache__", "static"))
    shutil.copy(ROOT / ".importlinter", tree / ".importlinter")
    return tree


def _lint(tree: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run([str(LINT_IMPORTS), "--no-cache"], cwd=tree, capture_output=True,
                          text=True, timeout=120, env={"PYTHONPATH": str(tree), "PATH": ""})


def test_contracts_hold_on_the_tree(tmp_path: Path) -> None:
    result = _lint(_scratch_tree(tmp_path))
    assert result.returncode == 0, result.stdout + result.stderr
    assert "0 broken" in result.stdout


@pytest.mark.parametrize(("module", "wrong_import", "contract"), [
    ("node/consensus/service.py", "import node.p2p.sync", "consensus never imports"),
    ("protocol/records.py", "import node.errors", "protocol/ imports nothing from node/"),
    ("node/rpc/routes.py", "import node.store.db", "rpc (except its one adapter)"),
    ("node/cli/output.py", "import node.consensus.service", "the CLI reaches a running node"),
])
def test_a_wrong_way_import_breaks_its_contract(tmp_path: Path, module: str,
                                                 wrong_import: str, contract: str) -> None:
    tree = _scratch_tree(tmp_path)
    path = tree / module
    path.write_text(path.read_text() + f"\n{wrong_import}  # deliberately the wrong way\n")
    result = _lint(tree)
    assert result.returncode != 0
    broken = result.stdout.split("Broken contracts", 1)[-1]
    assert contract in broken.replace("\n", " "), result.stdout


def _cycles(graph: grimp.ImportGraph, modules: set[str]) -> list[list[str]]:
    """Strongly connected components of more than one module (Tarjan, iterative)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    out: list[list[str]] = []
    counter = 0
    for root in sorted(modules):
        if root in index:
            continue
        work = [(root, iter(sorted(graph.find_modules_directly_imported_by(root) & modules)))]
        index[root] = low[root] = counter
        counter += 1
        stack.append(root)
        on_stack.add(root)
        while work:
            v, children = work[-1]
            for w in children:
                if w not in index:
                    index[w] = low[w] = counter
                    counter += 1
                    stack.append(w)
                    on_stack.add(w)
                    work.append((w, iter(sorted(
                        graph.find_modules_directly_imported_by(w) & modules))))
                    break
                if w in on_stack:
                    low[v] = min(low[v], index[w])
            else:
                work.pop()
                if work:
                    low[work[-1][0]] = min(low[work[-1][0]], low[v])
                if low[v] == index[v]:
                    comp = []
                    while True:
                        w = stack.pop()
                        on_stack.discard(w)
                        comp.append(w)
                        if w == v:
                            break
                    if len(comp) > 1:
                        out.append(sorted(comp))
    return out


def test_node_has_no_import_cycle() -> None:
    # grimp counts imports under `if TYPE_CHECKING:` too, as the issue asks
    graph = grimp.build_graph("node", "protocol", cache_dir=None)
    modules = {m for m in graph.modules if m.split(".")[0] == "node"}
    # a package's __init__ re-exporting its own modules is not a cycle between layers
    modules = {m for m in modules if not any(
        m != p and p.startswith(m + ".") for p in modules)}
    assert _cycles(graph, modules) == []


def test_cycle_finder_sees_a_cycle() -> None:
    graph = grimp.ImportGraph()
    for m in ("a", "b", "c"):
        graph.add_module(m)
    graph.add_import(importer="a", imported="b")
    graph.add_import(importer="b", imported="c")
    graph.add_import(importer="c", imported="a")
    assert _cycles(graph, {"a", "b", "c"}) == [["a", "b", "c"]]


def test_no_module_in_node_outgrew_its_room() -> None:
    long = {str(p.relative_to(ROOT)): n for p in (ROOT / "node").rglob("*.py")
            if (n := len(p.read_text().splitlines())) > MAX_LINES}
    assert long == {}, f"split these modules (over {MAX_LINES} lines): {long}"
