"""Decompression bombs and broken archives for the inference service's hostile-upload
tests, made here byte by byte and streamed: 1.5 GiB of zeros is deflated once, in
1 MiB steps (1.5 MB of output), and reused as the tail of every bomb (a gzip file
may be several gzip members one after the other; a zip entry's data is the same raw
deflate stream), so no test holds the inflated size in memory."""

from __future__ import annotations

import functools
import gzip
import io
import os
import struct
import tarfile
import zipfile
import zlib

#: what every bomb claims to unpack to
BOMB_BYTES = 1536 * 1024 * 1024
_MIB = 1024 * 1024


@functools.cache
def zeros_member() -> bytes:
    """One gzip member holding BOMB_BYTES zero bytes."""
    deflate = zlib.compressobj(9, zlib.DEFLATED, 31)
    zeros = bytes(_MIB)
    parts = [deflate.compress(zeros) for _ in range(BOMB_BYTES // _MIB)]
    parts.append(deflate.flush())
    return b"".join(parts)


def header(name: str, kind: bytes, size: int) -> bytes:
    """One raw 512-byte ustar header of type `kind` claiming `size` bytes of data."""
    info = tarfile.TarInfo(name)
    info.type, info.size = kind, size
    return info.tobuf(tarfile.GNU_FORMAT)


def gzip_bomb(head: bytes) -> bytes:
    """`head` (tar headers) followed by BOMB_BYTES zeros, gzip-compressed (two members)."""
    return gzip.compress(head) + zeros_member()


def many_members(count: int) -> bytes:
    """A tar.gz of `count` empty files (random names, so it does not compress like a bomb)."""
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w:gz") as tar:
        for _ in range(count):
            tar.addfile(tarfile.TarInfo(os.urandom(12).hex()), io.BytesIO(b""))
    return buf.getvalue()


def _zip_entry(name: str, raw: bytes, crc: int, size: int, offset: int) -> tuple[bytes, bytes]:
    """A deflated zip entry's local header + data, and its central directory record."""
    fname = name.encode()
    local = struct.pack("<4s5H3L2H", b"PK\x03\x04", 20, 0, 8, 0, 0x21, crc, len(raw), size, len(fname), 0)
    central = struct.pack("<4s6H3L5H2L", b"PK\x01\x02", 20, 20, 0, 8, 0, 0x21, crc, len(raw), size, len(fname),
                          0, 0, 0, 0, 0o100644 << 16, offset)
    return local + fname + raw, central + fname


def zip_of(entries: list[tuple[str, bytes, int, int]]) -> bytes:
    """A zip archive of (name, raw deflate data, crc32, declared size) entries, written by hand
    so the declared sizes are whatever the test says."""
    body, directory = b"", b""
    for name, raw, crc, size in entries:
        local, central = _zip_entry(name, raw, crc, size, len(body))
        body += local
        directory += central
    end = struct.pack("<4s4H2LH", b"PK\x05\x06", 0, 0, len(entries), len(entries), len(directory), len(body), 0)
    return body + directory + end


def deflated(data: bytes) -> tuple[bytes, int, int]:
    """(raw deflate data, crc32, size) of `data`."""
    deflate = zlib.compressobj(9, zlib.DEFLATED, -15)
    return deflate.compress(data) + deflate.flush(), zlib.crc32(data), len(data)


def keras_bomb() -> bytes:
    """A .keras archive whose config.json inflates to BOMB_BYTES (declared truthfully)."""
    member = zeros_member()
    crc, size = struct.unpack("<2L", member[-8:])  # the gzip trailer: crc32 and size of the zeros
    meta = deflated(b'{"keras_version": "3.0.0"}')
    return zip_of([("metadata.json", *meta), ("config.json", member[10:-8], crc, size)])


def lying_zip(real: bytes) -> bytes:
    """The .keras archive `real` with every entry's declared size rewritten to 100 bytes,
    and config.json's data replaced by 64 MiB of deflated zeros."""
    with zipfile.ZipFile(io.BytesIO(real)) as zf:
        entries = []
        for info in zf.infolist():
            data = zf.read(info) if info.filename != "config.json" else bytes(64 * _MIB)
            raw, crc, _ = deflated(data)
            entries.append((info.filename, raw, crc, 100))
    return zip_of(entries)


def bad_crc_zip(real: bytes) -> bytes:
    """The .keras archive `real` with config.json's CRC wrong."""
    with zipfile.ZipFile(io.BytesIO(real)) as zf:
        entries = []
        for info in zf.infolist():
            raw, crc, size = deflated(zf.read(info))
            entries.append((info.filename, raw, crc ^ (0xDEAD if info.filename == "config.json" else 0), size))
    return zip_of(entries)


def png_bomb(width: int, height: int) -> bytes:
    """A grey PNG of width x height zero pixels, its rows deflated one at a time."""
    def chunk(kind: bytes, body: bytes) -> bytes:
        return struct.pack(">I", len(body)) + kind + body + struct.pack(">I", zlib.crc32(kind + body))

    deflate = zlib.compressobj(9)
    row = bytes(width + 1)  # filter byte 0, then the row's pixels
    idat = b"".join(deflate.compress(row) for _ in range(height)) + deflate.flush()
    ihdr = struct.pack(">IIBBBBB", width, height, 8, 0, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IDAT", idat) + chunk(b"IEND", b"")
