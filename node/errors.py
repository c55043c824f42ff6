"""The node package's error tree.

    NodeError
    ├── ConfigError            a config file or value that cannot be used
    ├── HomeError              a node home that is missing, incomplete or unsafe
    │   └── KeyPermissionError a key file readable by group or others
    ├── StoreError             the SQLite store cannot read or write
    │   ├── ReadOnlyStoreError the store refuses writes (read-only file, full disk)
    │   └── SeqError           the node's own seq counter is inconsistent
    ├── BlockStoreError        (node.blockstore) a block that cannot be stored or read
    └── AlreadyRunningError    a second daemon on the same home
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
