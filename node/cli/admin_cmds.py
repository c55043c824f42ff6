"""Commands on a node home and offline checks: init, id, run, config, backup,
restore, keygen, genesis, verify-certificate, aggregate."""

from __future__ import annotations

import sys
from pathlib import Path

import click

from node.cli.common import (
    _home,
    _offline,
    _show,
    home_option,
    json_option,
)
from node.cli.group import cli
from node.cli.output import print_fields, print_json


@cli.command()
@home_option
@click.option("--genesis", "genesis_path", type=click.Path(exists=True, dir_okay=False,
                                                           path_type=Path),
              help="Join this network (default: a one-validator dev network of its own).")
@click.option("--listen", multiple=True, metavar="MULTIADDR",
              help="p2p listen address, e.g. /ip4/0.0.0.0/tcp/4001 (repeat; default "
                   "/ip4/127.0.0.1/tcp/4001).")
@click.option("--rpc-port", type=click.IntRange(0, 65535), default=4701, show_default=True)
@click.option("--gateway-port", type=click.IntRange(0, 65535),
              help="Public gateway port (default: the RPC port + 1).")
@click.option("--bootstrap", multiple=True, metavar="MULTIADDR",
              help="A peer to dial, /ip4/…/tcp/…/p2p/12D3KooW… (repeat).")
def init(home: Path, genesis_path: Path | None, listen: tuple[str, ...], rpc_port: int,
         gateway_port: int | None, bootstrap: tuple[str, ...]) -> None:
    """Create a node home: key, config, genesis and store."""
    peer_id = _offline("node.core.home").init_home(
        _home(home), genesis_path, rpc_port=rpc_port, bootstrap=bootstrap, listen=listen,
        gateway_port=gateway_port)
    click.echo(f"initialized {_home(home)}")
    click.echo(f"peer id: {peer_id}")


@cli.command("id")
@home_option
def id_(home: Path) -> None:
    """Print the node's peer id."""
    click.echo(_offline("node.core.home").read_peer_id(_home(home)))


@cli.command()
@home_option
def run(home: Path) -> None:
    """Run the node in the foreground until SIGINT/SIGTERM."""
    from node.core.ports import PortsInUseError

    try:
        _offline("node.daemon").run_node(_home(home))
    except PortsInUseError as exc:  # one line per listener, not a traceback
        for line in exc.lines:
            click.echo(f"Error: {line}", err=True)
        sys.exit(1)


@cli.group("config")
def config_group() -> None:
    """Show and change the node's config.toml (read at the next start)."""


@config_group.command("show")
@home_option
@json_option
def config_show(home: Path, as_json: bool) -> None:
    """Every setting, defaults included."""
    from dataclasses import asdict

    from node.core.config_file import config_as_toml

    cfg = _offline("node.core.home").NodeHome(_home(home)).load_config()
    if as_json:
        print_json(asdict(cfg))
    else:
        click.echo(config_as_toml(cfg), nl=False)


@config_group.command("get")
@home_option
@click.argument("key", metavar="SECTION.KEY")
def config_get(home: Path, key: str) -> None:
    """Print one setting, e.g. `annot config get rpc.port`."""
    from node.core.config_file import get_value, toml_value

    value = get_value(_offline("node.core.home").NodeHome(_home(home)).load_config(), key)
    click.echo(value if isinstance(value, str) else toml_value(value))


@config_group.command("set")
@home_option
@click.argument("key", metavar="SECTION.KEY")
@click.argument("values", metavar="VALUE...", nargs=-1, required=True)
def config_set(home: Path, key: str, values: tuple[str, ...]) -> None:
    """Change one setting (a list takes any number of values), checked as `annot run`
    would; the file keeps its comments."""
    from node.core.config_file import get_value, save_config, set_value, toml_value

    h = _offline("node.core.home").NodeHome(_home(home))
    cfg = set_value(h.load_config(), key, values)
    save_config(h.config_path, cfg)
    value = get_value(cfg, key)
    click.echo(f"{key} = {value if isinstance(value, str) else toml_value(value)} "
               "(takes effect at the next start)")


