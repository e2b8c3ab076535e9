"""Reading uploaded archives (a tarball of a SavedModel, a `.keras` zip) with a limit
on everything the archive claims, so the service's memory stays within a small
multiple of the upload limit whatever the upload says: the decompressed stream (its
size and its compression ratio), every header record (tarfile reads a GNU long
name or a pax header into memory in one piece, so their sizes are checked before
it reads them), the member count, each member's size and the total. Every member
is checked before any byte is written (no absolute paths, no `..`, no links, no
devices, no sparse files); files are written by us with fixed permissions, not by
`tarfile.extractall`. Every way an archive can be broken (truncated, bad CRC, bad
header) is a BundleError, which the service answers with 400."""

from __future__ import annotations

import bz2
import gzip
import io
import lzma
import tarfile
import tempfile
import zipfile
import zlib
from pathlib import Path, PurePosixPath
from typing import Any, BinaryIO

MAX_MEMBERS = 10_000
#: a GNU long name or long link record (a path: PATH_MAX is 4096)
MAX_NAME_RECORD = 16 * 1024
#: a pax extended header (a few paths and numbers)
MAX_PAX_RECORD = 64 * 1024
#: no single read from the unpacked tar is larger (header records are smaller, data is copied in chunks)
MAX_READ = 1024 * 1024
CHUNK = 64 * 1024
#: unpacked bytes per compressed byte; real models compress a few times, bombs about a thousand
MAX_RATIO = 100
#: below this many unpacked bytes the ratio is not judged (small headers and padding compress very well)
RATIO_FLOOR = 1024 * 1024


class BundleError(ValueError):
    """The archive is refused; the message names the member and the reason."""


def _member_path(name: str, what: str = "tarball member") -> PurePosixPath:
    if name.startswith("/") or (len(name) > 1 and name[1] == ":") or "\\" in name or "\0" in name:
        raise BundleError(f"{what} {name[:200]!r}: absolute paths are refused")
    path = PurePosixPath(name)
    if ".." in path.parts:
        raise BundleError(f"{what} {name[:200]!r}: '..' in a path is refused")
    return path


def _opener(data: bytes) -> Any:
    """A streaming decompressor for `data` by its magic bytes (gzip, bzip2, xz), or None for a plain tar."""
    if data[:2] == b"\x1f\x8b":
        return lambda f: gzip.GzipFile(fileobj=f, mode="rb")
    if data[:3] == b"BZh":
        return bz2.BZ2File
    if data[:6] == b"\xfd7zXZ\x00":
        return lzma.LZMAFile
    return None


def _decompress(data: bytes, out: BinaryIO, max_bytes: int) -> None:
    """Write `data`, decompressed, to `out`: at most `max_bytes` (plus a tar's end blocks),
    and at most MAX_RATIO times the upload once past RATIO_FLOOR. Each read yields at most
    CHUNK bytes, so a bomb is stopped at the limit, not after it has been inflated."""
    opener = _opener(data)
    if opener is None:
        out.write(data)
        return
    ceiling = max_bytes + 64 * 1024  # the tar's own headers and end-of-archive blocks
    total = 0
    try:
        with opener(io.BytesIO(data)) as stream:
            while chunk := stream.read(CHUNK):
                total += len(chunk)
                if total > ceiling:
                    raise BundleError(f"the tarball unpacks to more than {max_bytes} bytes")
                if total > RATIO_FLOOR and total > MAX_RATIO * len(data):
                    raise BundleError(f"the tarball's compression ratio is above {MAX_RATIO}:1 "
                                      "(a decompression bomb?)")
                out.write(chunk)
    except (OSError, EOFError, zlib.error, lzma.LZMAError, ValueError) as exc:
        if isinstance(exc, BundleError):
            raise
        raise BundleError(f"the compressed tarball is corrupt or truncated: {type(exc).__name__}") from None


