"""``protocol`` is pure: importing it pulls in no I/O, concurrency, clock or randomness.

Two checks, because one alone is not enough:

* a fresh interpreter imports ``protocol`` and every ``protocol.*`` module, and
  ``sys.modules`` must then hold none of the modules protocol may never touch;
* the AST of every ``protocol/*.py`` must not import any forbidden module, not
  even lazily inside a function.

Why ``time`` and ``datetime`` are only in the AST check (evidence is asserted below,
so this cannot silently rot): ``time`` is loaded by CPython itself during start-up
(even with ``-I -S``), and ``datetime`` is imported by ``msgpack.ext`` (for its
Timestamp type) the moment ``msgpack`` is imported. Neither says anything about
protocol's own code, so for those two the AST scan is the proof.
"""

from __future__ import annotations

import ast
import json
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
PROTOCOL = ROOT / "protocol"

# never allowed anywhere in protocol, directly or through a dependency
NEVER_LOADED = ("trio", "libp2p", "sqlite3", "socket", "asyncio", "httpx", "random", "threading")
# protocol's own code must not import these (dependencies or the interpreter may)
NOT_IMPORTED = (*NEVER_LOADED, "time", "datetime", "secrets", "os", "subprocess", "select",
                "selectors", "_thread", "multiprocessing", "urllib", "http", "requests", "anyio")


def _fresh(code: str) -> dict[str, object]:
    """Run ``code`` in a new isolated interpreter with the repo on sys.path; parse its JSON."""
    prelude = f"import sys, json\nsys.path.insert(0, {str(ROOT)!r})\n"
    out = subprocess.run([sys.executable, "-I", "-c", prelude + code],
                         capture_output=True, text=True, timeout=60, check=True)
    result: dict[str, object] = json.loads(out.stdout.strip().splitlines()[-1])
    return result


def _protocol_modules() -> list[str]:
    return ["protocol", *sorted(f"protocol.{p.stem}" for p in PROTOCOL.glob("*.py")
                                if p.stem != "__init__")]


def test_protocol_modules_are_found() -> None:
    mods = _protocol_modules()
    for expected in ("protocol.encoding", "protocol.keys", "protocol.records",
                     "protocol.genesis", "protocol.cid", "protocol.errors"):
        assert expected in mods


def test_importing_protocol_loads_no_forbidden_module() -> None:
    code = (
        f"import importlib\nmods = {_protocol_modules()!r}\n"
        "for m in mods:\n    importlib.import_module(m)\n"
        f"bad = [n for n in {NEVER_LOADED!r}\n"
        "       if any(k == n or k.startswith(n + '.') for k in sys.modules)]\n"
        "print(json.dumps({'bad': bad, 'loaded': sorted(m for m in mods if m in sys.modules)}))\n"
    )
    result = _fresh(code)
    assert result["loaded"] == sorted(_protocol_modules())
    assert result["bad"] == [], f"importing protocol loaded {result['bad']}"


def test_time_and_datetime_come_from_outside_protocol() -> None:
    """Evidence for leaving time/datetime out of the sys.modules check."""
    bare = _fresh("print(json.dumps({'time': 'time' in sys.modules}))")
    assert bare["time"] is True, "CPython no longer preloads time: add it to NEVER_LOADED"
    msgpack_only = _fresh(
        "before = 'datetime' in sys.modules\nimport msgpack\n"
        "print(json.dumps({'before': before, 'after': 'datetime' in sys.modules}))")
    assert msgpack_only == {"before": False, "after": True}, (
        "msgpack no longer imports datetime: add datetime to NEVER_LOADED")
    deps = _fresh("import nacl.signing, base58, hashlib\n"
                  "print(json.dumps({'datetime': 'datetime' in sys.modules}))")
    assert deps["datetime"] is False


def _imported_names(tree: ast.AST) -> list[tuple[int, str]]:
    names: list[tuple[int, str]] = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names += [(node.lineno, a.name) for a in node.names]
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            names.append((node.lineno, node.module))
        elif isinstance(node, ast.Call):
            # __import__("x") / importlib.import_module("x") with a literal name
            fn = node.func
            fname = fn.id if isinstance(fn, ast.Name) else fn.attr if isinstance(
                fn, ast.Attribute) else ""
            if fname in ("__import__", "import_module") and node.args and isinstance(
                    node.args[0], ast.Constant) and isinstance(node.args[0].value, str):
                names.append((node.lineno, node.args[0].value))
    return names


def test_no_protocol_module_imports_a_forbidden_module() -> None:
    offences = []
    for path in sorted(PROTOCOL.glob("*.py")):
        tree = ast.parse(path.read_text(), filename=str(path))
        for line, name in _imported_names(tree):
            if name.split(".")[0] in NOT_IMPORTED:
                offences.append(f"{path.name}:{line} imports {name}")
    assert offences == []


def test_ast_scan_catches_forbidden_imports() -> None:
    """The scanner itself sees every import form, including lazy ones."""
    src = ("import time\nfrom random import choice\ndef f():\n    import trio.lowlevel\n"
           "    __import__('socket')\nimport importlib\nimportlib.import_module('sqlite3')\n")
    found = {n for _, n in _imported_names(ast.parse(src))}
    assert {"time", "random", "trio.lowlevel", "socket", "sqlite3"} <= found
