"""The web app's files, packaged with annot under ``node/gateway/static/``.

They are read once into memory (the app is small, and gzipped once here) and
served by exact path only, so no request path ever reaches the file system.
Only known extensions are served, each with a fixed Content-Type.
"""

from __future__ import annotations

import gzip
import hashlib
from dataclasses import dataclass
from pathlib import Path

STATIC_DIR = Path(__file__).with_name("static")
TYPES = {
    ".html": b"text/html; charset=utf-8",
    ".js": b"text/javascript; charset=utf-8",
    ".css": b"text/css; charset=utf-8",
    ".svg": b"image/svg+xml",
    ".png": b"image/png",
}
LICENSE_TYPE = b"text/plain; charset=utf-8"
PAGES = {"/": "/index.html", "/requester": "/requester.html", "/operator": "/operator.html"}


@dataclass(frozen=True, slots=True)
class Asset:
    body: bytes
    content_type: bytes
    etag: bytes
    gzipped: bytes  # served to clients that accept gzip


def load_assets(root: Path = STATIC_DIR) -> dict[str, Asset]:
    """URL path → asset, for every servable file under ``root``."""
    assets: dict[str, Asset] = {}
    for path in sorted(root.rglob("*")):
        if not path.is_file():
            continue
        ctype = LICENSE_TYPE if path.name == "LICENSE" else TYPES.get(path.suffix)
        if ctype is None:
            continue
        body = path.read_bytes()
        etag = b'"' + hashlib.sha256(body).hexdigest()[:20].encode() + b'"'
        assets["/" + path.relative_to(root).as_posix()] = Asset(
            body, ctype, etag, gzip.compress(body, 9, mtime=0))
    for alias, target in PAGES.items():
        if target in assets:
            assets[alias] = assets[target]
    return assets
