"""The ``annot`` command line.

Commands that talk to a running node go through the JSON-RPC client only
(:mod:`node.rpc.client`), reading the URL and token from ``<home>/rpc.url`` and
``<home>/rpc.token``. Offline commands (``init``, ``id``, ``run``, ``keygen``,
``genesis new``, ``verify-certificate``, ``aggregate``) import their module
lazily, so ``annot --help`` stays fast. User errors print one line to stderr
and exit 1; set ``ANNOT_DEBUG=1`` for a traceback.
"""

from __future__ import annotations

import base64
import datetime
import os
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Any

import click

from node.cli.output import field, print_fields, print_json, print_page, print_table

if TYPE_CHECKING:
    pass

from node.cli.common import (
    _api,
    _client,
    _gateway_url,
    _Group,
    _home,
    _offline,
    _rpc,
    _show,
    home_option,
    json_option,
)


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


# --- node -----------------------------------------------------------------


@cli.command()
@home_option
@json_option
def status(home: Path, as_json: bool) -> None:
    """Show the node's identity, network and counts."""
    _show(_api(home).node_status(), as_json, print_fields)


@cli.command()
@home_option
@json_option
def peers(home: Path, as_json: bool) -> None:
    """List connected peers."""
    columns = [
        ("PEER ID", field("peer_id")),
        ("VALIDATOR", field("validator")),
        ("ADDRS", field("addrs")),
    ]
    _show(_api(home).node_peers(), as_json, lambda r: print_table(r["peers"], columns))


# --- blocks and files ------------------------------------------------------


@cli.command()
@home_option
@json_option
@click.option("-r", "--recursive", is_flag=True,
              help="Add folders, recursively, as UnixFS directories (as `ipfs add -r`).")
@click.argument("files", nargs=-1, required=True, type=click.Path(exists=True,
                                                                   path_type=Path))
def add(home: Path, as_json: bool, recursive: bool, files: tuple[Path, ...]) -> None:
    """Add files (and with -r, folders) to the node as UnixFS blocks: the CIDs Kubo
    gives with raw leaves and CIDv1."""
    from node.cli.files import add_files, add_tree

    folders = [f for f in files if f.is_dir()]
    if folders and not recursive:
        raise click.UsageError(f"{folders[0]} is a folder: add it with -r")
    rows: list[dict[str, Any]] = []
    for folder in folders:
        tree = add_tree(_home(home), folder, progress=not as_json)
        rows.append({"folder": str(folder), "cid": tree.root, "items": tree.items,
                     "files": [{"path": p, "cid": c} for p, c in tree.files]})
        for path, cid in [] if as_json else tree.files:
            click.echo(f"added {cid} {folder.name}/{path}")
        if not as_json:
            click.echo(f"added {tree.root} {folder.name}")
    added = add_files(_home(home), [f for f in files if not f.is_dir()])
    files_rows = [{"file": str(f), "cid": c, "size": f.stat().st_size} for f, c in added]
    if as_json:
        print_json(rows + files_rows)
    rows = files_rows
    for row in [] if as_json else rows:
        click.echo(f"added {row['cid']} {row['file']}")


@cli.command()
@home_option
@click.option("--raw", is_flag=True, help="Print the block's bytes, not the UnixFS file.")
@click.argument("cid")
def cat(home: Path, raw: bool, cid: str) -> None:
    """Print the file (or, with --raw, the block) at CID."""
    from node.cli.files import cat_file

    out = sys.stdout.buffer
    if (url := _gateway_url()) and not raw:
        from node.gateway.client import GatewayClient

        out.write(GatewayClient(url).content(cid))
    elif raw:
        out.write(base64.b64decode(_api(home).block_get(cid)["data"]))
    else:
        cat_file(_home(home), cid, out)
    out.flush()


# --- tasks and labels ------------------------------------------------------


