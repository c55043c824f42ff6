"""The node's offline core: key, genesis, config, stores, ingest, metrics.

``Node`` holds what every subsystem shares and signs the node's own records
(reserving each seq durably before it signs). It knows nothing of the running
services: :mod:`node.daemon` builds them around it and hands each one the
narrow interface it uses.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

from node.content.blockstore import BlockStore
from node.core.admission import Admission
from node.core.config import Config
from node.core.home import NodeHome
from node.core.ingest import Ingest
from node.core.metrics import Metrics
from node.store.db import Store, open_store
from protocol.genesis import Genesis
from protocol.keys import Signer, SigningKey
from protocol.limits import check_body
from protocol.records import Body, Record, sign_record


@dataclass
class Node:
    home: NodeHome
    key: SigningKey
    genesis: Genesis
    config: Config
    store: Store
    blocks: BlockStore
    metrics: Metrics
    ingest: Ingest
    signer: Signer = field(init=False)

    def __post_init__(self) -> None:
        self.signer = Signer(self.key)

    @property
    def peer_id(self) -> str:
        return self.signer.peer_id

    @property
    def public_key(self) -> bytes:
        return self.signer.public_key

    @property
    def is_validator(self) -> bool:
        return self.public_key in self.genesis.weights()

    def sign_own(self, body: Body) -> Record:
        """Sign, save and publish one record of our own. A body over a genesis limit is
        refused (``protocol.limits.LimitError``) before a seq is reserved or signed."""
        check_body(body, self.genesis.params)
        seq = self.store.reserve_seq(self.public_key)
        record = sign_record(self.genesis.network_id, self.signer, seq, body)
        self.ingest.accept([record], source="self")
        self.ingest.publish(record.data)
        return record

    def close(self) -> None:
        self.store.close()


def open_node(home: NodeHome, config: Config | None = None,
              publish: Callable[[bytes], None] | None = None) -> Node:
    """Load a node home and open its stores (no network yet). ``publish`` gossips the
    bytes of each new record ingest saves (the daemon passes its outbox)."""
    key = home.load_key()
    genesis = home.load_genesis()
    config = config or home.load_config()
    store = open_store(home.store_path)
    metrics = Metrics()
    return Node(home=home, key=key, genesis=genesis, config=config, store=store,
                blocks=BlockStore(home.root), metrics=metrics,
                ingest=Ingest(store, genesis, metrics, publish or _no_publish,
                              Admission(store, genesis, metrics.registry, config.admission),
                              own=key.public_key))


def _no_publish(data: bytes) -> None:
    """The publisher of a node without a network (offline tools, tests)."""
