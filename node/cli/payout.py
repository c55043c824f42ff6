"""``annot payout``: bind an EVM payout address, export a certified claim file.

``bind`` signs a ``payout_binding`` with the annotator's key file (like ``label
--key``): the EVM key signs the binding message (EIP-191) and the record goes
to the node's RPC. ``export`` reads the node's store (read-only; the node may
be running) for a certified payout epoch and writes its claim file byte for
byte: the OpenZeppelin ``standard-v1`` dump plus the root, the epoch's tasks and
each claim's proof. It also counts the validators' payout votes for that root
in the store, so the output says who certified it.
"""

from __future__ import annotations

import base64
import json
from pathlib import Path
from typing import Any

import click

from node.cli.output import print_fields, print_json
from node.errors import NodeError


def read_eth_key(path: Path) -> bytes:
    """A secp256k1 private key file: 64 hex digits, ``0x`` optional."""
    text = path.read_text().strip().removeprefix("0x")
    try:
        key = bytes.fromhex(text)
    except ValueError:
        raise NodeError(f"{path}: not a hex private key") from None
    if len(key) != 32:
        raise NodeError(f"{path}: a secp256k1 private key is 32 bytes, got {len(key)}")
    return key


def export_epoch(home: Path, output: Path, task: str | None = None,
                 epoch: int | None = None) -> dict[str, Any]:
    """Write the claim file of a certified epoch (``epoch``, the one holding ``task``,
    or the latest) to ``output``, fetched from the node's RPC (``payout.epoch``);
    return what was written and who certified it."""
    from node.cli.common import _api

    got = _api(home).payout_epoch(epoch, task)
    data = got["file"].encode()
    output.write_bytes(data)
    doc = json.loads(data)
    return {
        "file": str(output.resolve()), "epoch": got["epoch"], "root": got["root"],
        "tasks": got["tasks"], "claims": len(doc["claims"]), "total": doc["annot"]["total"],
        "bytes": len(data), "signers": got["signers"], "signed_weight": got["signed_weight"],
        "total_weight": got["total_weight"], "quorum": got["quorum"],
    }


@click.group("payout")
def payout_group() -> None:
    """Payouts a token contract can pay: bind an address, export claims."""


@payout_group.command("bind")
@click.option("--home", type=click.Path(file_okay=False, path_type=Path), envvar="ANNOT_HOME",
              default="~/.annot", show_default=True, help="Node home directory (env ANNOT_HOME).")
@click.option("--json", "as_json", is_flag=True, help="Print JSON.")
@click.option("--key", "key_path", required=True,
              type=click.Path(exists=True, dir_okay=False, path_type=Path),
              help="The annotator's key file (its peer id is bound).")
@click.option("--eth-key", "eth_key_path", required=True,
              type=click.Path(exists=True, dir_okay=False, path_type=Path),
              help="File with the EVM account's secp256k1 private key (hex).")
def bind(home: Path, as_json: bool, key_path: Path, eth_key_path: Path) -> None:
    """Bind the EVM address of --eth-key as --key's payout address."""
    from node.cli.common import _client
    from node.core.home import load_key
    from protocol.merkle import checksum_address
    from protocol.payout import sign_binding
    from protocol.records import sign_record

    client = _client(home)
    key = load_key(key_path)
    network_id = bytes.fromhex(client.call("node.status")["network_id"])
    seq = client.call("account.get", author=key.peer_id)["next_seq"]
    body = sign_binding(read_eth_key(eth_key_path), key.peer_id, network_id)
    data = sign_record(network_id, key, seq, body).data
    result = client.call("record.submit", record=base64.b64encode(data).decode())
    out = {"cid": result.get("cid"), "peer_id": key.peer_id,
           "address": checksum_address(body.address)}
    if as_json:
        print_json(out)
    else:
        click.echo(f"bound {out['address']} to {key.peer_id} ({out['cid']})")


@payout_group.command("export")
@click.option("--home", type=click.Path(file_okay=False, path_type=Path), envvar="ANNOT_HOME",
              default="~/.annot", show_default=True, help="Node home directory (env ANNOT_HOME).")
@click.option("--json", "as_json", is_flag=True, help="Print JSON.")
@click.option("--task", "task", help="The certified epoch that pays this task.")
@click.option("--epoch", "epoch", type=click.IntRange(1), help="This certified epoch.")
@click.option("-o", "--output", required=True, type=click.Path(dir_okay=False, path_type=Path),
              help="Write the claim file here (JSON).")
def export(home: Path, as_json: bool, task: str | None, epoch: int | None,
           output: Path) -> None:
    """Write a certified payout epoch's claim file (default: the latest epoch)."""
    if task is not None and epoch is not None:
        raise click.UsageError("give --task or --epoch, not both")
    result = export_epoch(home.expanduser(), output, task, epoch)
    if as_json:
        print_json(result)
    else:
        print_fields({k: v for k, v in result.items() if k != "signers"})
        click.echo(f"wrote {result['file']}: contract root {result['root']}")
