"""An async client for the Kubo (go-ipfs) RPC API, on httpx.

annot optionally pushes and pins its blocks to a Kubo daemon, and fetches
from it, so content reaches the public IPFS network. This client speaks the
few RPC calls that needs (all ``POST``, as Kubo requires)::

    /api/v0/version                       → {"Version": …}
    /api/v0/id                            → {"ID": …, "Addresses": […]}
    /api/v0/block/put?cid-codec=…&mhtype=sha2-256&pin=…   multipart "file"
    /api/v0/block/get?arg=<cid>           → raw block bytes
    /api/v0/block/stat?arg=<cid>          → {"Key": …, "Size": …}
    /api/v0/pin/add?arg=<cid>             → {"Pins": […]}

Kubo reports failures as HTTP 500 with ``{"Message", "Code", "Type": "error"}``;
those, unreachable daemons, timeouts and answers that do not match what was
asked (a block whose bytes do not hash to its CID) all raise
:class:`KuboError`. Tests inject an ``httpx.AsyncBaseTransport``.
"""

from __future__ import annotations

import json
from types import TracebackType
from typing import Any

import httpx

from node.errors import NodeError
from protocol.cid import (
    DAG_PB,
    RAW,
    cid_bytes,
    cid_from_str,
    cid_to_str,
    normalize_cid,
    verify_block,
)
from protocol.errors import BlockMismatchError, CidError

__all__ = ["DEFAULT_API", "KuboClient", "KuboError", "api_url"]

DEFAULT_API = "/ip4/127.0.0.1/tcp/5001"
_CODEC_NAMES = {RAW: "raw", DAG_PB: "dag-pb", 0x71: "dag-cbor", 0x0129: "dag-json"}


class KuboError(NodeError):
    """A failed Kubo RPC call; ``code`` is Kubo's error code when it sent one."""

    def __init__(
        self,
        text: str,
        *,
        status: int | None = None,
        code: int | None = None,
        message: str | None = None,
    ) -> None:
        super().__init__(text)
        self.message = text if message is None else message  # Kubo's own "Message"
        self.status = status
        self.code = code


def api_url(api: str) -> str:
    """``/ip4/127.0.0.1/tcp/5001`` → ``http://127.0.0.1:5001`` (URLs pass through)."""
    if api.startswith(("http://", "https://")):
        return api.rstrip("/")
    parts = api.strip("/").split("/")
    if len(parts) not in (4, 5) or parts[2] != "tcp" or not parts[3].isdigit():
        raise KuboError(f"unsupported Kubo API address {api!r} (want /ip4/<host>/tcp/<port>)")
    proto, host, _, port = parts[:4]
    scheme = "http"
    if len(parts) == 5:
        if parts[4] not in ("http", "https"):
            raise KuboError(f"unsupported Kubo API address {api!r}")
        scheme = parts[4]
    if proto == "ip6":
        host = f"[{host}]"
    elif proto not in ("ip4", "dns", "dns4", "dns6"):
        raise KuboError(f"unsupported Kubo API address {api!r} (protocol {proto!r})")
    return f"{scheme}://{host}:{port}"


