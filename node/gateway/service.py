"""The gateway as one of a running node's services: what the daemon hands it.

    gateway = gateway_for(node, p2p, content)
    url = await nursery.start(serve_gateway, gateway, config.gateway, home.root)

It gets the node's store, ingest (the gossip admission path), genesis, block
store, the p2p peer list and the content fetcher — never the node's key.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from node.core.local import Node
from node.gateway.adapter import NodeGateway, NodeParts

if TYPE_CHECKING:
    from node.content.router import Content
    from node.p2p import P2PNode


def gateway_for(node: Node, p2p: P2PNode | None, content: Content | None) -> NodeGateway:
    """The gateway's view of a running node (``None`` parts: no peers / local blocks only)."""

    def peers() -> list[str]:
        return list(p2p.peers()) if p2p is not None else []

    async def fetch(cid: bytes) -> bytes | None:
        return await content.get(cid) if content is not None else None

    return NodeGateway(NodeParts(node.store, node.ingest, node.genesis, node.blocks,
                                 node.peer_id, peers, fetch))
