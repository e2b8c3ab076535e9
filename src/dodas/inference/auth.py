"""The upload token: from a 0600 file or the server process's environment, never
its command line (visible to every local user in `ps`); compared in constant time."""

from __future__ import annotations

import hmac
import os
import stat
from pathlib import Path

TOKEN_ENV = "DODAS_INFERENCE_TOKEN"


class TokenError(RuntimeError):
    """The token cannot be read, or is not safe to use."""


def load_token(token_file: Path | None) -> str:
    """The bearer token: `token_file` (owner-only permissions) or $DODAS_INFERENCE_TOKEN."""
    if token_file is not None:
        try:
            st = token_file.stat()
        except OSError as exc:
            raise TokenError(f"cannot read the token file {token_file}: {exc.strerror}") from None
        if st.st_mode & (stat.S_IRWXG | stat.S_IRWXO):
            raise TokenError(f"the token file {token_file} is readable by others "
                             f"(mode {stat.S_IMODE(st.st_mode):04o}); chmod 600 it")
        token = token_file.read_text().strip()
    else:
        token = os.environ.get(TOKEN_ENV, "").strip()
        if not token:
            raise TokenError(f"no token: give --token-file FILE (mode 0600) or set {TOKEN_ENV}")
    if len(token) < 16:
        raise TokenError("the token is shorter than 16 characters")
    return token


def check_bearer(header: str | None, token: str) -> bool:
    """Whether an Authorization header carries `Bearer <token>` (constant time)."""
    if not header or not header.startswith("Bearer "):
        return False
    return hmac.compare_digest(header[len("Bearer "):].strip().encode(), token.encode())