class _UnixTime(click.ParamType[int, Any]):
    name = "TIME"

    def convert(self, value: Any, param: click.Parameter | None, ctx: click.Context | None) -> int:
        if isinstance(value, int):
            return value
        try:
            return int(value)
        except ValueError:
            pass
        try:
            when = datetime.datetime.fromisoformat(value)
        except ValueError:
            self.fail(f"expected unix seconds or an ISO 8601 time, got {value!r}", param, ctx)
        if when.tzinfo is None:
            when = when.replace(tzinfo=datetime.UTC)
        return int(when.timestamp())


@cli.group()
def task() -> None:
    """Create and inspect labeling tasks."""


@task.command("create")
@home_option
@json_option
@click.option("--title", required=True, help="What annotators see.")
@click.option("--label", "labels", multiple=True, required=True, help="A class (repeat).")
@click.option("--item", "items", multiple=True, help="An item CID (repeat).")
@click.option("--items-dir", type=click.Path(exists=True, file_okay=False, path_type=Path),
              help="Add DIR recursively as a UnixFS directory: each file is an item, "
                   "named by its path.")
@click.option("--items-csv", type=click.Path(exists=True, dir_okay=False, path_type=Path),
              help="Each row of this CSV becomes an item (a small file named by row "
                   "number): the --column text, or the whole row as JSON.")
@click.option("--column", help="With --items-csv: the column whose text is the item.")
@click.option("--redundancy", type=click.IntRange(1), default=3, show_default=True,
              help="Annotations wanted per item.")
@click.option("--reward", type=click.IntRange(0), default=0, show_default=True,
              help="Reward per item, in integer units.")
@click.option("--validator-share", type=click.IntRange(0, 10_000), default=1000,
              show_default=True, help="Validators' share of each reward, in basis points.")
@click.option("--close-time", type=_UnixTime(), help="Unix seconds or ISO 8601 (UTC if no zone).")
@click.option("--rule", type=click.Choice(["majority", "dawid-skene"]), default="majority",
              show_default=True, help="Aggregation rule.")
@click.option("--allow", multiple=True, help="Only these annotator peer ids (repeat).")
@click.option("--instructions", help="CID of the instructions document.")
def task_create(home: Path, as_json: bool, title: str, labels: tuple[str, ...],
                items: tuple[str, ...], items_dir: Path | None, items_csv: Path | None,
                column: str | None, redundancy: int, reward: int,
                validator_share: int, close_time: int | None, rule: str,
                allow: tuple[str, ...], instructions: str | None) -> None:
    """Publish a task signed by the node's key."""
    if sum((bool(items), items_dir is not None, items_csv is not None)) != 1:
        raise click.UsageError("give one of --item CID (repeatable), --items-dir DIR or "
                               "--items-csv FILE")
    if column is not None and items_csv is None:
        raise click.UsageError("--column goes with --items-csv")
    params: dict[str, Any] = {
        "title": title, "labels": list(labels), "items": list(items),
        "redundancy": redundancy, "reward_per_item": reward,
        "validator_share_bps": validator_share, "rule": rule,
    }
    from node.cli.task_limits import count_files, precheck_task

    # the genesis limits first: nothing is uploaded or signed for a task the network refuses
    precheck_task(_home(home), {**params, "close_time": close_time, "allow": allow,
                                "instructions": instructions},
                  count_files(items_dir) if items_dir else 1 if items_csv else None)
    if items_dir is not None or items_csv is not None:
        from node.cli.files import add_csv, add_tree
        from node.cli.tree import TreeError

        try:
            tree = (add_tree(_home(home), items_dir, progress=not as_json) if items_dir
                    else add_csv(_home(home), items_csv, column, progress=not as_json)
                    if items_csv else None)
        except TreeError as exc:
            raise click.UsageError(str(exc)) from None
        assert tree is not None
        params.update(items=[], items_dir=tree.root, item_count=tree.items)
    if close_time is not None:
        params["close_time"] = close_time
    if allow:
        params["allow"] = list(allow)
    if instructions:
        params["instructions"] = instructions
    result = _api(home).task_create(**params)
    _show(result, as_json, lambda r: click.echo(r["task"]))


def _task_status(row: dict[str, Any]) -> str | None:
    """The node's ``status`` if it gives one, else complete/open from the item counts."""
    if row.get("status") is not None:
        return str(row["status"])
    total, final = row.get("item_count"), row.get("items_final")
    if not isinstance(total, int) or not isinstance(final, int):
        return None
    return "complete" if final >= total else "open"


