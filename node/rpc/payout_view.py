"""``payout.epoch``: a certified payout epoch's claim file and who certified it.

Read from the store by the adapter (the only module of node/rpc that touches the
node); the CLI's ``annot payout export`` writes the file it returns.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Protocol

from node.rpc.api import NotFoundError
from node.rpc.results import PayoutEpoch
from protocol.cid import cid_from_str, cid_to_str
from protocol.genesis import Genesis
from protocol.keys import peer_id_from_public_key
from protocol.records import PayoutVote, decode_record


class EpochStore(Protocol):
    def payout_epochs(self) -> list[tuple[int, bytes, list[bytes], bytes]]: ...
    def records_of_kind(self, kind: str) -> Iterator[bytes]: ...


def payout_epoch(store: EpochStore, genesis: Genesis, epoch: int | None,
                 task: str | None) -> PayoutEpoch:
    """The certified epoch ``epoch``, the one that pays ``task``, or the latest."""
    epochs = store.payout_epochs()
    if not epochs:
        raise NotFoundError("payout epoch", "none certified on this node yet: validators "
                            "certify one once a task's tally is final and an annotator has "
                            "bound an address (annot payout bind)")
    if epoch is not None:
        chosen = [e for e in epochs if e[0] == epoch]
        if not chosen:
            raise NotFoundError("payout epoch", f"{epoch} (certified here: "
                                f"{', '.join(str(e[0]) for e in epochs)})")
    elif task is not None:
        tid = cid_from_str(task)
        chosen = [e for e in epochs if tid in e[2]]
        if not chosen:
            raise NotFoundError("payout epoch", f"none pays task {task} yet (its tally must "
                                "be final; validators certify the next epoch after it)")
    else:
        chosen = epochs[-1:]
    number, root, tasks, data = chosen[0]
    latest: dict[bytes, tuple[int, bytes, tuple[bytes, ...]]] = {}
    for raw in store.records_of_kind("payout_vote"):
        r = decode_record(raw, genesis.network_id, verify=False)  # stored: verified
        b = r.body
        if isinstance(b, PayoutVote) and b.epoch == number and \
                r.seq > latest.get(r.author, (0, b"", ()))[0]:
            latest[r.author] = (r.seq, b.root, b.tasks)
    weights = genesis.weights()
    signers = sorted(a for a, (_, r, t) in latest.items()
                     if r == root and t == tuple(tasks) and a in weights)
    signed = sum(weights[a] for a in signers)
    return {
        "epoch": number, "root": "0x" + root.hex(), "tasks": [cid_to_str(t) for t in tasks],
        "file": data.decode(), "signers": [peer_id_from_public_key(a) for a in signers],
        "signed_weight": signed, "total_weight": genesis.total_weight,
        "quorum": genesis.quorum(signed),
    }
