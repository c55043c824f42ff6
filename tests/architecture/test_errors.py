"""Every error class of node/ is in the NodeError tree (or a request-level tree:
ProtocolError, RPCError, GatewayError), and the tree drawn in node/errors.py's
docstring names every NodeError."""

from __future__ import annotations

import importlib
import pkgutil

import node
from node.errors import NodeError
from protocol.errors import ProtocolError

REQUEST_TREES = ("RPCError", "GatewayError")  # request-level trees, documented apart


def _all_error_classes() -> set[type[BaseException]]:
    for mod in pkgutil.walk_packages(node.__path__, "node."):
        if not mod.name.endswith("__main__"):
            importlib.import_module(mod.name)
    found: set[type[BaseException]] = set()
    todo: list[type[BaseException]] = [Exception]
    while todo:
        cls = todo.pop()
        for sub in cls.__subclasses__():
            if sub not in found:
                found.add(sub)
                todo.append(sub)
    return {c for c in found if c.__module__.startswith("node.")}


def test_every_node_error_derives_from_node_error_or_a_request_tree() -> None:
    roots = tuple(c for c in _all_error_classes() if c.__name__ in REQUEST_TREES)
    strays = sorted(f"{c.__module__}.{c.__name__}" for c in _all_error_classes()
                    if not issubclass(c, (NodeError, ProtocolError, *roots)))
    assert strays == []


def test_the_drawn_tree_names_every_node_error() -> None:
    drawn = node.errors.__doc__ or ""
    missing = sorted(c.__name__ for c in _all_error_classes()
                     if issubclass(c, NodeError) and f" {c.__name__} " not in
                     drawn.replace("\n", " \n "))
    assert missing == [], f"add these to the tree in node/errors.py: {missing}"
