"""The ``annot`` command line: a client of the node's RPC, plus offline commands."""

from node.cli.main import main

__all__ = ["main"]