@task.command("list")
@home_option
@json_option
@click.option("--cursor", help="Continue from a previous page.")
@click.option("--limit", type=click.IntRange(1, 1000), default=100, show_default=True)
def task_list(home: Path, as_json: bool, cursor: str | None, limit: int) -> None:
    """List tasks."""
    result = _api(home).task_list(cursor, limit)
    columns = [
        ("TASK", field("task")),
        ("TITLE", field("title")),
        ("ITEMS", field("item_count")),
        ("FINAL", field("items_final")),
        ("STATUS", _task_status),
    ]
    _show(result, as_json, lambda r: print_page(r, "tasks", columns, "annot task list"))


@task.command("show")
@home_option
@json_option
@click.argument("task_cid", metavar="TASK")
def task_show(home: Path, as_json: bool, task_cid: str) -> None:
    """Show one task, and its first items with their paths."""
    result = _rpc(home, "task.get", task=task_cid)
    page = _rpc(home, "task.items", task=task_cid, limit=20)

    def human(r: dict[str, Any]) -> None:
        print_fields(r, skip=("items",))
        click.echo("")
        print_table(page["items"], [("PATH", field("path")), ("ITEM", field("item"))])
        more = int(r.get("item_count") or 0) - len(page["items"])
        if more > 0:
            click.echo(f"(and {more:,} more: annot task items {task_cid})")

    _show(result, as_json, human)


@task.command("items")
@home_option
@json_option
@click.option("--cursor", help="Continue from a previous page.")
@click.option("--limit", type=click.IntRange(1, 1000), default=100, show_default=True)
@click.argument("task_cid", metavar="TASK")
def task_items(home: Path, as_json: bool, cursor: str | None, limit: int,
               task_cid: str) -> None:
    """List a task's items with their paths (a folder task's names, in path order)."""
    result = _api(home).task_items(task_cid, cursor, limit)
    columns = [("PATH", field("path")), ("ITEM", field("item"))]
    _show(result, as_json, lambda r: print_page(r, "items", columns,
                                                f"annot task items {task_cid}"))


@task.command("status")
@home_option
@json_option
@click.option("--watch", is_flag=True, help="Follow it live until every item is final or "
                                           "expired (Ctrl-C stops).")
@click.option("--interval", type=click.FloatRange(0.2), default=2.0, show_default=True,
              help="Seconds between reads with --watch.")
@click.argument("task_cid", metavar="TASK")
def task_status(home: Path, as_json: bool, watch: bool, interval: float, task_cid: str) -> None:
    """Final / pending / short / expired counts of a task, and its stuck items."""
    import time

    from node.cli.task_status import format_status, read_status
    from node.rpc.client import SyncRPCClient

    client = SyncRPCClient.from_home(_home(home))
    while True:
        st = read_status(client.call, task_cid)
        if as_json:
            print_json(st.as_json())
        else:
            click.echo("\n".join(format_status(st)) + ("\n" if watch else ""))
        if not watch or st.done:
            return
        time.sleep(interval)


def _task_update(home: Path, as_json: bool, key_path: Path | None, task_cid: str, action: str,
                 close_time: int = 0) -> None:
    from node.rpc.client import SyncRPCClient

    client = SyncRPCClient.from_home(_home(home))
    if key_path is None:
        from node.rpc.client import RPCClientError

        try:
            result = client.call("task.update", task=task_cid, action=action,
                                 close_time=close_time or None)
        except RPCClientError as exc:
            if exc.code != -32601:  # method not found: a node without task.update
                raise
            raise click.ClickException(
                f"this node cannot sign task updates itself; sign with the requester's "
                f"key: annot task {action} {task_cid} --key FILE") from None
    else:
        author = _offline("node.core.home").load_key(key_path).peer_id
        network_id = client.call("node.status")["network_id"]
        seq = client.call("account.get", author=author)["next_seq"]
        record = _offline("node.cli.task_status").sign_task_update(
            key_path, network_id, seq, task_cid, action, close_time)
        result = client.call("record.submit", record=base64.b64encode(record).decode())
    _show(result, as_json, lambda r: click.echo(f"{action} {task_cid}: {r.get('cid')}"))


