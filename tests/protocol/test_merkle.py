"""protocol.merkle against OpenZeppelin's StandardMerkleTree (@openzeppelin/merkle-tree 1.0.8).

Pinned vectors were produced by the JavaScript library itself (README example and a
three-leaf dump); tests/protocol/test_payout.py also runs the library under Node on
whole claim files.
"""

from __future__ import annotations

import json
import random

import pytest

from protocol.merkle import (
    MerkleError,
    build_tree,
    checksum_address,
    dump_tree,
    keccak256,
    leaf_hash,
    load_tree,
    parse_address,
    process_proof,
    verify,
)

A1, A2, A3 = (bytes([n]) * 20 for n in (0x11, 0x22, 0x33))
# StandardMerkleTree.of([...], ["address", "uint256"]), from Node
README_ROOT = "d4dee0beab2d53f2cc83e567171bd2820e49898130a22622b10ead383e90bd77"
README_PROOF_0 = "b92c48e9d7abe27fd8dfd6b5dfdbfb1c9a463f80c712b66f3a5180a090cccafc"
THREE_DUMP = json.loads(
    '{"format":"standard-v1","leafEncoding":["address","uint256"],"tree":['
    '"0x5e771244079f3cd0c00b8049645e77e8e406649537ff2780ac160826ee674f49",'
    '"0xf9c076fa70b870f2316bed45609b8df7e04b4e32ea137766fdd73dfd096fe54c",'
    '"0x60648906e1a3f55dd188e992dc24db68c6b6d455fe925705f5e110ed7889ad90",'
    '"0x4397c1fe255e3a9d3a85daaf9e1d39e0eeb9dc120e931f5af6d0a6f8a3315a4d",'
    '"0x1822ae4b563c0815a9cb78809432584aa220f215c2777ddf51cf5bdd1c0ad36f"],"values":['
    '{"value":["0x1111111111111111111111111111111111111111","1"],"treeIndex":2},'
    '{"value":["0x2222222222222222222222222222222222222222","2"],"treeIndex":3},'
    '{"value":["0x3333333333333333333333333333333333333333","3"],"treeIndex":4}]}')


def test_keccak_is_ethereums_not_nist_sha3() -> None:
    assert keccak256(b"").hex() == (
        "c5d2460186f7233c927e7db2dcc703c0e500b653ca82273b7bfad8045d85a470")


def test_eip55_checksums() -> None:
    # the EIP-55 specification's own examples
    for s in ("0x5aAeb6053F3E94C9b9A09f33669435E7Ef1BeAed",
              "0xfB6916095ca1df60bB79Ce92cE3Ea74c37c5d359",
              "0xdbF03B407c01E7cD3CBea99509d93f8DDDC8C6FB"):
        assert checksum_address(parse_address(s)) == s
    assert parse_address("0x5aaeb6053f3e94c9b9a09f33669435e7ef1beaed") == bytes.fromhex(
        "5aaeb6053f3e94c9b9a09f33669435e7ef1beaed")
    with pytest.raises(MerkleError, match="EIP-55 checksum"):
        parse_address("0x5AAeb6053F3E94C9b9A09f33669435E7Ef1BeAed")
    with pytest.raises(MerkleError, match="not an address"):
        parse_address("0x5aAeb6053F3E94C9b9A09f33669435E7Ef1BeAe")


def test_readme_example_root_and_proof() -> None:
    t = build_tree([(A1, 5 * 10**18), (A2, 25 * 10**17)])
    assert t.root.hex() == README_ROOT
    assert [p.hex() for p in t.proof(0)] == [README_PROOF_0]
    assert verify(t.root, A1, 5 * 10**18, t.proof(0))
    assert not verify(t.root, A1, 5 * 10**18 + 1, t.proof(0))


def test_three_leaf_dump_is_the_librarys_byte_for_byte() -> None:
    t = build_tree([(A1, 1), (A2, 2), (A3, 3)])
    assert json.dumps(dump_tree(t)) == json.dumps(THREE_DUMP)
    assert load_tree(THREE_DUMP) == t


@pytest.mark.parametrize("n", [1, 2, 3, 7, 64, 101])
def test_every_proof_verifies_and_no_other(n: int) -> None:
    rnd = random.Random(n)
    values = [(rnd.randbytes(20), rnd.randrange(2**256)) for _ in range(n)]
    t = build_tree(values)
    assert len(t.tree) == 2 * n - 1 and sorted(t.tree_index) == list(range(n - 1, 2 * n - 1))
    for i, (a, v) in enumerate(values):
        assert process_proof(leaf_hash(a, v), t.proof(i)) == t.root
        assert len(t.proof(i)) <= n.bit_length()
    if n > 1:
        assert not verify(t.root, values[0][0], values[0][1], t.proof(1))
    assert load_tree(json.loads(json.dumps(dump_tree(t)))) == t


def test_a_tampered_dump_is_refused() -> None:
    bad_node = json.loads(json.dumps(THREE_DUMP))
    bad_node["tree"][1] = "0x" + "00" * 32
    with pytest.raises(MerkleError, match="node 0 is not the hash of its children"):
        load_tree(bad_node)
    bad_value = json.loads(json.dumps(THREE_DUMP))
    bad_value["values"][0]["value"][1] = "2"
    with pytest.raises(MerkleError, match="is not at tree index 2"):
        load_tree(bad_value)
    with pytest.raises(MerkleError, match="leaf encoding"):
        load_tree({**THREE_DUMP, "leafEncoding": ["address", "uint128"]})
    with pytest.raises(MerkleError, match="at least one leaf"):
        build_tree([])
    with pytest.raises(MerkleError, match="not a uint256"):
        leaf_hash(A1, 2**256)
