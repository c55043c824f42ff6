"""The ``annot`` command line.

Commands that talk to a running node go through the JSON-RPC client only
(:mod:`node.rpc.client`), reading the URL and token from ``<home>/rpc.url`` and
``<home>/rpc.token``. Offline commands (``init``, ``id``, ``run``, ``keygen``,
``genesis new``, ``verify-certificate``, ``aggregate``) import their module
lazily, so ``annot --help`` stays fast. User errors print one line to stderr
and exit 1; set ``ANNOT_DEBUG=1`` for a traceback.
"""

from __future__ import annotations

import os
import sys

# importing the command modules registers their commands on the root group
from node.cli import admin_cmds, gold_cmds, node_cmds, task_cmds
from node.cli.group import cli
from node.cli.payout import payout_group

cli.add_command(payout_group)
__all__ = ["admin_cmds", "cli", "gold_cmds", "main", "node_cmds", "task_cmds"]


def main() -> None:
    """Console-script entry point."""
    try:
        cli(prog_name="annot")
    except BrokenPipeError:
        # the reader went away (e.g. `| head`): not an error worth a message
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        sys.exit(0)


if __name__ == "__main__":
    main()