_KEY_OPTION = click.option(
    "--key", "key_path", type=click.Path(exists=True, dir_okay=False, path_type=Path),
    help="Sign with this key file (the task's requester) instead of the node's key.")


@task.command("close")
@home_option
@json_option
@_KEY_OPTION
@click.argument("task_cid", metavar="TASK")
def task_close(home: Path, as_json: bool, key_path: Path | None, task_cid: str) -> None:
    """Close a task now: items short of labels expire, the tally follows."""
    _task_update(home, as_json, key_path, task_cid, "close")


@task.command("extend")
@home_option
@json_option
@_KEY_OPTION
@click.option("--close-time", type=_UnixTime(), required=True,
              help="The new close time: unix seconds or ISO 8601 (UTC if no zone).")
@click.argument("task_cid", metavar="TASK")
def task_extend(home: Path, as_json: bool, key_path: Path | None, close_time: int,
                task_cid: str) -> None:
    """Move a task's close time later."""
    _task_update(home, as_json, key_path, task_cid, "extend", close_time)


@task.command("cancel")
@home_option
@json_option
@_KEY_OPTION
@click.argument("task_cid", metavar="TASK")
def task_cancel(home: Path, as_json: bool, key_path: Path | None, task_cid: str) -> None:
    """Cancel a task: every item not final expires and is refunded."""
    _task_update(home, as_json, key_path, task_cid, "cancel")


@cli.command()
@home_option
@json_option
@click.option("--key", "key_path", type=click.Path(exists=True, dir_okay=False, path_type=Path),
              help="Sign with this key file instead of the node's key.")
@click.argument("task_cid", metavar="TASK")
@click.argument("item")
@click.argument("label")
def label(home: Path, as_json: bool, key_path: Path | None, task_cid: str, item: str,
          label: str) -> None:
    """Label ITEM of TASK, signed by the node (or by --key, like a wallet)."""
    if key_path is None:
        result = _rpc(home, "annotation.create", task=task_cid, item=item, label=label)
    else:
        client = _client(home)
        offline = _offline("node.cli.offline")
        author = _offline("node.core.home").load_key(key_path).peer_id
        network_id = client.call("node.status")["network_id"]
        # the seq comes from the counter beside the key (locked, fsynced), never
        # from whichever node answers: two labels at once never share a seq
        floor = client.call("account.get", author=author)["next_seq"]
        seq = offline.reserve_key_seq(key_path, floor)
        record = offline.sign_annotation(key_path, network_id, seq, task_cid, item, label)
        result = client.call("record.submit", record=base64.b64encode(record).decode())
        counted, line = offline.label_outcome(
            result, client.call("item.get", task=task_cid, item=item), author, label)
        result = {**result, "counted": counted, "outcome": line}
        if not counted:
            _show(result, as_json, lambda r: None)
            raise click.ClickException(line)
        _show(result, as_json, lambda r: click.echo(f"{r.get('cid')}: {line}"))
        return
    _show(result, as_json, lambda r: click.echo(r.get("cid")))


@cli.group()
def item() -> None:
    """Inspect items and their consensus state."""


@item.command("show")
@home_option
@json_option
@click.argument("task_cid", metavar="TASK")
@click.argument("item_cid", metavar="ITEM")
def item_show(home: Path, as_json: bool, task_cid: str, item_cid: str) -> None:
    """Show an item's annotations, round and final value."""
    result = _rpc(home, "item.get", task=task_cid, item=item_cid)

    def human(r: dict[str, Any]) -> None:
        print_fields(r, skip=("annotations",))
        click.echo("")
        columns = [("AUTHOR", field("author")), ("LABEL", field("label")), ("SEQ", field("seq"))]
        print_table(r.get("annotations") or [], columns)

    _show(result, as_json, human)


