"""PayoutKeeper over a real SQLite store: votes, quorum, certified epochs, no double export,
and ``annot payout export`` on the stored epoch."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from node.consensus.payouts import PayoutKeeper
from node.rpc.api import NotFoundError
from node.rpc.payout_view import payout_epoch
from node.store.db import Store, open_store
from protocol.cid import cid_bytes, cid_to_str
from protocol.genesis import Genesis, Validator
from protocol.keys import SigningKey
from protocol.payout import sign_binding
from protocol.records import Body, PayoutVote, Record, decode_record, sign_record
from protocol.tally import Tally, TallyEntry, encode_tally, tally_root
from tests.rpc_shapes import check_result

VALIDATORS = [SigningKey(bytes([i + 1]) * 32) for i in range(4)]
ANNOTATORS = [SigningKey(bytes([0x40 + i]) * 32) for i in range(3)]
REQ = SigningKey(b"\x77" * 32)


def genesis() -> Genesis:
    return Genesis(name="payout-test", validators=tuple(Validator(v.peer_id, 1)
                                                        for v in VALIDATORS))


def save_tally(store: Store, task: bytes, amounts: list[int]) -> None:
    entries = tuple(sorted((TallyEntry(a.public_key, v, 1, 0)
                            for a, v in zip(ANNOTATORS, amounts, strict=True)),
                           key=lambda e: e.account))
    t = Tally(task, REQ.public_key, sum(amounts), entries)
    store.save_tally(task, tally_root(t), encode_tally(t))


class Net:
    """One node's store and keeper; ``sign_own`` signs as validator 0."""

    def __init__(self, store: Store) -> None:
        self.g = genesis()
        self.store = store
        self.seqs = {v.public_key: 0 for v in VALIDATORS}
        self.keeper = PayoutKeeper(self.g, store, self.sign_own, settle_s=0.0)

    def sign(self, key: SigningKey, body: Body) -> Record:
        self.seqs[key.public_key] += 1
        rec = sign_record(self.g.network_id, key, self.seqs[key.public_key], body)
        self.store.save_records([rec])
        self.keeper.records_nowait([rec])
        return rec

    def sign_own(self, body: Body) -> Record:
        return self.sign(VALIDATORS[0], body)

    def bind(self, i: int) -> None:
        seq = 100 + i
        body = sign_binding(bytes([i + 1]) * 32, ANNOTATORS[i].peer_id, self.g.network_id)
        rec = sign_record(self.g.network_id, ANNOTATORS[i], seq, body)
        decode_record(rec.data, self.g.network_id)  # the EIP-191 check every node runs
        self.store.save_records([rec])
        self.keeper.records_nowait([rec])


def own_votes(net: Net) -> list[PayoutVote]:
    recs = [decode_record(d, net.g.network_id) for d in net.store.records_of_kind("payout_vote")]
    return [r.body for r in recs
            if isinstance(r.body, PayoutVote) and r.author == VALIDATORS[0].public_key]


def test_epochs_are_certified_by_quorum_and_never_export_twice(tmp_path: Path) -> None:
    net = Net(open_store(tmp_path / "store.db"))
    t1, t2 = sorted([cid_bytes(b"task 1"), cid_bytes(b"task 2")])
    net.keeper.step()
    assert own_votes(net) == []  # nothing final, nothing to vote for
    save_tally(net.store, t1, [500, 300, 200])
    net.bind(0)
    net.bind(1)  # annotator 2 is unbound: its 200 waits
    net.keeper.step()
    (vote,) = own_votes(net)
    assert (vote.epoch, vote.tasks) == (1, (t1,))
    assert net.store.payout_epochs() == []  # 1 of 4: no quorum
    net.sign(VALIDATORS[1], vote)
    net.keeper.step()
    assert net.store.payout_epochs() == []  # 2 of 4 is not more than 2/3
    net.sign(VALIDATORS[2], PayoutVote(1, (t1,), b"\x00" * 32))  # a dissenting root
    net.keeper.step()
    assert net.store.payout_epochs() == []
    net.sign(VALIDATORS[3], vote)
    net.keeper.step()
    ((epoch, root, tasks, data),) = net.store.payout_epochs()
    assert (epoch, root, tasks) == (1, vote.root, [t1])
    doc = json.loads(data)
    assert {c["accounts"][0][0]: c["amount"] for c in doc["claims"]} == {
        ANNOTATORS[0].peer_id: "500", ANNOTATORS[1].peer_id: "300"}
    # epoch 2: a new task, and annotator 2's backlog now that it binds; nothing twice
    save_tally(net.store, t2, [10, 20, 30])
    net.bind(2)
    net.keeper.step()
    vote2 = own_votes(net)[-1]
    assert (vote2.epoch, vote2.tasks) == (2, (t2,))
    for v in VALIDATORS[1:3]:
        net.sign(v, vote2)
    net.keeper.step()
    epochs = net.store.payout_epochs()
    assert [e[0] for e in epochs] == [1, 2]
    doc2 = json.loads(epochs[1][3])
    paid = {c["accounts"][0][0]: int(c["amount"]) for c in doc2["claims"]}
    assert paid == {ANNOTATORS[0].peer_id: 10, ANNOTATORS[1].peer_id: 20,
                    ANNOTATORS[2].peer_id: 230}
    net.keeper.step()
    assert len(own_votes(net)) == 2  # nothing new: no epoch 3
    net.store.close()


def test_payout_epoch_view_gives_the_certified_file(tmp_path: Path) -> None:
    """What RPC payout.epoch answers (annot payout export writes its file; the testnet
    test runs that CLI against live nodes)."""
    g = genesis()
    net = Net(open_store(tmp_path / "store.db"))
    task = cid_bytes(b"task 1")
    save_tally(net.store, task, [500, 300, 200])
    for i in range(3):
        net.bind(i)
    net.keeper.step()
    vote = own_votes(net)[0]
    with pytest.raises(NotFoundError, match="none certified on this node yet"):
        payout_epoch(net.store, g, None, None)
    for v in VALIDATORS[1:3]:
        net.sign(v, vote)
    net.keeper.step()
    data = net.store.payout_epochs()[0][3]
    info = payout_epoch(net.store, g, None, cid_to_str(task))
    check_result("payout.epoch", info)
    assert info["file"].encode() == data and info["epoch"] == 1
    assert info["quorum"] is True and info["signed_weight"] == 3 and len(info["signers"]) == 3
    assert payout_epoch(net.store, g, 1, None) == info
    with pytest.raises(NotFoundError, match="payout epoch not found: 2"):
        payout_epoch(net.store, g, 2, None)
    net.store.close()
