"""``annot task reveal TASK``: open a closed task's hidden gold (the helpers, and what
``annot task create --gold`` does, are in :mod:`node.cli.gold`)."""

from __future__ import annotations

from pathlib import Path

import click

from node.cli.common import _show, home_option, json_option
from node.cli.gold import load_secrets, secrets_path, sign_and_submit
from node.cli.task_cmds import task


@task.command("reveal")
@home_option
@json_option
@click.option("--gold-secrets", "secrets_file",
              type=click.Path(exists=True, dir_okay=False, path_type=Path),
              help="The salts and answers `task create --gold` kept "
                   "(default <home>/gold/TASK.json).")
@click.option("--key", "key_path", type=click.Path(exists=True, dir_okay=False, path_type=Path),
              help="Sign with this key file (the task's requester; default: the key "
                   "`task create --gold --key` used, as the secrets file says).")
@click.argument("task_cid", metavar="TASK")
def task_reveal(home: Path, as_json: bool, secrets_file: Path | None, key_path: Path | None,
                task_cid: str) -> None:
    """Reveal a closed task's gold answers: every validator checks them against the
    task's commitments and scores each annotator on the gold items."""
    path = secrets_file or secrets_path(home, task_cid)
    if not path.is_file():
        raise click.UsageError(f"no gold secrets at {path}: give --gold-secrets FILE")
    reveal, created_with = load_secrets(path, task_cid)
    key = key_path or created_with
    if key is None or not key.is_file():
        raise click.UsageError(f"no requester key{f' at {key}' if key else ''}: give --key FILE")
    result = sign_and_submit(home, key, reveal)
    _show(result, as_json, lambda r: click.echo(f"revealed the gold of {task_cid}: "
                                                f"{r.get('cid')}"))
