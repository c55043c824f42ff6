"""Ingest: the one way a record enters the node, whatever its source.

RPC submissions arrive as bytes and are decoded and verified here; gossip and
sync have already decoded and verified theirs in their validators. Either way
the record is checked against the network's rules that need no local state
(votes only from validators), saved in one transaction per batch, and the new
ones are handed to the subscribers (consensus). A second record with an
author's seq is a fork: it is stored as evidence and re-gossiped so every node
learns of it.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence

from node.core.metrics import Metrics
from node.store.db import Saved, Store
from protocol.errors import NotValidatorError, ProtocolError
from protocol.genesis import Genesis
from protocol.keys import peer_id_from_public_key
from protocol.records import Record, decode_record

log = logging.getLogger("annot.ingest")

Subscriber = Callable[[list[Record]], None]


def reason_of(exc: Exception) -> str:
    """A stable reason label for metrics: the error class name, as the p2p layer uses."""
    return type(exc).__name__


class Ingest:
    """Validates, saves and announces records."""

    def __init__(self, store: Store, genesis: Genesis, metrics: Metrics,
                 publish: Callable[[bytes], None]) -> None:
        self.store = store
        self.genesis = genesis
        self.network_id = genesis.network_id
        self.limits = genesis.params.limits()
        self.metrics = metrics
        self._validators = frozenset(genesis.weights())
        self._subscribers: list[Subscriber] = []
        self.publish = publish  # gossips a saved record's bytes; never blocks

    def subscribe(self, fn: Subscriber) -> None:
        self._subscribers.append(fn)

    def check_rules(self, record: Record) -> None:
        """Network rules beyond the signature, the same on every node."""
        if record.kind in ("vote", "tally_vote") and record.author not in self._validators:
            raise NotValidatorError(peer_id_from_public_key(record.author))

    def decode(self, data: bytes) -> Record:
        """Decode, verify and rule-check one record; raise ``ProtocolError``."""
        record = decode_record(data, self.network_id, self.limits)
        self.check_rules(record)
        return record

    def submit(self, data: bytes) -> tuple[Record, Saved]:
        """A record from a client: decode, verify, save, publish. Raises ``ProtocolError``."""
        try:
            record = self.decode(data)
        except ProtocolError as exc:
            self.metrics.records_rejected.labels(reason=reason_of(exc)).inc()
            raise
        saved = self.accept([record], source="rpc")[0]
        if saved is not Saved.DUPLICATE:
            self.publish(record.data)
        return record, saved

    def accept(self, records: Sequence[Record], source: str) -> list[Saved]:
        """Save already-verified records; announce the new ones. Rule breakers are dropped."""
        ok: list[Record] = []
        for r in records:
            try:
                self.check_rules(r)
            except ProtocolError as exc:
                self.metrics.records_rejected.labels(reason=reason_of(exc)).inc()
                log.info("rejected record from %s: %s", source, exc)
                continue
            ok.append(r)
        results = self.store.save_records(ok)
        new: list[Record] = []
        for r, saved in zip(ok, results, strict=True):
            if saved is Saved.NEW:
                new.append(r)
                self.metrics.records.labels(kind=r.kind).inc()
            elif saved is Saved.FORK:
                self._fork(r, source)
        if new:
            for fn in self._subscribers:
                fn(new)
        return results

    def _fork(self, record: Record, source: str) -> None:
        other = self.store.get_by_seq(record.author, record.seq)
        if other is None:
            return
        log.warning("fork: %s signed two records with seq %d (from %s)",
                    record.author_id, record.seq, source)
        if self.store.save_evidence("fork", other, record.data):
            # the conflicting record itself is the evidence peers need to see
            self.publish(record.data)
