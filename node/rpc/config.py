"""The ``[rpc]`` config section: where the JSON-RPC server listens and how much it accepts.

The node's config loader nests :class:`RPCConfig` under ``rpc`` in the TOML file:

    [rpc]
    host = "127.0.0.1"          # interface to listen on; loopback unless allow_remote
    port = 4701                 # TCP port; 0 picks a free one (tests)
    allow_remote = false        # must be true to listen on a non-loopback interface
    max_request_bytes = 2097152 # larger request bodies get HTTP 413 (fits a 1 MiB block)

Every call is authorized by the bearer token in ``<home>/rpc.token``, but the
token travels in clear over plain HTTP, so listening beyond loopback is an
explicit opt-in.
"""

from __future__ import annotations

import ipaddress
from dataclasses import dataclass

TOKEN_FILE = "rpc.token"  # in the node home, written by a running daemon
URL_FILE = "rpc.url"
MIN_REQUEST_BYTES = 1024
MAX_REQUEST_BYTES = 64 * 1024 * 1024


def is_loopback_host(host: str) -> bool:
    """Whether ``host`` names only the loopback interface (``localhost`` or 127/8, ::1)."""
    if host.lower() == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False  # a DNS name other than localhost may resolve anywhere


@dataclass(frozen=True, slots=True)
class RPCConfig:
    """Where the RPC server listens and its request limits."""

    host: str = "127.0.0.1"
    port: int = 4701
    allow_remote: bool = False
    # a block.put of a full 1 MiB block (the bitswap ceiling) is ~1.4 MB of base64
    max_request_bytes: int = 2 * 1024 * 1024

    @classmethod
    def for_tests(cls) -> RPCConfig:
        """Test defaults: loopback, a free port picked by the OS."""
        return cls(port=0)

    def validate(self) -> None:
        """Raise ``ValueError`` naming the first bad key and what it must be."""
        if not isinstance(self.host, str) or not self.host.strip():
            raise ValueError("rpc.host: expected a host name or IP address, got an empty value")
        if (
            isinstance(self.port, bool)
            or not isinstance(self.port, int)
            or not 0 <= self.port <= 65535
        ):
            raise ValueError(f"rpc.port: expected an integer 0..65535, got {self.port!r}")
        if not isinstance(self.allow_remote, bool):
            raise ValueError(f"rpc.allow_remote: expected true or false, got {self.allow_remote!r}")
        if (
            isinstance(self.max_request_bytes, bool)
            or not isinstance(self.max_request_bytes, int)
            or not MIN_REQUEST_BYTES <= self.max_request_bytes <= MAX_REQUEST_BYTES
        ):
            raise ValueError(
                f"rpc.max_request_bytes: expected an integer {MIN_REQUEST_BYTES}.."
                f"{MAX_REQUEST_BYTES}, got {self.max_request_bytes!r}"
            )
        if not self.allow_remote and not is_loopback_host(self.host):
            raise ValueError(
                f"rpc.host: {self.host!r} is not a loopback address; the RPC token would "
                "travel in clear over the network. Set rpc.allow_remote = true to allow it, "
                "or use host = \"127.0.0.1\""
            )
