"""The root ``annot`` command group: global options (``--home``, ``--api``).

The commands live in :mod:`node.cli.node_cmds` (a running node), :mod:`node.cli.task_cmds`
(tasks), :mod:`node.cli.admin_cmds` (a node home, keys, offline checks) and
:mod:`node.cli.payout`; :mod:`node.cli.main` registers them all.
"""

from __future__ import annotations

import os

import click

from node.cli.common import _Group


@click.group(cls=_Group, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(package_name="annot", prog_name="annot")
@click.option("--home", "group_home", type=click.Path(file_okay=False), default=None,
              help="Node home for every command (same as ANNOT_HOME; a command's own "
                   "--home wins).")
@click.option("--api", "api_url", envvar="ANNOT_API", default=None, metavar="URL",
              help="A node's public gateway (http://host:port; env ANNOT_API): read "
                   "commands and `label --key` go there, without the admin token.")
def cli(group_home: str | None, api_url: str | None) -> None:
    """annot — a peer-to-peer data-labeling node.

    Start a node with `annot init` and `annot run`; the other commands talk
    to it over its JSON-RPC API.
    """
    if group_home is not None:
        # subcommands read --home's default from ANNOT_HOME when they are parsed
        os.environ["ANNOT_HOME"] = group_home
    if api_url:
        os.environ["ANNOT_API"] = api_url
