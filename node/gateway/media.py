"""What an item is, from its first bytes: the Content-Type the gateway serves it as.

Only types a browser renders inertly are named (images, audio, video, plain
text); anything else, HTML and SVG included, is ``application/octet-stream``
and served as a download. Binary PGM/PPM (the demo's images, which browsers do
not display) can be converted to PNG for preview.
"""

from __future__ import annotations

import struct
import zlib

OCTET = "application/octet-stream"
TEXT = "text/plain; charset=utf-8"
NETPBM = "image/x-portable-anymap"
_MAGIC: tuple[tuple[int, bytes, str], ...] = (
    (0, b"\x89PNG\r\n\x1a\n", "image/png"),
    (0, b"\xff\xd8\xff", "image/jpeg"),
    (0, b"GIF87a", "image/gif"),
    (0, b"GIF89a", "image/gif"),
    (0, b"OggS", "audio/ogg"),
    (0, b"fLaC", "audio/flac"),
    (0, b"ID3", "audio/mpeg"),
    (0, b"\x1aE\xdf\xa3", "video/webm"),
    (4, b"ftyp", "video/mp4"),
)


def sniff(head: bytes) -> str:
    """The served Content-Type of content starting with ``head`` (its first KiBs)."""
    for offset, magic, ctype in _MAGIC:
        if head[offset:offset + len(magic)] == magic:
            return ctype
    if head[:4] == b"RIFF" and head[8:12] in (b"WEBP", b"WAVE"):
        return "image/webp" if head[8:12] == b"WEBP" else "audio/wav"
    if head[:2] in (b"\xff\xfb", b"\xff\xf3", b"\xff\xf2"):
        return "audio/mpeg"
    if head[:2] in (b"P5", b"P6") and head[2:3] in (b" ", b"\n", b"\r", b"\t"):
        return NETPBM
    if b"\x00" not in head:
        try:
            head.decode("utf-8")
        except UnicodeDecodeError as exc:
            if exc.start < len(head) - 3:  # not just a character cut at the end
                return OCTET
        return TEXT
    return OCTET


def _netpbm_header(data: bytes) -> tuple[bytes, int, int, int, int]:
    fields: list[int] = []
    i = 2
    while len(fields) < 3:
        while i < len(data) and data[i:i + 1].isspace():
            i += 1
        if data[i:i + 1] == b"#":
            while i < len(data) and data[i:i + 1] != b"\n":
                i += 1
            continue
        j = i
        while j < len(data) and data[j:j + 1].isdigit():
            j += 1
        if j == i:
            raise ValueError("not a binary PGM/PPM header")
        fields.append(int(data[i:j]))
        i = j
    return data[:2], fields[0], fields[1], fields[2], i + 1


def netpbm_to_png(data: bytes) -> bytes:
    """A PNG of a binary 8-bit PGM (P5) or PPM (P6); ``ValueError`` if it is neither."""
    magic, width, height, maxval, start = _netpbm_header(data)
    channels = 1 if magic == b"P5" else 3
    if not (0 < width <= 16384 and 0 < height <= 16384 and 0 < maxval < 256):
        raise ValueError("only 8-bit PGM/PPM up to 16384x16384 are previewed")
    row = width * channels
    pixels = data[start:start + row * height]
    if len(pixels) != row * height:
        raise ValueError("PGM/PPM is shorter than its header says")
    raw = b"".join(b"\x00" + pixels[y * row:(y + 1) * row] for y in range(height))

    def chunk(tag: bytes, body: bytes) -> bytes:
        return (struct.pack(">I", len(body)) + tag + body
                + struct.pack(">I", zlib.crc32(tag + body) & 0xFFFFFFFF))

    ihdr = struct.pack(">IIBBBBB", width, height, 8, 0 if channels == 1 else 2, 0, 0, 0)
    return (b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IDAT", zlib.compress(raw))
            + chunk(b"IEND", b""))
