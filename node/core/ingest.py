"""Ingest: the one way a record enters the node, whatever its source.

RPC submissions arrive as bytes and are decoded and verified here; gossip and
sync have already decoded and verified theirs in their validators. Either way
the record is checked against the network's rules that need no local state
(votes only from validators), then by admission control (:mod:`node.core.admission`:
a record is stored only if it can matter), saved in one transaction per batch
(one fsync: group commit), and the new ones are handed to the subscribers
(consensus). A second record with an author's seq is a fork: one variant per
author is stored as evidence, re-gossiped, and handed to the subscribers too, so
consensus applies the fork rule (docs/protocol.md). A client (RPC) that reuses a
seq the node already holds for its author is refused with the next free seq.

``accept`` reports per record a :class:`Saved` or an admission :class:`Verdict`;
records that could never be valid are charged to the sending peer through
``on_invalid(peer, reason)`` (the daemon points it at the p2p peer scores).
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence

from node.core.admission import Admission, AdmissionError, Verdict
from node.core.group_commit import GroupCommit
from node.core.lifecycle import TaskRules
from node.core.metrics import Metrics
from node.store.db import Saved, Store
from protocol.errors import NotValidatorError, ProtocolError, reason_of
from protocol.genesis import Genesis
from protocol.gold import check_reveal, check_reveal_time
from protocol.keys import peer_id_from_public_key
from protocol.records import GoldReveal, Record, decode_record

log = logging.getLogger("annot.ingest")

Subscriber = Callable[[list[Record]], None]
OnInvalid = Callable[[str, str], None]


# sources whose records must survive power loss before save_records returns
DURABLE_SOURCES = frozenset({"rpc", "self"})
# kinds only validators may sign
VALIDATOR_KINDS = frozenset({"vote", "tally_vote", "payout_vote"})


class SeqReuseError(ProtocolError):
    """A client submitted a record with a seq this node already holds for its author."""


class OwnKeyError(ProtocolError):
    """A client submitted a record signed with the node's own key."""


def _no_penalty(peer: str, reason: str) -> None:
    """The default ``on_invalid``: nobody to charge (offline tools, tests)."""


