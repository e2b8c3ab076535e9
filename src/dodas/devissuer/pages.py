"""The development issuer's few HTML pages. NOT FOR PRODUCTION.

Everything that comes from a request or the configuration goes through
`html.escape` (with quotes) before it is put in a page: the pages are plain,
but not injectable. There is no CSRF token: this is a development tool on
loopback.
"""

from __future__ import annotations

from html import escape

from fastapi.responses import HTMLResponse

BANNER = "Development issuer for dodas: NOT FOR PRODUCTION"


def e(value: object) -> str:
    return escape(str(value), quote=True)


def page(title: str, body: str, status: int = 200) -> HTMLResponse:
    """A page; `body` is HTML built with `e()` around every value."""
    html = (f"<!doctype html><html><head><meta charset='utf-8'><title>{e(title)}</title>"
            f"<style>body{{font-family:sans-serif;max-width:34em;margin:3em auto}}"
            f".banner{{background:#b00;color:#fff;padding:.4em}}label{{display:block;margin:.6em 0}}</style>"
            f"</head><body><p class='banner'>{e(BANNER)}</p><h1>{e(title)}</h1>{body}</body></html>")
    return HTMLResponse(html, status_code=status, headers={"Cache-Control": "no-store",
                                                           "X-Frame-Options": "DENY"})


def message(title: str, text: str, status: int = 200) -> HTMLResponse:
    return page(title, f"<p>{e(text)}</p>", status)


def login_form(action: str, hidden: dict[str, str], error: str | None = None, *, user_code: str | None = None,
               deny: bool = False, status: int = 200) -> HTMLResponse:
    """A username/password form posting to `action`, carrying `hidden` fields along."""
    parts = [f"<p style='color:#b00'>{e(error)}</p>" if error else "",
             f"<form method='post' action='{e(action)}'>"]
    parts += [f"<input type='hidden' name='{e(k)}' value='{e(v)}'>" for k, v in hidden.items()]
    if user_code is not None:
        parts.append(f"<label>Code <input name='user_code' value='{e(user_code)}' autocomplete='off'></label>")
    parts.append("<label>Username <input name='username' autocomplete='username'></label>"
                 "<label>Password <input name='password' type='password' autocomplete='current-password'></label>"
                 "<button name='action' value='approve'>Sign in and allow</button>")
    if deny:
        parts.append(" <button name='action' value='deny'>Deny</button>")
    parts.append("</form>")
    return page("Sign in", "".join(parts), status)
