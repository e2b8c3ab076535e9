"""The dashboard as a browser without a script speaks to it: one HTTP client
per person (its cookies kept), redirects followed one at a time, the login
through the development issuer's authorization page, and the forms' hidden
values (CSRF token, a plan's draft) read from the pages. For tests that must
reach the dashboard's forms with a real login (test_server_tenancy.py)."""

from __future__ import annotations

import re
from typing import Any
from urllib.parse import parse_qs, urlsplit

import httpx

TIMEOUT_S = 60.0


class Browser:
    """One person's browser: cookies, redirects followed by hand."""

    def __init__(self, url: str) -> None:
        self.url = url
        self.http = httpx.Client(base_url=url, timeout=TIMEOUT_S, follow_redirects=False)

    def get(self, path: str, **kw: Any) -> httpx.Response:
        return self.follow(self.http.get(path, **kw))

    def post(self, path: str, data: dict[str, str], **kw: Any) -> httpx.Response:
        return self.follow(self.http.post(path, data=data, **kw))

    def follow(self, r: httpx.Response) -> httpx.Response:
        while r.status_code in (302, 303, 307):
            target = r.headers["location"]
            r = self.http.get(target if target.startswith("http") else self.url + target)
        return r

    def csrf(self) -> str:
        """The session's CSRF token, as the catalogue page's forms carry it."""
        page = self.get("/web/deployments")
        return hidden(page, "csrf")

    def close(self) -> None:
        self.http.close()


def hidden(page: httpx.Response, name: str) -> str:
    """The value of the page's hidden input `name`."""
    found = re.search(rf'name="{re.escape(name)}" value="([^"]+)"', page.text)
    assert found, f"no {name} in the page ({page.status_code}): {page.text[-1500:]}"
    return found.group(1)


def log_in(url: str, user: str) -> Browser:
    """A browser signed in as `user` (password "<user>-pw") through the issuer's
    authorization page, the callback opened by the same browser."""
    b = Browser(url)
    r = b.http.get("/web/login", params={"next": "/web/deployments"})
    while r.status_code in (302, 303, 307) and urlsplit(r.headers["location"]).path != "/authorize":
        target = r.headers["location"]
        r = b.http.get(target if target.startswith("http") else url + target)
    assert r.status_code in (302, 303, 307), (r.status_code, r.text[-500:])
    authorize = urlsplit(r.headers["location"])
    query = {k: v[0] for k, v in parse_qs(authorize.query).items()}
    r = b.http.post(f"{authorize.scheme}://{authorize.netloc}/authorize",
                    data={**query, "username": user, "password": f"{user}-pw"})
    assert r.status_code in (302, 303), r.text
    r = b.follow(b.http.get(r.headers["location"]))
    assert r.status_code == 200 and "/web/login" not in str(r.url), (r.status_code, r.text[-500:])
    return b