@cli.command("backup")
@home_option
@json_option
@click.option("-o", "--output", type=click.Path(dir_okay=False, path_type=Path), required=True,
              help="The backup file to write (a tar, mode 0600: it holds the node's key).")
def backup_cmd(home: Path, as_json: bool, output: Path) -> None:
    """Back up a node home — store, blocks, key, config, genesis — while it runs."""
    from node.cli.backup import backup_home

    _show(backup_home(_home(home), output), as_json, lambda r: click.echo(
        f"backed up {r['records']} records and {r['blocks']} blocks to {r['file']} "
        f"({r['bytes']} bytes)"))


@cli.command("restore")
@home_option
@json_option
@click.option("--force", is_flag=True, help="Replace the contents of a home that is not empty "
                                            "(never one whose node is running).")
@click.argument("backup_file", metavar="FILE", type=click.Path(exists=True, dir_okay=False,
                                                               path_type=Path))
def restore_cmd(home: Path, as_json: bool, force: bool, backup_file: Path) -> None:
    """Restore a backup made by `annot backup` into --home."""
    from node.cli.backup import restore_home

    _show(restore_home(backup_file, _home(home), force), as_json, lambda r: click.echo(
        f"restored {r['records']} records and {r['blocks']} blocks into {r['home']}"))


@cli.command()
@click.option("-o", "--output", type=click.Path(dir_okay=False, path_type=Path), required=True,
              help="Key file to create (mode 0600).")
def keygen(output: Path) -> None:
    """Make a new Ed25519 key for signing as a client; print its peer id."""
    click.echo(_offline("node.cli.offline").keygen(output))


@cli.group()
def genesis() -> None:
    """Make network genesis files."""


def _validator(text: str) -> tuple[str, int]:
    peer_id, _, weight = text.partition(":")
    if not weight:
        return peer_id, 1
    if not weight.isdigit() or int(weight) < 1:
        raise click.BadParameter(f"weight must be a positive integer, got {weight!r}")
    return peer_id, int(weight)


@genesis.command("new")
@click.option("--name", required=True, help="Network name.")
@click.option("--validator", "validators", multiple=True, required=True,
              help="PEERID[:WEIGHT] (repeat; weight 1 if omitted).")
@click.option("-o", "--output", type=click.Path(dir_okay=False, path_type=Path), required=True)
def genesis_new(name: str, validators: tuple[str, ...], output: Path) -> None:
    """Write a genesis file; print the network id."""
    parsed = [_validator(v) for v in validators]
    click.echo(_offline("node.cli.offline").genesis_new(name, parsed, output))


@cli.command("verify-certificate")
@json_option
@click.argument("cert_path", metavar="FILE", type=click.Path(exists=True, dir_okay=False,
                                                             path_type=Path))
@click.option("--genesis", "genesis_path", required=True,
              type=click.Path(exists=True, dir_okay=False, path_type=Path))
def verify_certificate(as_json: bool, cert_path: Path, genesis_path: Path) -> None:
    """Check a certificate offline against a genesis."""
    result = _offline("node.cli.offline").verify_certificate(cert_path, genesis_path)
    if as_json:
        print_json(result)
    else:
        click.echo("certificate OK")
        print_fields(result)


@cli.command()
@json_option
@click.option("--rule", required=True, type=click.Choice(["majority", "dawid-skene"]))
@click.argument("csv_path", metavar="FILE.csv", type=click.Path(exists=True, dir_okay=False,
                                                                path_type=Path))
def aggregate(as_json: bool, rule: str, csv_path: Path) -> None:
    """Aggregate labels from a CSV offline with the given rule; print item,label."""
    result = _offline("node.cli.offline").aggregate(rule, csv_path)
    if result.dropped:  # first answer wins, as on the network; said on stderr
        click.echo(result.summary(), err=True)
    if as_json:
        print_json({"labels": [{"item": i, "label": v} for i, v in result.labels],
                    "dropped": result.dropped})
        return
    lines = ["item,label", *(f"{i},{v}" for i, v in result.labels)]
    sys.stdout.write("\n".join(lines) + "\n")
