"""Payouts a token contract can pay: address bindings, amounts owed, the claim file.

**Binding.** An annotator names its EVM payout address in a ``payout_binding``
record, signed with its Ed25519 key like every record, and carrying a second
signature: EIP-191 ``personal_sign`` by the address's secp256k1 key over
:func:`binding_message`, which names the annotator's peer id, the network id and
the address. So nobody can bind an address they do not hold, and a binding
cannot be replayed for another peer or network. Every node checks it when it
decodes the record (:func:`verify_binding`, with eth-account). An author's
latest binding (highest seq) is the one in force.

**Amounts.** A payout epoch ``N`` covers a sorted set of tasks with final
tallies, disjoint from earlier epochs. What an account is owed up to epoch
``N`` is its net over every tally up to it, ``earned - paid`` (a requester's
refunds net against what it paid), when positive. An epoch exports, for each
*bound* account, what it is owed minus what earlier certified epochs already
exported to it; an account that binds late gets its backlog in the next
epoch. Amounts to one address from several accounts are summed into one leaf.

**File.** :func:`encode_payout_file` writes the OpenZeppelin ``standard-v1``
dump (:mod:`protocol.merkle`) plus ``root``, the epoch, its tasks, and each
claim's proof and contributing accounts, as deterministic JSON bytes: every
node with the same inputs writes the same file. Validators sign its root in
``payout_vote`` records; a quorum of weight certifies it.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from protocol import keys
from protocol.cid import cid_to_str
from protocol.errors import ProtocolError
from protocol.merkle import (
    FORMAT,
    LEAF_ENCODING,
    build_tree,
    checksum_address,
    hex0x,
    keccak256,
)
from protocol.records import PayoutBinding
from protocol.tally import Tally

BINDING_TEMPLATE = ("annot payout address\nnetwork: {network}\npeer: {peer}\n"
                    "address: {address}")


class PayoutError(ProtocolError):
    """A payout computation or file that cannot be made."""


class BindingError(PayoutError):
    """A payout binding whose EIP-191 signature is not by the bound address."""


def binding_message(peer_id: str, network_id: bytes, address: bytes) -> str:
    """The text the address key signs (EIP-191 ``personal_sign``)."""
    return BINDING_TEMPLATE.format(network=network_id.hex(), peer=peer_id,
                                   address=checksum_address(address))


def sign_binding(eth_private_key: bytes, peer_id: str, network_id: bytes) -> PayoutBinding:
    """The binding body for ``peer_id``, signed by the EVM key (for CLIs, demos, tests)."""
    from eth_account import Account
    from eth_account.messages import encode_defunct

    acct = Account.from_key(eth_private_key)
    address = bytes.fromhex(acct.address[2:])
    msg = encode_defunct(text=binding_message(peer_id, network_id, address))
    return PayoutBinding(address=address, signature=bytes(acct.sign_message(msg).signature))


def preload() -> None:
    """Import eth-account and the keccak backend now. They take ~0.6 s of CPU to import
    (more on a busy machine); the daemon calls this in a thread at start, so the first
    binding it verifies does not stall its event loop and every client behind it."""
    import eth_account.messages  # noqa: F401

    keccak256(b"")


def verify_binding(body: PayoutBinding, author: bytes, network_id: bytes) -> None:
    """Raise :class:`BindingError` unless ``body.signature`` is the bound address's
    EIP-191 signature over the binding message of ``author`` on ``network_id``."""
    from eth_account import Account
    from eth_account.messages import encode_defunct

    peer = keys.peer_id_from_public_key(author)
    text = binding_message(peer, network_id, body.address)
    try:
        signer = Account.recover_message(encode_defunct(text=text), signature=body.signature)
    except Exception as exc:  # eth-account raises several types for a malformed signature
        raise BindingError(f"payout binding signature is malformed: {exc}") from None
    if signer.lower() != "0x" + body.address.hex():
        raise BindingError(
            f"payout binding for {checksum_address(body.address)}: the EIP-191 signature "
            f"recovers {signer}, not the bound address (it must sign the binding message "
            f"for peer {peer} on network {network_id.hex()[:16]}…)")


@dataclass(frozen=True, slots=True)
class Claim:
    """One leaf: ``amount`` to ``address``, from the accounts in ``parts``."""

    address: bytes
    amount: int
    parts: tuple[tuple[bytes, int], ...]  # (account key, amount), sorted by key


def owed(tallies: Iterable[Tally]) -> dict[bytes, int]:
    """Each account's positive net (earned - paid) over ``tallies``."""
    net: dict[bytes, int] = {}
    seen: set[bytes] = set()
    for t in tallies:
        if t.task in seen:
            raise PayoutError(f"task {t.task.hex()} counted twice")
        seen.add(t.task)
        net[t.requester] = net.get(t.requester, 0) - t.total
        for e in t.entries:
            net[e.account] = net.get(e.account, 0) + e.amount
    return {a: v for a, v in net.items() if v > 0}


