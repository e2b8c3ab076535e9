"""Who may do what: uploads, deletes and setting the default model need the bearer
token or a verified client certificate whose subject DN is in the allow-list;
reads need nothing with open reads, else the token or any verified client
certificate (one the client CA signed). A request with no credential is 401; a
verified certificate whose DN is not allowed to write is 403, naming the DN, so
the user knows which identity the server saw."""

from __future__ import annotations

from collections.abc import Iterable

from starlette.exceptions import HTTPException
from starlette.requests import Request

from .auth import check_bearer
from .tls import PEER_DN


class Access:
    """The service's access rules, given its token, open reads and DN allow-list."""

    def __init__(self, token: str, open_reads: bool, writer_dns: Iterable[str] = ()) -> None:
        self.token, self.open_reads, self.writer_dns = token, open_reads, frozenset(writer_dns)

    @staticmethod
    def peer_dn(request: Request) -> str | None:
        """The subject DN of the verified client certificate of the request's connection."""
        state = request.scope.get("state") or {}
        dn = state.get(PEER_DN)
        return dn if isinstance(dn, str) else None

    def need_write(self, request: Request) -> None:
        if check_bearer(request.headers.get("authorization"), self.token):
            return
        dn = self.peer_dn(request)
        if dn is not None and dn in self.writer_dns:
            return
        if dn is not None:
            raise HTTPException(403, f"the client certificate {dn} may not upload or delete models "
                                     "(it is not in the server's DN allow-list)")
        raise HTTPException(401, "a valid bearer token (Authorization: Bearer TOKEN) or an allowed client "
                                 "certificate is needed")

    def need_read(self, request: Request) -> None:
        if self.open_reads or self.peer_dn(request) is not None:
            return
        if not check_bearer(request.headers.get("authorization"), self.token):
            raise HTTPException(401, "a valid bearer token (Authorization: Bearer TOKEN) or a client "
                                     "certificate is needed")
