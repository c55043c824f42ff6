"""OpenZeppelin's ``StandardMerkleTree`` (``@openzeppelin/merkle-tree`` 1.0.8), for
``["address", "uint256"]`` leaves: the tree a standard airdrop contract checks
with ``MerkleProof.verify(proof, root, leaf)``.

Layout, exactly as the JavaScript library builds it (``core.js``, ``merkletree.js``):

* ``leaf = keccak256(keccak256(abi.encode(address, uint256)))`` (the double hash
  keeps a 64-byte leaf from passing for an inner node);
* leaves are sorted by hash and stored from the *end* of a flat array of
  ``2n - 1`` nodes (sorted leaf ``k`` at index ``2n - 2 - k``); inner node ``i``
  is ``keccak256(sort(tree[2i+1], tree[2i+2]))`` (sorted-pair hashing, so a proof
  needs no left/right flags), and the root is ``tree[0]``;
* a proof is the siblings on the path from a leaf's index up to the root;
* the dump is ``{"format": "standard-v1", "leafEncoding": [...], "tree": [hex],
  "values": [{"value": [address, amount], "treeIndex": i}]}`` with values in the
  order given, addresses as EIP-55 checksum strings and amounts as decimal
  strings (JSON numbers would lose precision past 2**53).

Pure and deterministic: keccak256 comes from pycryptodome (pinned). Its module
is imported on first use, because pycryptodome's cffi loader imports
``subprocess`` and ``threading`` at import time; keccak itself does no I/O.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

from protocol.errors import ProtocolError

LEAF_ENCODING = ("address", "uint256")
FORMAT = "standard-v1"
_UINT256_MAX = 2**256 - 1
_keccak: Callable[[bytes], bytes] | None = None


class MerkleError(ProtocolError):
    """An invalid leaf, tree or proof."""


def keccak256(data: bytes) -> bytes:
    """Ethereum's keccak256 (the original Keccak padding, not NIST SHA3-256)."""
    global _keccak
    if _keccak is None:
        from Crypto.Hash import keccak as _k  # pycryptodome; see the module docstring

        def _digest(b: bytes) -> bytes:
            return _k.new(digest_bits=256, data=b).digest()
        _keccak = _digest
    return _keccak(data)


def checksum_address(address: bytes) -> str:
    """EIP-55 mixed-case hex of a 20-byte address."""
    if len(address) != 20:
        raise MerkleError(f"an address is 20 bytes, got {len(address)}")
    hex_ = address.hex()
    h = keccak256(hex_.encode()).hex()
    return "0x" + "".join(c.upper() if c.isalpha() and int(h[i], 16) >= 8 else c
                          for i, c in enumerate(hex_))


def parse_address(text: str) -> bytes:
    """A ``0x``-prefixed 40-hex-digit address; mixed case must be a valid EIP-55 checksum."""
    if not isinstance(text, str) or len(text) != 42 or not text.startswith("0x"):
        raise MerkleError(f"not an address (0x + 40 hex digits): {text!r}")
    try:
        raw = bytes.fromhex(text[2:])
    except ValueError:
        raise MerkleError(f"not an address (0x + 40 hex digits): {text!r}") from None
    body = text[2:]
    if body != body.lower() and body != body.upper() and checksum_address(raw) != text:
        raise MerkleError(f"address {text} fails its EIP-55 checksum")
    return raw


def leaf_hash(address: bytes, amount: int) -> bytes:
    """``keccak256(keccak256(abi.encode(address, uint256)))``."""
    if len(address) != 20:
        raise MerkleError(f"an address is 20 bytes, got {len(address)}")
    if not 0 <= amount <= _UINT256_MAX:
        raise MerkleError(f"amount {amount} is not a uint256")
    return keccak256(keccak256(bytes(12) + address + amount.to_bytes(32, "big")))


def node_hash(a: bytes, b: bytes) -> bytes:
    """Sorted-pair hashing: ``keccak256(min(a, b) ++ max(a, b))``."""
    return keccak256(a + b if a <= b else b + a)