class KuboClient:
    """Async Kubo RPC client; use as ``async with KuboClient(api) as kubo:``."""

    __slots__ = ("_client", "base_url")

    def __init__(
        self,
        api: str = DEFAULT_API,
        *,
        transport: httpx.AsyncBaseTransport | None = None,
        timeout: float = 60.0,
    ) -> None:
        self.base_url = api_url(api)
        self._client = httpx.AsyncClient(
            base_url=self.base_url + "/api/v0",
            transport=transport,
            timeout=timeout,
        )

    async def __aenter__(self) -> KuboClient:
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.aclose()

    async def aclose(self) -> None:
        await self._client.aclose()

    # --- transport ---------------------------------------------------------

    async def _post(
        self, path: str, params: dict[str, str] | None = None, **kwargs: Any
    ) -> httpx.Response:
        try:
            response = await self._client.post(path, params=params, **kwargs)
        except httpx.TimeoutException as exc:
            raise KuboError(f"Kubo at {self.base_url} timed out on {path}: {exc!r}") from None
        except httpx.HTTPError as exc:
            raise KuboError(f"cannot reach Kubo at {self.base_url} ({path}): {exc}") from None
        if response.status_code != 200:
            raise _error_from(path, response)
        return response

    async def _post_json(
        self, path: str, params: dict[str, str] | None = None, **kwargs: Any
    ) -> Any:
        response = await self._post(path, params, **kwargs)
        try:
            return response.json()
        except ValueError:
            raise KuboError(f"Kubo {path} answered with invalid JSON") from None

    # --- API ---------------------------------------------------------------

    async def version(self) -> str:
        """The daemon's version string, e.g. ``"0.29.0"``."""
        body = await self._post_json("/version")
        return str(_field(body, "Version", "/version"))

    async def id(self) -> dict[str, Any]:
        """The daemon's identity: ``ID``, ``PublicKey``, ``Addresses``, ``AgentVersion``…"""
        body = await self._post_json("/id")
        if not isinstance(body, dict) or "ID" not in body:
            raise KuboError("Kubo /id answered without an ID")
        return body

    async def put_block(self, data: bytes, codec: int = RAW, *, pin: bool = True) -> str:
        """Store (and by default pin) a block; return its CID string, checked locally."""
        if codec not in _CODEC_NAMES:
            raise KuboError(f"codec 0x{codec:x} has no Kubo name here")
        params = {
            "cid-codec": _CODEC_NAMES[codec],
            "mhtype": "sha2-256",
            "mhlen": "-1",
            "pin": "true" if pin else "false",
        }
        files = {"file": ("block", data, "application/octet-stream")}
        body = await self._post_json("/block/put", params, files=files)
        key = str(_field(body, "Key", "/block/put"))
        want = cid_bytes(data, codec)
        try:
            got = cid_from_str(key)
        except CidError as exc:
            raise KuboError(f"Kubo /block/put returned a bad CID {key!r}: {exc}") from None
        if got != want:
            raise KuboError(f"Kubo stored the block as {key}, expected {cid_to_str(want)}")
        return cid_to_str(want)

    async def get_block(self, cid: str | bytes, *, offline: bool = False) -> bytes:
        """Fetch a block and verify it against its CID."""
        raw = _cid(cid)
        params = {"arg": cid_to_str(raw)}
        if offline:
            params["offline"] = "true"
        response = await self._post("/block/get", params)
        data = response.content
        try:
            verify_block(raw, data)
        except BlockMismatchError as exc:
            raise KuboError(f"Kubo returned a wrong block: {exc}") from None
        return data

    async def block_size(self, cid: str | bytes) -> int | None:
        """Size of a block the daemon holds locally, or ``None`` if it does not."""
        params = {"arg": cid_to_str(_cid(cid)), "offline": "true"}
        try:
            body = await self._post_json("/block/stat", params)
        except KuboError as exc:
            if exc.status == 500 and _is_not_found(exc.message):
                return None
            raise
        size = _field(body, "Size", "/block/stat")
        if not isinstance(size, int):
            raise KuboError(f"Kubo /block/stat answered a non-integer Size {size!r}")
        return size

    async def has_block(self, cid: str | bytes) -> bool:
        """Whether the daemon holds the block locally (never fetches from the network)."""
        return await self.block_size(cid) is not None

    async def pin(self, cid: str | bytes, *, recursive: bool = True) -> None:
        """Pin a CID (recursively by default: a file root pins the whole file)."""
        key = cid_to_str(_cid(cid))
        params = {"arg": key, "recursive": "true" if recursive else "false"}
        body = await self._post_json("/pin/add", params)
        pins = _field(body, "Pins", "/pin/add")
        if not isinstance(pins, list) or not pins:
            raise KuboError(f"Kubo /pin/add did not confirm the pin of {key}")


def _cid(cid: str | bytes) -> bytes:
    try:
        return cid_from_str(cid) if isinstance(cid, str) else normalize_cid(cid)
    except CidError as exc:
        raise KuboError(f"invalid CID: {exc}") from None


def _field(body: Any, name: str, path: str) -> Any:
    if not isinstance(body, dict) or name not in body:
        raise KuboError(f"Kubo {path} answered without {name!r}")
    return body[name]


def _is_not_found(message: str) -> bool:
    text = message.lower()
    return "not found" in text or "could not find" in text


def _error_from(path: str, response: httpx.Response) -> KuboError:
    status = response.status_code
    message = response.text.strip() or response.reason_phrase
    code: int | None = None
    try:
        body = json.loads(response.content)
    except ValueError:
        body = None
    if isinstance(body, dict) and isinstance(body.get("Message"), str):
        message = body["Message"]
        code = body.get("Code") if isinstance(body.get("Code"), int) else None
    return KuboError(
        f"Kubo {path} failed ({status}): {message}", status=status, code=code, message=message
    )
