"""The web dashboard's table: logins under way, signed-in browsers, and the
requests a browser was shown the plan of and may confirm.

Rows are keyed by the SHA-256 of the random value the browser holds (a cookie,
the OAuth `state`, a draft's id), so that the table, read by anyone with the
database, opens no session. A row lives until `expires_at`; expired rows are
deleted as new ones are written.
"""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import JSON, DateTime, Index, String
from sqlalchemy.orm import Mapped, mapped_column

from dodas.state.models import Base, utcnow


class WebSession(Base):
    """kind "login": a login under way (data: the PKCE verifier, nonce, where to go
    after); "session": a signed-in browser (owner, username, groups as the token
    said at login); "draft": a request whose plan was shown (data: what to do on
    confirmation), tied to its `session`."""

    __tablename__ = "web_sessions"
    __table_args__ = (Index("ix_web_sessions_expires", "expires_at"), Index("ix_web_sessions_session", "session"))

    id: Mapped[str] = mapped_column(String(64), primary_key=True)
    kind: Mapped[str] = mapped_column(String(16))
    session: Mapped[str | None] = mapped_column(String(64), nullable=True)
    owner: Mapped[str | None] = mapped_column(String(512), nullable=True)
    username: Mapped[str | None] = mapped_column(String(255), nullable=True)
    groups: Mapped[list] = mapped_column(JSON, default=list)
    #: the session's CSRF token: every form posts it back
    csrf: Mapped[str] = mapped_column(String(64))
    data: Mapped[dict] = mapped_column(JSON, default=dict)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)
    expires_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