@dataclass(frozen=True, slots=True)
class StandardTree:
    """A built tree: ``tree`` is the flat node array (root first), ``values`` the
    leaves in the order given, ``tree_index[i]`` where value ``i`` sits."""

    tree: tuple[bytes, ...]
    values: tuple[tuple[bytes, int], ...]
    tree_index: tuple[int, ...]

    @property
    def root(self) -> bytes:
        return self.tree[0]

    def proof(self, value_index: int) -> tuple[bytes, ...]:
        """The sibling hashes from value ``value_index``'s leaf up to the root."""
        i = self.tree_index[value_index]
        out = []
        while i > 0:
            out.append(self.tree[i + 1 if i % 2 else i - 1])
            i = (i - 1) // 2
        return tuple(out)


def build_tree(values: Sequence[tuple[bytes, int]]) -> StandardTree:
    """``StandardMerkleTree.of(values, ["address", "uint256"])`` (leaves sorted)."""
    if not values:
        raise MerkleError("a Merkle tree needs at least one leaf")
    hashed = sorted(((leaf_hash(a, v), i) for i, (a, v) in enumerate(values)),
                    key=lambda hv: hv[0])  # stable, like Array.prototype.sort
    n = len(hashed)
    tree: list[bytes] = [b""] * (2 * n - 1)
    index = [0] * n
    for k, (h, i) in enumerate(hashed):
        tree[len(tree) - 1 - k] = h
        index[i] = len(tree) - 1 - k
    for i in range(len(tree) - 1 - n, -1, -1):
        tree[i] = node_hash(tree[2 * i + 1], tree[2 * i + 2])
    return StandardTree(tuple(tree), tuple(values), tuple(index))


def process_proof(leaf: bytes, proof: Sequence[bytes]) -> bytes:
    """The root a proof leads to from ``leaf`` (what ``MerkleProof.processProof`` does)."""
    h = leaf
    for p in proof:
        h = node_hash(h, p)
    return h


def verify(root: bytes, address: bytes, amount: int, proof: Sequence[bytes]) -> bool:
    """``MerkleProof.verify(proof, root, leaf)`` for one ``[address, amount]`` leaf."""
    return process_proof(leaf_hash(address, amount), proof) == root


def hex0x(b: bytes) -> str:
    return "0x" + b.hex()


def dump_tree(t: StandardTree) -> dict[str, Any]:
    """``StandardMerkleTree.dump()``: a JSON-ready map ``StandardMerkleTree.load`` accepts."""
    return {
        "format": FORMAT,
        "leafEncoding": list(LEAF_ENCODING),
        "tree": [hex0x(h) for h in t.tree],
        "values": [{"value": [checksum_address(a), str(v)], "treeIndex": i}
                   for (a, v), i in zip(t.values, t.tree_index, strict=True)],
    }


def load_tree(data: Any) -> StandardTree:
    """Parse and check a dump: every node hash and every leaf must match."""
    if not isinstance(data, dict) or data.get("format") != FORMAT:
        raise MerkleError(f"not a {FORMAT} Merkle tree dump")
    if data.get("leafEncoding") != list(LEAF_ENCODING):
        raise MerkleError(f"leaf encoding {data.get('leafEncoding')!r}, expected "
                          f"{list(LEAF_ENCODING)}")
    try:
        tree = tuple(bytes.fromhex(h.removeprefix("0x")) for h in data["tree"])
        values = tuple((parse_address(v["value"][0]), int(v["value"][1], 10))
                       for v in data["values"])
        index = tuple(int(v["treeIndex"]) for v in data["values"])
    except (KeyError, TypeError, ValueError, AttributeError) as exc:
        raise MerkleError(f"malformed tree dump: {exc!r}") from None
    if not tree or any(len(h) != 32 for h in tree):
        raise MerkleError("tree nodes must be 32-byte hashes")
    for i in range(len(tree)):
        left, right = 2 * i + 1, 2 * i + 2
        if right < len(tree) and tree[i] != node_hash(tree[left], tree[right]):
            raise MerkleError(f"tree node {i} is not the hash of its children")
        if right >= len(tree) and left < len(tree):
            raise MerkleError(f"tree node {i} has one child")
    for (a, v), i in zip(values, index, strict=True):
        if not 0 <= i < len(tree) or tree[i] != leaf_hash(a, v):
            raise MerkleError(f"value [{checksum_address(a)}, {v}] is not at tree index {i}")
    return StandardTree(tree, values, index)


__all__ = [
    "FORMAT", "LEAF_ENCODING", "MerkleError", "StandardTree", "build_tree", "checksum_address",
    "dump_tree", "hex0x", "keccak256", "leaf_hash", "load_tree", "node_hash", "parse_address",
    "process_proof", "verify",
]
