"""Commands that need no running node: keys, genesis files, certificate checks,
offline aggregation and signing records with a local key (like a wallet)."""

from __future__ import annotations

import base64
from pathlib import Path
from typing import Any

from node.cli.aggregate_csv import Aggregated, aggregate_file
from node.core.home import load_key, new_key, write_key
from node.errors import HomeError
from protocol import cid as cidlib
from protocol.encoding import Limits
from protocol.errors import ProtocolError
from protocol.genesis import Genesis, Validator, genesis_from_json
from protocol.records import Annotation, sign_record


def keygen(path: Path) -> str:
    """Write a new key file (0600); return its peer id."""
    if path.exists():
        raise HomeError(f"{path} exists; refusing to overwrite a key")
    key = new_key()
    write_key(path, key)
    return key.peer_id


def genesis_new(name: str, validators: list[tuple[str, int]], out: Path,
                genesis_time: int = 0) -> str:
    """Write a genesis file; return the network id (hex)."""
    g = Genesis(name=name, validators=tuple(Validator(p, w) for p, w in validators),
                genesis_time=genesis_time)
    try:
        g.validate()
    except ProtocolError as exc:
        raise HomeError(f"invalid genesis: {exc}") from None
    out.write_text(g.to_json())
    return g.network_id.hex()


def load_genesis(path: Path) -> Genesis:
    try:
        return genesis_from_json(path.read_text())
    except OSError as exc:
        raise HomeError(f"cannot read {path}: {exc}") from None
    except ProtocolError as exc:
        raise HomeError(f"{path}: {exc}") from None


def read_certificate(path: Path) -> bytes:
    """Certificate files hold the raw bytes; base64 text (as RPC returns it) is accepted too."""
    data = path.read_bytes()
    try:
        text = data.decode("ascii").strip()
        return base64.b64decode(text, validate=True)
    except (UnicodeDecodeError, ValueError):
        return data


def verify_certificate(cert_path: Path, genesis_path: Path) -> dict[str, Any]:
    """Verify a certificate file offline with only the genesis; raise with the reason."""
    from protocol.certificate import decode_certificate
    from protocol.certificate import verify_certificate as verify
    from protocol.records import decode_record

    genesis = load_genesis(genesis_path)
    data = read_certificate(cert_path)
    try:
        cert = decode_certificate(data, Limits(max_bytes=16 << 20))
        verify(cert, genesis)
    except ProtocolError as exc:
        raise HomeError(f"certificate {cert_path} is NOT valid: {exc}") from None
    signers = [decode_record(v, genesis.network_id, genesis.params.limits()).author_id
               for v in cert.votes]
    return {"task": cidlib.cid_to_str(cert.task), "item": cidlib.cid_to_str(cert.item),
            "value": cert.value, "round": cert.round, "signers": signers,
            "network_id": genesis.network_id.hex()}


def aggregate(rule: str, csv_path: Path) -> Aggregated:
    """Labels by ``rule``; a worker's later answers to one item are dropped, as the
    network keeps only an author's first annotation of an item, and reported."""
    return aggregate_file(rule, csv_path)


def sign_annotation(key_path: Path, network_id_hex: str, seq: int, task: str, item: str,
                    label: str) -> bytes:
    """Sign an annotation with a local key; return the record bytes to submit."""
    key = load_key(key_path)
    try:
        body = Annotation(task=cidlib.cid_from_str(task), item=cidlib.cid_from_str(item),
                          label=label)
        return sign_record(bytes.fromhex(network_id_hex), key, seq, body).data
    except ProtocolError as exc:
        raise HomeError(f"cannot sign annotation: {exc}") from None


def reserve_key_seq(key_path: Path, floor: int) -> int:
    """The next seq of the key at ``key_path`` from its durable counter (``KEY.seq``,
    locked and fsynced before the record is signed), never below ``floor``."""
    from node.core.keyseq import reserve_key_seq as reserve

    return reserve(key_path, 1, floor)


def label_outcome(submitted: dict[str, Any], item_info: dict[str, Any], author: str,
                  label: str) -> tuple[bool, str]:
    """What happened to a label, from ``record.submit``'s answer and ``item.get`` after it:
    (counted?, one line for the user). A label that does not count is never reported
    as done: the CLI exits non-zero on it."""
    anns = item_info.get("annotations") or []
    mine = next((a for a in anns if a.get("author") == author), None)
    need = item_info.get("redundancy")
    have = f"{len(anns)}/{need} labels" if need else f"{len(anns)} labels"
    if mine is not None and mine.get("cid") == submitted.get("cid"):
        final = item_info.get("final")
        return True, f"recorded, {have}" + (f"; final: {final!r}" if final else "")
    if mine is not None:
        return False, (f"ignored: you already labelled this item with {mine.get('label')!r} "
                       f"(seq {mine.get('seq')}); only your first label counts")
    return False, (f"not recorded: the node holds no label of yours for this item "
                   f"({label!r} was submitted as {submitted.get('cid')})")
