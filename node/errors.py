"""The node package's error tree: every error ``node`` raises derives from NodeError.

    NodeError
    ├── ConfigError              a config file or value that cannot be used
    ├── HomeError                a node home that is missing, incomplete or unsafe
    │   └── KeyPermissionError   a key file readable by group or others
    ├── StoreError               the SQLite store cannot read or write
    │   ├── ReadOnlyStoreError   it refuses writes (read-only file, full disk, I/O error)
    │   └── SeqError             the node's own seq counter is inconsistent
    ├── AlreadyRunningError      a second daemon on the same home
    ├── PortsInUseError          (core.ports) a listen port another process holds
    ├── BlockStoreError          (content.blockstore) a block that cannot be stored or read
    │   ├── BlockTooLargeError   over the block size limit
    │   ├── CorruptBlockError    bytes that do not hash to their CID (quarantined)
    │   ├── BlockWriteError      the disk refused the write (also an OSError)
    │   └── MissingBlockError    a block a DAG needs is not here
    ├── BitswapError             (content.bitswap_msg) bitswap wire or exchange failures
    │   ├── MessageError         a malformed or oversized bitswap message
    │   ├── NoPeersError         nobody to ask for a block
    │   └── BitswapTimeoutError  nobody answered in time
    ├── KuboError                (content.kubo) a Kubo RPC call failed
    ├── DirectoryUnavailable     (content.items) an items directory not resolvable yet
    ├── GoldPending              (consensus.gold) a gold reveal not here, deadline not passed
    ├── FrameError               (p2p.frames) a malformed, oversized or unexpected frame
    │   ├── NetworkMismatchError a peer on another network id
    │   └── ScreenedOut          (p2p.gossip) a message holding a never-valid record
    ├── SyncError                (p2p.sync) a sync session failed
    ├── DialError                (p2p.host) a peer address that cannot be dialed
    ├── ClientError              (rpc.client) anything that stops an RPC call
    │   ├── RPCClientError       the node answered with a JSON-RPC error
    │   │   └── UnauthorizedClientError  missing or wrong token
    │   └── NodeUnreachableError nothing answers at the node's RPC URL
    │       └── NodeNotRunningError      the home has no running daemon
    ├── GatewayClientError       (gateway.client) a gateway refused a call or is unreachable
    ├── CsvAggregateError        (cli.aggregate_csv) a CSV of answers that cannot be read
    ├── CidMismatchError         (cli.files) a node stored a block under another CID
    ├── TreeError                (cli.tree) a folder that cannot become an items directory
    ├── ExportInvalid            (cli.verify_export) an export that does not verify
    ├── TestnetError             (testnet.cluster) a local testnet that cannot start
    ├── DemoError                (testnet.demo) the demo cannot run or check its result
    └── DemoDataError            (testnet.demo_data) a demo data set that cannot be read

Beside it, three trees describe what a *request* did wrong rather than what
failed in the node, each mapped to its wire form in one place: ``ProtocolError``
(``protocol/errors.py``: records, encodings, admission), ``RPCError``
(``node/rpc/api.py``: JSON-RPC codes) and ``GatewayError`` (``node/gateway/api.py``:
HTTP statuses). Decisions are taken on these types (or on SQLite's result codes),
never on message text.
"""

from __future__ import annotations

from pathlib import Path


class NodeError(Exception):
    """Root of the errors raised by :mod:`node`."""


class ConfigError(NodeError):
    pass


class HomeError(NodeError):
    pass


class KeyPermissionError(HomeError):
    def __init__(self, path: Path, mode: int) -> None:
        super().__init__(
            f"key file {path} has mode {mode:o}: it must not be readable by group or others; "
            f"fix it with: chmod 600 {path}"
        )
        self.path = path
        self.mode = mode


class StoreError(NodeError):
    pass


class ReadOnlyStoreError(StoreError):
    pass


class SeqError(StoreError):
    pass


class AlreadyRunningError(NodeError):
    def __init__(self, home: Path) -> None:
        super().__init__(f"another annot daemon is already running on {home} (lock held)")
        self.home = home
