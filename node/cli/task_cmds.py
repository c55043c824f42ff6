"""``annot task ...``: create, list, show, items, status, close, extend, cancel."""

from __future__ import annotations

import base64
import datetime
from pathlib import Path
from typing import Any

import click

from node.cli.common import (
    _api,
    _home,
    _offline,
    _rpc,
    _show,
    home_option,
    json_option,
)
from node.cli.group import cli
from node.cli.output import field, print_fields, print_json, print_page, print_table


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
@click.option("--gold", "gold_csv", type=click.Path(exists=True, dir_okay=False, path_type=Path),
              help="Hidden gold: a CSV of item,answer (item CID, or path with --items-dir/"
                   "--items-csv); the task carries salted commitments, the salts stay local "
                   "for `annot task reveal`. Needs --close-time.")
@click.option("--min-gold-bps", type=click.IntRange(0, 10_000), default=0,
              help="With --gold: annotators below this gold accuracy (basis points) are "
                   "not paid.")
@click.option("--reveal-window", type=click.IntRange(0, 2**31 - 1), default=0,
              help="With --gold: seconds after the close to wait for the reveal (0 = 1 day).")
@click.option("--gold-secrets", "gold_secrets", type=click.Path(dir_okay=False, path_type=Path),
              help="With --gold: where to keep the salts and answers "
                   "(default <home>/gold/TASK.json).")
@click.option("--key", "key_path", type=click.Path(exists=True, dir_okay=False, path_type=Path),
              help="With --gold: the requester's key file, which signs the task (and later "
                   "its close and reveal).")
def task_create(home: Path, as_json: bool, title: str, labels: tuple[str, ...],
                items: tuple[str, ...], items_dir: Path | None, items_csv: Path | None,
                column: str | None, redundancy: int, reward: int,
                validator_share: int, close_time: int | None, rule: str,
                allow: tuple[str, ...], instructions: str | None, gold_csv: Path | None,
                min_gold_bps: int, reveal_window: int, gold_secrets: Path | None,
                key_path: Path | None) -> None:
    """Publish a task signed by the node's key."""
    if gold_csv is None and (min_gold_bps or reveal_window or gold_secrets or key_path):
        raise click.UsageError("--min-gold-bps, --reveal-window, --gold-secrets and --key "
                               "go with --gold")
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

    names: dict[str, str] = {}  # a directory's path -> item CID (for --gold)

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
        names = dict(tree.files)
    if close_time is not None:
        params["close_time"] = close_time
    if allow:
        params["allow"] = list(allow)
    if instructions:
        params["instructions"] = instructions
    if gold_csv is not None:
        from node.cli.gold import create_gold_task

        gold = create_gold_task(home, key_path, params, gold_csv, names, min_gold_bps,
                                reveal_window, gold_secrets)
        _show(gold, as_json, lambda r: click.echo(f"{r['task']}\n{r['gold_items']} gold "
                                                  f"items; secrets kept in {r['gold_secrets']}"))
        return
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