def compute_claims(tallies: Iterable[Tally], bindings: Mapping[bytes, bytes],
                   exported: Mapping[bytes, int]) -> tuple[Claim, ...]:
    """Claims of an epoch, sorted by address: ``tallies`` are every final tally up
    to and including the epoch, ``bindings`` account → 20-byte address,
    ``exported`` account → amount earlier certified epochs exported."""
    by_address: dict[bytes, list[tuple[bytes, int]]] = {}
    for account, amount in sorted(owed(tallies).items()):
        address = bindings.get(account)
        due = amount - exported.get(account, 0)
        if address is not None and due > 0:
            by_address.setdefault(address, []).append((account, due))
    return tuple(Claim(a, sum(v for _, v in parts), tuple(parts))
                 for a, parts in sorted(by_address.items()))


def payout_root(claims: Iterable[Claim]) -> bytes:
    """The Merkle root validators sign for these claims."""
    claims = tuple(claims)
    if not claims:
        raise PayoutError("no claims: nothing owed to a bound address")
    return build_tree([(c.address, c.amount) for c in claims]).root


def encode_payout_file(network_id: bytes, epoch: int, tasks: Iterable[bytes],
                       claims: Iterable[Claim]) -> bytes:
    """The claim file's exact bytes (compact JSON, ASCII, trailing newline)."""
    return payout_file(network_id, epoch, tasks, claims)[1]


def payout_file(network_id: bytes, epoch: int, tasks: Iterable[bytes],
                claims: Iterable[Claim]) -> tuple[bytes, bytes]:
    """(Merkle root, claim file bytes) from one tree build."""
    claims = tuple(claims)
    if not claims:
        raise PayoutError("no claims: nothing owed to a bound address")
    tree = build_tree([(c.address, c.amount) for c in claims])
    addresses = [checksum_address(c.address) for c in claims]  # once: a keccak each
    doc: dict[str, Any] = {
        "format": FORMAT, "leafEncoding": list(LEAF_ENCODING),
        "tree": [hex0x(h) for h in tree.tree],
        "values": [{"value": [a, str(c.amount)], "treeIndex": i}
                   for a, c, i in zip(addresses, claims, tree.tree_index, strict=True)],
        "root": hex0x(tree.root),
        "annot": {"network": network_id.hex(), "epoch": epoch,
                  "tasks": [cid_to_str(t) for t in sorted(tasks)],
                  "total": str(sum(c.amount for c in claims))},
        "claims": [
            {"address": a, "amount": str(c.amount),
             "proof": [hex0x(p) for p in tree.proof(i)],
             "accounts": [[keys.peer_id_from_public_key(k), str(v)] for k, v in c.parts]}
            for i, (a, c) in enumerate(zip(addresses, claims, strict=True))],
    }
    # compact: json's C encoder (an indented dump runs the pure-Python one, 10x slower)
    return tree.root, (json.dumps(doc, separators=(",", ":")) + "\n").encode()


def exported_amounts(file_data: bytes) -> dict[bytes, int]:
    """account key → amount, from a certified epoch's claim file (for later epochs)."""
    doc = json.loads(file_data)
    out: dict[bytes, int] = {}
    for c in doc["claims"]:
        for peer, amount in c["accounts"]:
            key = keys.public_key_from_peer_id(peer)
            out[key] = out.get(key, 0) + int(amount)
    return out


__all__ = [
    "BINDING_TEMPLATE", "BindingError", "Claim", "PayoutError", "binding_message",
    "compute_claims", "encode_payout_file", "exported_amounts", "owed", "payout_file",
    "payout_root",
    "sign_binding", "verify_binding",
]
