"""Unpacking an uploaded tarball safely: every member checked before any byte is
written (no absolute paths, no `..`, no symlinks or hardlinks, no devices), the
unpacked size and member count bounded (a gzip bomb stops at the limit), files
written by us with fixed permissions rather than by `tarfile.extractall`."""

from __future__ import annotations

import io
import shutil
import tarfile
from pathlib import Path, PurePosixPath

MAX_MEMBERS = 10_000


class BundleError(ValueError):
    """The tarball is refused; the message names the member and the reason."""


def _member_path(member: tarfile.TarInfo) -> PurePosixPath:
    name = member.name
    if name.startswith("/") or (len(name) > 1 and name[1] == ":") or "\\" in name:
        raise BundleError(f"tarball member {name!r}: absolute paths are refused")
    path = PurePosixPath(name)
    if ".." in path.parts:
        raise BundleError(f"tarball member {name!r}: '..' in a path is refused")
    return path


def unpack(data: bytes, dest: Path, max_bytes: int) -> None:
    """Unpack the (optionally gzip-compressed) tarball `data` into the empty `dest`."""
    try:
        tar = tarfile.open(fileobj=io.BytesIO(data), mode="r:*")
    except (tarfile.TarError, EOFError, OSError) as exc:
        raise BundleError(f"not a tar or tar.gz archive: {exc}") from None
    total = 0
    with tar:
        try:
            members = []
            for member in tar:  # reading headers walks (and decompresses) the stream: bound it
                members.append(member)
                if len(members) > MAX_MEMBERS:
                    raise BundleError(f"the tarball has more than {MAX_MEMBERS} members")
                if member.issym() or member.islnk():
                    raise BundleError(f"tarball member {member.name!r}: links are refused")
                if not (member.isfile() or member.isdir()):
                    raise BundleError(f"tarball member {member.name!r}: only files and directories are accepted")
                _member_path(member)
                total += member.size if member.isfile() else 0
                if total > max_bytes:
                    raise BundleError(f"the tarball unpacks to more than {max_bytes} bytes")
        except (tarfile.TarError, EOFError, OSError, ValueError) as exc:
            if isinstance(exc, BundleError):
                raise
            raise BundleError(f"corrupt tarball: {exc}") from None
        root = dest.resolve()
        for member in members:
            target = (root / _member_path(member)).resolve()
            if target != root and root not in target.parents:
                raise BundleError(f"tarball member {member.name!r} points outside the model directory")
            if member.isdir():
                target.mkdir(parents=True, exist_ok=True)
                continue
            target.parent.mkdir(parents=True, exist_ok=True)
            src = tar.extractfile(member)
            if src is None:
                raise BundleError(f"tarball member {member.name!r} cannot be read")
            with src, open(target, "wb") as out:
                shutil.copyfileobj(src, out)
            target.chmod(0o644)


def model_root(dest: Path) -> Path:
    """Where the bundle's params.json is: `dest` itself, or its only top directory
    (`tar czf m.tar.gz mymodel/`, as TFaaS's recipe makes it)."""
    if (dest / "params.json").is_file():
        return dest
    entries = [p for p in dest.iterdir()]
    if len(entries) == 1 and entries[0].is_dir() and (entries[0] / "params.json").is_file():
        return entries[0]
    raise BundleError("the bundle has no params.json (at its top, or in its one top directory)")