class _Guarded:
    """The unpacked tar file, refusing any read larger than MAX_READ: a second guard, after
    _CheckedInfo's, on header records tarfile would read whole."""

    def __init__(self, f: BinaryIO) -> None:
        self._f = f

    def read(self, n: int = -1) -> bytes:
        if n is None or n < 0 or n > MAX_READ:
            raise BundleError("a tarball header record is too large")
        return self._f.read(n)

    def seek(self, *args: int) -> int:
        return self._f.seek(*args)

    def tell(self) -> int:
        return self._f.tell()


class _CheckedInfo(tarfile.TarInfo):
    """tarfile's header parsing with the size of every record it reads into memory checked
    first. (These hooks are tarfile's own per-type handlers; _Guarded catches the reads
    should a Python version rename them.)"""

    def _proc_gnulong(self, archive: Any) -> Any:
        if self.size > MAX_NAME_RECORD or self.size < 0:
            raise BundleError(f"a GNU long name record of {self.size} bytes is refused "
                              f"(at most {MAX_NAME_RECORD})")
        return super()._proc_gnulong(archive)

    def _proc_pax(self, archive: Any) -> Any:
        if self.size > MAX_PAX_RECORD or self.size < 0:
            raise BundleError(f"a pax header of {self.size} bytes is refused (at most {MAX_PAX_RECORD})")
        return super()._proc_pax(archive)

    def _sparse(self, *args: Any) -> Any:
        raise BundleError("sparse files are refused in a tarball")

    _proc_sparse = _proc_gnusparse_00 = _proc_gnusparse_01 = _proc_gnusparse_10 = _sparse


def _check_member(member: tarfile.TarInfo, max_bytes: int) -> None:
    if member.issym() or member.islnk():
        raise BundleError(f"tarball member {member.name[:200]!r}: links are refused")
    if member.type not in (tarfile.REGTYPE, tarfile.AREGTYPE, tarfile.DIRTYPE):
        raise BundleError(f"tarball member {member.name[:200]!r}: only files and directories are accepted")
    _member_path(member.name)
    if member.size < 0 or member.size > max_bytes:
        raise BundleError(f"tarball member {member.name[:200]!r} is larger than {max_bytes} bytes")


def unpack(data: bytes, dest: Path, max_bytes: int) -> None:
    """Unpack the (optionally gzip, bzip2 or xz compressed) tarball `data` into the empty `dest`."""
    with tempfile.TemporaryFile(dir=dest.parent) as raw:  # on disk: the unpacked tar is up to max_bytes
        _decompress(data, raw, max_bytes)
        raw.seek(0)
        try:
            tar = tarfile.open(fileobj=_Guarded(raw), mode="r:", tarinfo=_CheckedInfo)  # type: ignore[arg-type]
        except (tarfile.TarError, EOFError, OSError, ValueError) as exc:
            if isinstance(exc, BundleError):
                raise
            raise BundleError("not a tar or tar.gz archive") from None
        with tar:
            members = _members(tar, max_bytes)
            _extract(tar, members, dest)


def _members(tar: tarfile.TarFile, max_bytes: int) -> list[tarfile.TarInfo]:
    """Every member, checked, before any is written."""
    members: list[tarfile.TarInfo] = []
    total = 0
    try:
        for member in tar:  # each step reads one member's headers
            members.append(member)
            if len(members) > MAX_MEMBERS:
                raise BundleError(f"the tarball has more than {MAX_MEMBERS} members")
            _check_member(member, max_bytes)
            total += member.size if member.isfile() else 0
            if total > max_bytes:
                raise BundleError(f"the tarball unpacks to more than {max_bytes} bytes")
    except (tarfile.TarError, EOFError, OSError, ValueError, UnicodeError) as exc:
        if isinstance(exc, BundleError):
            raise
        raise BundleError(f"corrupt tarball: {type(exc).__name__}") from None
    return members


def _extract(tar: tarfile.TarFile, members: list[tarfile.TarInfo], dest: Path) -> None:
    root = dest.resolve()
    for member in members:
        target = (root / _member_path(member.name)).resolve()
        if target != root and root not in target.parents:
            raise BundleError(f"tarball member {member.name[:200]!r} points outside the model directory")
        try:
            if member.isdir():
                target.mkdir(parents=True, exist_ok=True)
                continue
            target.parent.mkdir(parents=True, exist_ok=True)
            src = tar.extractfile(member)
            if src is None:
                raise BundleError(f"tarball member {member.name[:200]!r} cannot be read")
            with src, open(target, "wb") as out:
                _copy(src, out, member.size)
            target.chmod(0o644)
        except (OSError, tarfile.TarError, EOFError) as exc:  # a file where a directory is, a truncated member
            raise BundleError(f"tarball member {member.name[:200]!r} cannot be unpacked: "
                              f"{type(exc).__name__}") from None


