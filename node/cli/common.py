"""What every ``annot`` command shares: its options, error handling and the way to a node.

A command reaches a running node through :func:`_client` — the admin JSON-RPC
client with the home's URL and token, or the public gateway's client with
``--api URL`` / ``ANNOT_API`` — and reads typed results through :func:`_api`.
"""

from __future__ import annotations

import importlib
import os
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar

import click

from node.cli.output import print_json

if TYPE_CHECKING:
    from node.rpc.typed import NodeClient

F = TypeVar("F", bound=Callable[..., Any])


def _user_errors() -> tuple[type[BaseException], ...]:
    from node.errors import NodeError
    from node.rpc.client import ClientError
    from protocol.errors import ProtocolError

    return (ClientError, NodeError, ProtocolError, OSError, ValueError)


class _Group(click.Group):
    """Turns user errors anywhere below into one ``Error: ...`` line and exit 1."""

    def invoke(self, ctx: click.Context) -> Any:
        try:
            return super().invoke(ctx)
        except (click.ClickException, click.Abort, click.exceptions.Exit, BrokenPipeError):
            raise
        except Exception as exc:
            if os.environ.get("ANNOT_DEBUG") or not isinstance(exc, _user_errors()):
                raise
            message = " ".join(str(exc).split()) or type(exc).__name__
            raise click.ClickException(message) from None


def home_option(fn: F) -> F:
    return click.option(
        "--home",
        type=click.Path(file_okay=False, path_type=Path),
        envvar="ANNOT_HOME",
        default="~/.annot",
        show_default=True,
        help="Node home directory (env ANNOT_HOME).",
    )(fn)


def json_option(fn: F) -> F:
    return click.option("--json", "as_json", is_flag=True, help="Print JSON.")(fn)


def _home(home: Path) -> Path:
    return home.expanduser()


def _gateway_url() -> str | None:
    """``--api URL`` / ``ANNOT_API``: talk to any node's public gateway, without a token."""
    return os.environ.get("ANNOT_API") or None


def _client(home: Path) -> Any:
    """The node's admin RPC (token from the home), or the public gateway with --api."""
    if url := _gateway_url():
        from node.gateway.client import GatewayClient

        return GatewayClient(url)
    from node.rpc.client import SyncRPCClient

    return SyncRPCClient.from_home(_home(home))


def _rpc(home: Path, method: str, **params: Any) -> Any:
    return _client(home).call(method, **params)


def _api(home: Path) -> NodeClient:
    """Typed calls (results as in node.rpc.results) to the node or its gateway."""
    from node.rpc.typed import NodeClient

    return NodeClient(_client(home))


def _offline(name: str) -> Any:
    """A lead-provided module, imported only when its command runs."""
    return importlib.import_module(name)


def _show(result: Any, as_json: bool, human: Callable[[Any], None]) -> None:
    if as_json:
        print_json(result)
    else:
        human(result)