@cli.command()
@home_option
@json_option
@click.option("-o", "--output", type=click.Path(dir_okay=False, path_type=Path),
              help="Write the certificate's canonical bytes to FILE.")
@click.argument("task_cid", metavar="TASK")
@click.argument("item_cid", metavar="ITEM")
def certificate(home: Path, as_json: bool, output: Path | None, task_cid: str,
                item_cid: str) -> None:
    """Show (or save) the finality certificate of an item."""
    result = _rpc(home, "certificate.get", task=task_cid, item=item_cid)
    if output is not None:
        output.write_bytes(base64.b64decode(result["certificate"]))
    _show(result, as_json, lambda r: print_fields(r, skip=("certificate",)))
    if output is not None and not as_json:
        click.echo(f"wrote {output}")


@cli.command()
@home_option
@json_option
@click.argument("task_cid", metavar="TASK")
def tally(home: Path, as_json: bool, task_cid: str) -> None:
    """Show a task's reward tally."""
    _show(_rpc(home, "tally.get", task=task_cid), as_json, print_fields)


@cli.command()
@home_option
@json_option
def ledger(home: Path, as_json: bool) -> None:
    """Show balances and reputation from final tallies."""
    columns = [
        ("AUTHOR", field("author")),
        ("BALANCE", field("balance")),
        ("AGREED", field("agreed")),
        ("DISAGREED", field("disagreed")),
        ("REPUTATION", field("reputation")),
    ]
    _show(_rpc(home, "ledger.get"), as_json, lambda r: print_table(r.get("accounts", []), columns))


@cli.command()
@home_option
@json_option
@click.option("--cursor", help="Continue from a previous page.")
@click.option("--limit", type=click.IntRange(1, 1000), default=100, show_default=True)
def evidence(home: Path, as_json: bool, cursor: str | None, limit: int) -> None:
    """List evidence of misbehaviour (forks, conflicting votes)."""
    result = _rpc(home, "evidence.list", cursor=cursor, limit=limit)
    columns = [("ID", field("id", "cid")), ("KIND", field("kind")), ("AUTHOR", field("author")),
               ("SEQ", field("seq"))]
    _show(result, as_json, lambda r: print_page(r, "evidence", columns, "annot evidence"))


# --- offline: no node needed ------------------------------------------------


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
    if as_json:
        print_json([{"item": i, "label": v} for i, v in result])
        return
    lines = ["item,label", *(f"{i},{v}" for i, v in result)]
    sys.stdout.write("\n".join(lines) + "\n")


@cli.command("export")
@home_option
@json_option
@click.argument("task_cid", metavar="TASK")
@click.option("-o", "--output", "out", required=True,
              type=click.Path(file_okay=False, path_type=Path),
              help="Folder for labels.jsonl, labels.csv, answers.csv, the task record, "
                   "certificates and their vote records.")
@click.option("--car", type=click.Path(dir_okay=False, path_type=Path),
              help="Also write all of it, with every item, as one CARv1 file "
                   "(`ipfs dag import` takes it).")
def export(home: Path, as_json: bool, task_cid: str, out: Path, car: Path | None) -> None:
    """Export a task's final labels, annotations and certificates."""
    from node.cli.export import export_task

    def say(message: str) -> None:
        if not as_json:
            click.echo(message, err=True)

    _show(export_task(_home(home), task_cid, out, car, say), as_json, print_fields)


@cli.command("verify-export")
@json_option
@click.argument("folder", metavar="DIR", type=click.Path(exists=True, file_okay=False,
                                                          path_type=Path))
@click.option("--genesis", "genesis_path", required=True,
              type=click.Path(exists=True, dir_okay=False, path_type=Path))
def verify_export(as_json: bool, folder: Path, genesis_path: Path) -> None:
    """Check an export offline: every certificate, every item, every label."""
    from node.cli.verify_export import verify_export as check

    result = check(folder, _offline("node.cli.offline").load_genesis(genesis_path))
    if not as_json:
        click.echo("export OK")
    _show(result, as_json, print_fields)


from node.cli.payout import payout_group  # noqa: E402  (bind, export: issue 16)

cli.add_command(payout_group)


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