def _copy(src: Any, out: BinaryIO, size: int) -> None:
    left = size
    while left > 0:
        chunk = src.read(min(CHUNK, left))
        if not chunk:
            raise BundleError("a tarball member is truncated")
        out.write(chunk)
        left -= len(chunk)


def check_zip(path: Path, max_bytes: int, max_entry: int | None = None) -> None:
    """Check the zip archive `path` (a `.keras` file) before anything reads it: at most
    MAX_MEMBERS entries, no absolute or `..` names, no encryption, declared sizes within
    `max_bytes` in total (and `max_entry` each), a sane compression ratio; then every entry
    read as a stream, so a declared size that lies, a bad CRC or a truncation is found
    here with at most CHUNK bytes in memory."""
    try:
        with zipfile.ZipFile(path) as zf:
            infos = zf.infolist()
            if len(infos) > MAX_MEMBERS:
                raise BundleError(f"{path.name} has more than {MAX_MEMBERS} entries")
            total = 0
            for info in infos:
                _member_path(info.filename, f"{path.name} entry")
                if info.flag_bits & 0x1:
                    raise BundleError(f"{path.name} entry {info.filename[:200]!r} is encrypted")
                if (info.external_attr >> 16) & 0o170000 not in (0, 0o100000, 0o040000):
                    raise BundleError(f"{path.name} entry {info.filename[:200]!r}: only files and directories "
                                      "are accepted (no links or devices)")
                limit = max_entry if max_entry is not None else max_bytes
                total += info.file_size
                if info.file_size > limit or total > max_bytes:
                    raise BundleError(f"{path.name} unpacks to more than {min(limit, max_bytes)} bytes "
                                      f"(entry {info.filename[:200]!r})")
                if info.file_size > RATIO_FLOOR and info.file_size > MAX_RATIO * max(info.compress_size, 1):
                    raise BundleError(f"{path.name} entry {info.filename[:200]!r} has a compression ratio above "
                                      f"{MAX_RATIO}:1 (a decompression bomb?)")
            for info in infos:
                read = 0
                with zf.open(info) as entry:  # stops at the declared size; checks the CRC at the end
                    while chunk := entry.read(CHUNK):
                        read += len(chunk)
                        if read > info.file_size:
                            raise BundleError(f"{path.name} entry {info.filename[:200]!r} is longer than it says")
    except (zipfile.BadZipFile, zipfile.LargeZipFile, EOFError, OSError, zlib.error, lzma.LZMAError,
            NotImplementedError, RuntimeError, ValueError) as exc:
        if isinstance(exc, BundleError):
            raise
        raise BundleError(f"{path.name} is not a valid zip archive: {type(exc).__name__}: "
                          f"{str(exc)[:200]}") from None


def model_root(dest: Path) -> Path:
    """Where the bundle's model is: `dest` itself, or its only top directory
    (`tar czf m.tar.gz mymodel/`, as TFaaS's recipe makes it). That place holds
    params.json, or (TFaaS's README: `tar cfz model.tar.gz model`, no params.json)
    the model itself, whose params the service then derives from it."""
    def has_model(d: Path) -> bool:
        return (d / "params.json").is_file() or (d / "saved_model.pb").is_file() or \
            any(p.suffix in (".keras", ".onnx") and p.is_file() for p in d.iterdir())

    if has_model(dest):
        return dest
    entries = [p for p in dest.iterdir()]
    if len(entries) == 1 and entries[0].is_dir() and has_model(entries[0]):
        return entries[0]
    raise BundleError("the bundle has no params.json and no model (saved_model.pb, a .keras or an .onnx file) "
                      "at its top or in its one top directory")