class Ingest:
    """Validates, saves and announces records."""

    def __init__(self, store: Store, genesis: Genesis, metrics: Metrics,
                 publish: Callable[[bytes], None], admission: Admission | None = None,
                 own: bytes | None = None) -> None:
        self.store = store
        self.genesis = genesis
        self.network_id = genesis.network_id
        self.limits = genesis.params.limits()
        self.metrics = metrics
        self._validators = frozenset(genesis.weights())
        self.task_rules = TaskRules(store, genesis.network_id)  # close / extend / cancel
        self._subscribers: list[Subscriber] = []
        self.publish = publish  # gossips a saved record's bytes; never blocks
        self.admission = admission or Admission(store, genesis, metrics.registry)
        self.on_invalid: OnInvalid = _no_penalty
        self.own = own  # the node's own key: its seqs are allocated by the node alone
        self.grouped = GroupCommit(self)  # clients' submissions: one fsync per group

    def subscribe(self, fn: Subscriber) -> None:
        self._subscribers.append(fn)

    def check_rules(self, record: Record) -> None:
        """Network rules beyond the signature, the same on every node."""
        if record.kind in VALIDATOR_KINDS and record.author not in self._validators:
            raise NotValidatorError(peer_id_from_public_key(record.author))
        self.task_rules.check_owner(record)
        if isinstance(record.body, GoldReveal):
            self._check_gold(record, record.body)

    def _check_gold(self, record: Record, reveal: GoldReveal) -> None:
        """A gold reveal must open its task's commitments, from its requester, after the
        close (``protocol.gold`` errors say which part is wrong). One whose task is not
        here yet passes: admission holds it until the task arrives."""
        entry = self.task_rules.task(reveal.task)
        if entry is None:
            return
        requester, task = entry
        items = self.store.task_item_cids(reveal.task) if task.items_dir is not None else None
        check_reveal(task, reveal.task, requester, reveal, record.author, items)
        found = self.task_rules.lifecycle(reveal.task)  # an early close counts as a close
        check_reveal_time(task, self.task_rules.clock(), found[1] if found else None)

    def decode(self, data: bytes) -> Record:
        """Decode, verify and rule-check one record; raise ``ProtocolError``. A client's
        label for a closed task, or update of one, is refused here (on our clock)."""
        record = decode_record(data, self.network_id, self.limits)
        self.check_rules(record)
        self.task_rules.check_now(record)
        return record

    def submit(self, data: bytes) -> tuple[Record, Saved | Verdict]:
        """A record from a client: decode, verify, save, publish. Raises ``ProtocolError``.
        (The daemon's clients go through :class:`node.core.group_commit.GroupCommit`,
        which saves the submissions that arrive together in one transaction.)"""
        record = self.prepare(data)
        return record, self.settle(record, self.accept_reasons([record], source="rpc")[0])

    async def submit_async(self, data: bytes) -> tuple[Record, Saved | Verdict]:
        """:meth:`submit` for the daemon's clients: saved with the submissions that
        arrived at the same time, in one durable transaction."""
        return await self.grouped.submit(data)

    def prepare(self, data: bytes) -> Record:
        """A client's record, decoded, verified and checked against the seqs we hold."""
        try:
            record = self.decode(data)
        except ProtocolError as exc:
            self.metrics.records_rejected.labels(reason=reason_of(exc)).inc()
            raise
        if record.author == self.own:
            own_key = OwnKeyError(
                "this record is signed with the node's own key, whose seqs only the node "
                "allocates (a second allocator could sign two records with one seq); "
                "run the command without --key and the node signs it")
            self.metrics.records_rejected.labels(reason=reason_of(own_key)).inc()
            raise own_key
        held = self.store.get_by_seq(record.author, record.seq)
        if held is not None and held != record.data:
            raise self.seq_reuse(record)
        return record

    def seq_reuse(self, record: Record) -> SeqReuseError:
        """The error for a client's record whose seq already names another record."""
        reuse = SeqReuseError(
            f"seq {record.seq} of {record.author_id} is already used by another record; "
            f"the next free seq is {self.store.next_seq(record.author)}")
        self.metrics.records_rejected.labels(reason=reason_of(reuse)).inc()
        return reuse

    def settle(self, record: Record, outcome: tuple[Saved | Verdict, str]) -> Saved | Verdict:
        """What a client hears of its saved (or held, or refused) record; a new one is
        gossiped. Raises :class:`AdmissionError` for a refused one."""
        saved, reason = outcome
        if isinstance(saved, Verdict):
            if saved is not Verdict.PENDING:
                raise AdmissionError(saved, reason)
            return saved
        if saved is not Saved.DUPLICATE:
            self.publish(record.data)
        return saved

    def screen(self, records: Sequence[Record]) -> tuple[str | None, bool]:
        """(why, relay): the reason the first never-valid record of ``records`` can
        never be stored, or None; and whether gossip may relay them: not if one names
        a task not here yet (it waits in the pool here, and a peer that has the task
        gets it by sync). No side effects (no pool, no rate limit, no counters). For
        the gossip validator: a message it rejects is neither delivered nor forwarded,
        so only its first sender is charged, never an honest relay."""
        relay = True
        for r in records:
            try:
                self.check_rules(r)
            except ProtocolError as exc:
                return reason_of(exc), False
            verdict, reason = self.admission.verdict(r)
            if verdict is Verdict.INVALID:
                return reason, False
            relay = relay and verdict is not Verdict.PENDING
        return None, relay

    def accept(self, records: Sequence[Record], source: str) -> list[Saved | Verdict]:
        """Save already-verified records that pass admission; announce the new ones.

        Per record: a :class:`Saved`, or the :class:`Verdict` that kept it out. Rule
        breakers and records that can never be valid are charged to ``source``."""
        return [saved for saved, _ in self.accept_reasons(records, source)]

    def accept_reasons(self, records: Sequence[Record], source: str, sync: bool = True
                       ) -> list[tuple[Saved | Verdict, str]]:
        """:meth:`accept`, with the reason beside each verdict ("" for a saved record).
        ``sync=False``: a client's records are committed without their fsync; the caller
        calls :meth:`sync_wal` before it acknowledges them (group commit does, off the
        event loop)."""
        out: list[Saved | Verdict] = []
        reasons: list[str] = []
        ok: list[Record] = []
        slots: list[int] = []
        invalid: list[str] = []
        for r in records:
            try:
                self.check_rules(r)
                verdict, reason = self.admission.check(r, source)
            except ProtocolError as exc:
                self.metrics.records_rejected.labels(reason=reason_of(exc)).inc()
                log.info("rejected record from %s: %s", source, exc)
                out.append(Verdict.INVALID)
                reasons.append(str(exc))
                invalid.append(reason_of(exc))
                continue
            reasons.append(reason)
            if verdict is not Verdict.ADMIT:
                out.append(verdict)
                if verdict is Verdict.INVALID:
                    self.metrics.records_rejected.labels(reason=reason).inc()
                    invalid.append(reason)
                continue
            slots.append(len(out))
            out.append(Saved.DUPLICATE)  # replaced below
            ok.append(r)
        for reason in invalid[:1]:  # one charge per batch: a peer forwards in batches
            if source not in ("rpc", "self"):
                self.on_invalid(source, reason)
        self._save(ok, slots, out, source, sync)
        return list(zip(out, reasons, strict=True))

    def sync_wal(self) -> None:
        """Make every record saved so far survive power loss (``Store.sync_wal``);
        thread-safe."""
        self.store.sync_wal()

    def _save(self, ok: list[Record], slots: list[int], out: list[Saved | Verdict],
              source: str, sync: bool = True) -> None:
        while ok:
            # fsynced before it returns when we sign it or a client waits for the ack
            # (unless the caller fsyncs before the ack: ``sync``); peers' records need
            # no fsync of their own (sync brings back what is lost)
            results = self.store.save_records(
                ok, durable=sync and source in DURABLE_SOURCES)
            new: list[Record] = []
            released: list[Record] = []
            for i, r, saved in zip(slots, ok, results, strict=True):
                if i >= 0:
                    out[i] = saved
                if saved is Saved.NEW:
                    new.append(r)
                    self.metrics.records.labels(kind=r.kind).inc()
                    if r.kind == "task":
                        released += [p for p, _ in self.admission.release(r.cid)]
                elif saved is Saved.FORK:
                    self._fork(r, source)
                    new.append(r)  # consensus applies the fork rule to its author
            if new:
                for fn in self._subscribers:
                    fn(new)
            # records that waited for a task just stored: checked again, then saved
            ok = [r for r in released
                  if self.admission.check(r, "pool")[0] is Verdict.ADMIT]
            slots = [-1] * len(ok)

    def _fork(self, record: Record, source: str) -> None:
        other = self.store.get_by_seq(record.author, record.seq)
        if other is None:
            return
        log.warning("fork: %s signed two records with seq %d (from %s)",
                    record.author_id, record.seq, source)
        if self.store.save_evidence("fork", other, record.data):
            # the conflicting record itself is the evidence peers need to see
            self.publish(record.data)
