"""annot's node: everything with I/O, in layers (each a subpackage).

    core/       the node's own parts: config, home (key, genesis), ingest, metrics, logs
    store/      the embedded SQLite record store and its migrations
    content/    IPFS blocks: block store, UnixFS files, bitswap, Kubo client, router
    p2p/        libp2p host, gossip, sync, peer scores and bans
    consensus/  the vote engine's service, proposals and tallies, behind narrow ports
    rpc/        the admin JSON-RPC server, its contract, client and the one adapter
    cli/        the ``annot`` command line (an RPC client, plus offline commands)
    testnet/    ``python -m node.testnet``: local multi-process networks and the demo
    daemon.py   the only module that wires the layers together (``annot run``)

Dependencies point down that list; ``make lint`` checks the rules with
import-linter (see ``.importlinter``).
"""

__version__ = "0.1.0"
