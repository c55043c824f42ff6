"""annot's node: everything with I/O — libp2p host, gossip, sync, block store,
SQLite store, Kubo client, JSON-RPC server, CLI and the service that runs them."""

__version__ = "0.1.0"
