"""Commands for a running node: status, peers, files, labels, items, certificates,
tallies, the ledger, evidence and export. Each goes through the node's RPC (or a
gateway with ``--api``)."""

from __future__ import annotations

import base64
import sys
import time
from pathlib import Path
from typing import Any

import click

from node.cli.common import (
    _api,
    _client,
    _gateway_url,
    _home,
    _offline,
    _rpc,
    _show,
    home_option,
    json_option,
)
from node.cli.group import cli
from node.cli.output import field, print_fields, print_json, print_page, print_table

# --- node -----------------------------------------------------------------


@cli.command()
@home_option
@json_option
def status(home: Path, as_json: bool) -> None:
    """Show the node's identity, network and counts, and sync health per peer."""
    def show(r: Any) -> None:
        print_fields(r, skip=("sync",))
        if r.get("sync"):
            click.echo("sync:")
            _print_sync(r["sync"])
    _show(_api(home).node_status(), as_json, show)


def _ago(t: float | None, now: float) -> str:
    return "never" if t is None else f"{max(0, round(now - t))}s ago"


def _print_sync(rows: list[Any]) -> None:
    """Per peer: records behind at the last good sync, its age, the last error since,
    and a ban's time left with its reason."""
    now = time.time()
    print_table(rows, [
        ("PEER ID", field("peer_id")),
        ("CONNECTED", field("connected")),
        ("BEHIND", field("records_behind")),
        ("LAST SYNC", lambda r: _ago(r["last_ok"], now)),
        ("LAST ERROR", lambda r: "" if r["last_error"] is None
         else f"{r['last_error']} ({_ago(r['last_error_at'], now)})"),
        ("BANNED", lambda r: "" if r["banned_for_s"] is None
         else f"{r['banned_for_s']:.0f}s left: {r['ban_reason'] or '?'}"),
    ])


@cli.command()
@home_option
@json_option
def peers(home: Path, as_json: bool) -> None:
    """List connected peers, and sync health per peer (bans with their reason)."""
    columns = [
        ("PEER ID", field("peer_id")),
        ("VALIDATOR", field("validator")),
        ("ADDRS", field("addrs")),
    ]
    def show(r: Any) -> None:
        print_table(r["peers"], columns)
        if r.get("sync"):  # also peers banned or gone since their last sync
            click.echo("\nsync:")
            _print_sync(r["sync"])
    _show(_api(home).node_peers(), as_json, show)


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
