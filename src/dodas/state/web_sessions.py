"""The web dashboard's sessions in the state database, shared by every server
process (a browser may reach any of them).

A browser holds only random values (the session cookie, a login's `state`, a
draft's id); rows are found by their SHA-256. Nothing here knows HTTP.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from typing import Any

from sqlalchemy import delete, select

from dodas.state import db
from dodas.state.web_models import WebSession


@dataclass(frozen=True)
class Session:
    """A signed-in browser: who, as the issuer's token said at login."""

    id: str  # the row's key (the digest of the cookie), never the cookie itself
    owner: str
    username: str
    groups: frozenset[str]
    csrf: str
    expires_at: datetime


def digest(value: str) -> str:
    return hashlib.sha256(value.encode("utf-8")).hexdigest()


def _now() -> datetime:
    return datetime.now(timezone.utc)


def _aware(t: datetime) -> datetime:
    return t if t.tzinfo else t.replace(tzinfo=timezone.utc)


def _write(kind: str, seconds: float, *, data: dict[str, Any] | None = None, session: str | None = None,
           owner: str | None = None, username: str | None = None, groups: list[str] | None = None,
           csrf: str | None = None) -> str:
    """A new row; returns the random value that finds it (given to the browser)."""
    value = secrets.token_urlsafe(32)
    now = _now()
    with db.sessions()() as s:
        s.execute(delete(WebSession).where(WebSession.expires_at < now))
        s.add(WebSession(id=digest(value), kind=kind, session=session, owner=owner, username=username,
                         groups=list(groups or []), csrf=csrf or secrets.token_urlsafe(32), data=data or {},
                         created_at=now, expires_at=now + timedelta(seconds=seconds)))
        s.commit()
    return value


def _take(value: str, kind: str, session: str | None = None, *, keep: bool = False) -> WebSession | None:
    """The live row `value` finds, of `kind` (and of `session`, for a draft);
    deleted unless `keep`, so that a login's state or a draft is used once."""
    if not value:
        return None
    with db.sessions()() as s:
        row = s.get(WebSession, digest(value))
        if row is None or row.kind != kind or _aware(row.expires_at) < _now() or \
                (session is not None and row.session != session):
            return None
        s.expunge(row)
        if not keep:
            s.execute(delete(WebSession).where(WebSession.id == row.id))
            s.commit()
        return row


# -- logins under way -----------------------------------------------------------------------
def start_login(data: dict[str, Any], browser: str, seconds: float = 600) -> str:
    """Record a login under way (the PKCE verifier, the nonce, where to go after),
    bound to `browser`, the random value of the browser's pre-login cookie (kept
    by its digest); returns the OAuth `state`."""
    return _write("login", seconds, data={**data, "browser": digest(browser)})


def finish_login(state: str, browser: str | None) -> dict[str, Any] | None:
    """The login `state` started, once, and only in the browser that started it:
    a replayed or unknown state, or one brought back by another browser (whose
    pre-login cookie differs), is None. A state brought by the wrong browser is
    not spent, so that a stray visit cannot cancel its owner's login."""
    row = _take(state, "login", keep=True)
    if row is None or not browser or not hmac.compare_digest(str(row.data.get("browser", "")), digest(browser)):
        return None
    with db.sessions()() as s:
        spent = s.execute(delete(WebSession).where(WebSession.id == row.id)).rowcount
        s.commit()
    return dict(row.data) if spent == 1 else None  # two callbacks at once: one wins


# -- signed-in browsers ------------------------------------------------------------------------
def open_session(owner: str, username: str, groups: list[str], hours: float) -> str:
    """A new session; returns the cookie's value."""
    return _write("session", hours * 3600, owner=owner, username=username, groups=groups)


def session(cookie: str | None) -> Session | None:
    row = _take(cookie or "", "session", keep=True)
    if row is None:
        return None
    return Session(row.id, row.owner or "", row.username or "", frozenset(row.groups or ()), row.csrf,
                   _aware(row.expires_at))


def close_session(cookie: str | None) -> None:
    """Log out: the session and its drafts go."""
    if not cookie:
        return
    key = digest(cookie)
    with db.sessions()() as s:
        s.execute(delete(WebSession).where((WebSession.id == key) | (WebSession.session == key)))
        s.commit()


# -- drafts: a request whose plan was shown, to be confirmed ----------------------------------------
def save_draft(session_id: str, data: dict[str, Any], seconds: float = 1800) -> str:
    """Keep what the browser will confirm (inputs, secret ones too, stay here, not in its page)."""
    return _write("draft", seconds, data=data, session=session_id)


def draft(session_id: str, value: str, *, take: bool = False) -> dict[str, Any] | None:
    row = _take(value, "draft", session_id, keep=not take)
    return dict(row.data) if row else None


def count() -> int:
    """Rows of every kind (for tests and metrics)."""
    with db.sessions()() as s:
        return len(list(s.scalars(select(WebSession.id))))
