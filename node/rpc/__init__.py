"""JSON-RPC 2.0 over HTTP: the node's one API, served to the CLI and to clients.

``api`` holds the :class:`NodeAPI` contract and the error codes, ``routes`` the
flat method table, ``jsonrpc`` the request/response envelope, ``server`` the
ASGI app and :func:`serve_rpc`, ``client`` the httpx client the CLI uses.
"""

from node.rpc.api import (
    AnnotationQuery,
    CertificateView,
    ConflictError,
    InternalError,
    InvalidParamsError,
    InvalidRequestError,
    MethodNotFoundError,
    NodeAPI,
    NotFoundError,
    ParseError,
    RecordRejectedError,
    RPCError,
    TaskSpec,
    UnauthorizedError,
    UnavailableError,
)
from node.rpc.config import RPCConfig

__all__ = [
    "AnnotationQuery",
    "CertificateView",
    "ConflictError",
    "InternalError",
    "InvalidParamsError",
    "InvalidRequestError",
    "MethodNotFoundError",
    "NodeAPI",
    "NotFoundError",
    "ParseError",
    "RPCConfig",
    "RPCError",
    "RecordRejectedError",
    "TaskSpec",
    "UnauthorizedError",
    "UnavailableError",
]
