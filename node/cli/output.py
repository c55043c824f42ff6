"""How the CLI prints: aligned tables and key/value blocks for people, JSON for scripts.

Shapes come from the RPC results (documented in :mod:`node.rpc.routes`); a
missing field prints as ``-`` so the CLI keeps working as results grow fields.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Sequence
from typing import Any

import click

Column = tuple[str, Callable[[dict[str, Any]], Any]]


def field(*keys: str) -> Callable[[dict[str, Any]], Any]:
    """The first of ``keys`` present in a row."""

    def get(row: dict[str, Any]) -> Any:
        for key in keys:
            if row.get(key) is not None:
                return row[key]
        return None

    return get


def cell(value: Any) -> str:
    if value is None:
        return "-"
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, list | tuple):
        return ", ".join(cell(v) for v in value) if value else "-"
    if isinstance(value, dict):
        return json.dumps(value, separators=(",", ":"), sort_keys=True)
    return str(value)


def print_json(value: Any) -> None:
    click.echo(json.dumps(value, indent=2, sort_keys=True))


def print_table(rows: Sequence[dict[str, Any]], columns: Sequence[Column]) -> None:
    """Left-aligned columns under upper-case headers; ``(none)`` when empty."""
    if not rows:
        click.echo("(none)")
        return
    header = [name for name, _ in columns]
    body = [[cell(get(row)) for _, get in columns] for row in rows]
    widths = [max(len(r[i]) for r in [header, *body]) for i in range(len(header))]
    for line in [header, *body]:
        click.echo("  ".join(c.ljust(w) for c, w in zip(line, widths, strict=True)).rstrip())


def print_fields(obj: dict[str, Any], skip: Sequence[str] = ()) -> None:
    """``key: value`` lines, keys aligned; lists of scalars one per line."""
    keys = [k for k in obj if k not in skip]
    if not keys:
        return
    width = max(len(k) for k in keys) + 1
    for key in keys:
        value = obj[key]
        label = f"{key}:".ljust(width)
        if isinstance(value, list) and value and not any(isinstance(v, dict) for v in value):
            click.echo(f"{label} {cell(value[0])}")
            for v in value[1:]:
                click.echo(f"{' ' * width} {cell(v)}")
        elif isinstance(value, list) and value:
            click.echo(f"{label} ({len(value)})")
            for v in value:
                click.echo(f"{' ' * width} {cell(v)}")
        else:
            click.echo(f"{label} {cell(value)}")


def print_page(result: dict[str, Any], key: str, columns: Sequence[Column], more: str) -> None:
    """A table of ``result[key]`` plus how to get the next page, if any."""
    print_table(result.get(key) or [], columns)
    cursor = result.get("next_cursor")
    if cursor:
        click.echo(f"(more: {more} --cursor {cursor})")
