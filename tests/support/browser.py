"""A real browser in a test: Debian's Chromium, headless, driven by Selenium
through Debian's chromedriver, both named by path, so Selenium Manager (which
would download a driver) is never asked. `python3 make.py test` installs the
two packages (make.py's TEST_DEBS); without them a browser test skips, and in CI
(`CI` set) tests/conftest.py turns that skip into a failure.

    need_chromium()                        # skip here, fail in CI, when the browser is missing
    driver = chrome(width=1280, height=900)  # a fresh profile each time; driver.quit() removes it
    login(driver, base_url, "alice", "alice-pw")  # the dashboard's login through the issuer's page
    wait_for(driver, lambda d: "Deployments" in d.title, message="the dashboard's home")
    text_of(driver, "h1")                  # element(driver, css) for the element itself
    screenshot(driver, shot_path("home.png", tmp_path))  # the full page, however long
    fill_login(driver, "alice", "alice-pw")  # the issuer's form, on the page the browser is at
    with scripts_off(driver): ...          # pages opened inside run no JavaScript
    contrasts(driver, ".status")           # each one's text contrast, from the computed styles

Waits poll with generous timeouts: a test says what must happen, never how fast.
"""

from __future__ import annotations

import os
import shutil
import tempfile
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar
from urllib.parse import urlsplit

import pytest

from support.paths import ROOT

if TYPE_CHECKING:
    from selenium.webdriver.remote.webdriver import WebDriver

CHROMIUM = Path("/usr/bin/chromium")
CHROMEDRIVER = Path("/usr/bin/chromedriver")
TIMEOUT_S = 60.0
#: where screenshots meant for the documentation go (see `shot_path`)
SCREENSHOTS = ROOT / "docs" / "screenshots"

#: the development issuer's login page (dodas/devissuer/pages.py login_form): a form
#: posting to /authorize, its fields named, not id'd
USERNAME_FIELD = "input[name='username']"
PASSWORD_FIELD = "input[name='password']"
SIGN_IN_BUTTON = "button[name='action'][value='approve']"
LOGIN_ERROR = "Wrong username or password."

#: Chromium features that talk to Google's servers on their own
QUIET_FEATURES = ("AutofillServerCommunication", "PasswordLeakDetection", "OptimizationHints", "Translate",
                  "MediaRouter", "DialMediaRouteProvider", "CertificateTransparencyComponentUpdater")

T = TypeVar("T")


def need_chromium() -> None:
    """Skip the test when Chromium, chromedriver or Selenium is missing (a failure in CI)."""
    missing = [str(p) for p in (CHROMIUM, CHROMEDRIVER) if not os.access(p, os.X_OK)]
    try:
        import selenium  # noqa: F401
    except ImportError:
        missing.append("the selenium package (pip install -e '.[test]')")
    if missing:
        pytest.skip(f"no browser to test with: {', '.join(missing)} missing "
                    "(apt-get install chromium chromium-driver; `python3 make.py test` does it)")


def chrome(width: int = 1280, height: int = 900) -> WebDriver:
    """Headless Chromium at `width` x `height`, with a new, empty profile; call
    `driver.quit()` when done (it also removes the profile)."""
    need_chromium()
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    profile = tempfile.mkdtemp(prefix="dodas-chromium-")
    options = webdriver.ChromeOptions()
    options.binary_location = str(CHROMIUM)
    for arg in ("--headless=new", "--no-sandbox",  # the tests run as root, and Chromium's sandbox refuses root
                "--disable-dev-shm-usage", f"--user-data-dir={profile}", f"--window-size={width},{height}",
                "--no-first-run", "--no-default-browser-check", "--disable-extensions", "--disable-default-apps",
                "--disable-background-networking", "--disable-component-update", "--disable-sync",
                "--disable-domain-reliability", "--disable-client-side-phishing-detection",
                "--metrics-recording-only", "--no-pings", "--no-proxy-server", "--password-store=basic",
                "--disable-features=" + ",".join(QUIET_FEATURES), "--lang=en-US",
                # names resolve to nothing but this machine: Chromium's own calls home (autofill,
                # sign-in, updates, the search engine's preconnect) fail at once, without a DNS query; loopback
                # addresses (the services a test deploys each have their own, 127.x.y.z) stay reachable
                "--host-resolver-rules=MAP * ~NOTFOUND, EXCLUDE localhost, EXCLUDE 127.*, EXCLUDE [::1]"):
        options.add_argument(arg)
    options.add_experimental_option("prefs", {"intl.accept_languages": "en-US,en",
                                              "credentials_enable_service": False,
                                              "profile.password_manager_enabled": False,
                                              "profile.password_manager_leak_detection": False,
                                              "autofill.profile_enabled": False,
                                              "search.suggest_enabled": False,
                                              "safebrowsing.enabled": False,
                                              "signin.allowed": False,
                                              "translate.enabled": False})
    # a driver named by path: Selenium Manager is skipped, nothing is downloaded
    service = Service(executable_path=str(CHROMEDRIVER), log_output=os.path.join(profile, "chromedriver.log"))
    try:
        driver = webdriver.Chrome(service=service, options=options)
    except Exception:
        shutil.rmtree(profile, ignore_errors=True)
        raise
    driver.set_window_size(width, height)
    driver.set_page_load_timeout(TIMEOUT_S)
    quit_driver = driver.quit

    def quit_and_clean() -> None:
        try:
            quit_driver()
        finally:
            shutil.rmtree(profile, ignore_errors=True)

    driver.quit = quit_and_clean  # type: ignore[method-assign]
    return driver


def _page_summary(driver: WebDriver) -> str:
    try:
        body = driver.execute_script("return document.body ? document.body.innerText : ''") or ""
        return f"at {driver.current_url} ({driver.title!r}): {body.strip()[:1500]}"
    except Exception as exc:  # noqa: BLE001 - the browser itself may be what went wrong
        return f"(the page cannot be read: {exc})"


def wait_for(driver: WebDriver, condition: Callable[[WebDriver], T], timeout: float = TIMEOUT_S,
             message: str = "the condition") -> T:
    """Poll `condition(driver)` until it returns something truthy, and return that;
    an element not there yet (or replaced meanwhile, or of a page a navigation is
    replacing) counts as not yet. After
    `timeout` seconds: AssertionError naming `message` and the page it is on."""
    from selenium.common.exceptions import (NoSuchElementException, StaleElementReferenceException,
                                            WebDriverException)

    deadline = time.monotonic() + timeout
    while True:
        try:
            value = condition(driver)
            if value:
                return value
        except (NoSuchElementException, StaleElementReferenceException):
            pass
        except WebDriverException as exc:  # an element of the page being replaced by a navigation
            if "does not belong to the document" not in str(exc):
                raise
        if time.monotonic() > deadline:
            raise AssertionError(f"waited {timeout:.0f} s for {message}; the browser is {_page_summary(driver)}")
        time.sleep(0.1)


def element(driver: WebDriver, css: str, timeout: float = TIMEOUT_S) -> Any:
    """The first element matching `css`, once there is one."""
    from selenium.webdriver.common.by import By

    return wait_for(driver, lambda d: d.find_element(By.CSS_SELECTOR, css), timeout, f"an element {css!r}")


def text_of(driver: WebDriver, css: str, timeout: float = TIMEOUT_S) -> str:
    """The visible text of the first element matching `css` (waiting for it to exist)."""
    return element(driver, css, timeout).text


def screenshot(driver: WebDriver, path: str | Path) -> Path:
    """A PNG of the whole page: the window is made as tall as the document for the
    shot, then given its size back."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    size = driver.get_window_size()
    height = driver.execute_script("return Math.max(document.body.scrollHeight, "
                                   "document.documentElement.scrollHeight)")
    driver.set_window_size(size["width"], max(int(height), size["height"]))
    try:
        if not driver.save_screenshot(str(path)):
            raise AssertionError(f"the browser gave no screenshot for {path}")
    finally:
        driver.set_window_size(size["width"], size["height"])
    return path


def shot_path(name: str, tmp_path: Path) -> Path:
    """Where a test's screenshot `name` goes: docs/screenshots/ when DODAS_SCREENSHOTS
    is set (to refresh the documentation's pictures), else the test's tmp_path, so
    that an ordinary run leaves the checkout alone."""
    return (SCREENSHOTS if os.environ.get("DODAS_SCREENSHOTS") else tmp_path) / name


def fill_login(driver: WebDriver, username: str, password: str, timeout: float = TIMEOUT_S) -> None:
    """On the development issuer's login page (waiting for it): type the username
    and password and press "Sign in and allow"."""
    user_field = element(driver, USERNAME_FIELD, timeout)
    user_field.clear()
    user_field.send_keys(username)
    password_field = element(driver, PASSWORD_FIELD, timeout)
    password_field.clear()
    password_field.send_keys(password)
    element(driver, SIGN_IN_BUTTON, timeout).click()


def login(driver: WebDriver, base_url: str, username: str, password: str, timeout: float = TIMEOUT_S) -> None:
    """The dashboard's login as a person does it: {base_url}/web/login sends the
    browser to the issuer's /authorize page, the form is filled in, and the
    issuer sends the browser back through /web/callback. Returns once the browser
    is on a dashboard page other than those two; fails at once on the issuer's
    "wrong username or password"."""
    origin = urlsplit(base_url).netloc
    base_url = base_url.rstrip("/")
    driver.get(base_url + "/web/login")
    wait_for(driver, lambda d: urlsplit(d.current_url).netloc != origin, timeout,
             f"{base_url}/web/login to send the browser to the issuer")
    fill_login(driver, username, password, timeout)

    def back_or_refused(d: WebDriver) -> bool:
        url = urlsplit(d.current_url)
        if url.netloc == origin:
            return url.path not in ("/web/login", "/web/callback")
        if LOGIN_ERROR in (d.execute_script("return document.body ? document.body.innerText : ''") or ""):
            raise AssertionError(f"the issuer refused {username!r}: {LOGIN_ERROR}")
        return False

    wait_for(driver, back_or_refused, timeout, f"the issuer to send the browser back to {base_url}")


@contextmanager
def scripts_off(driver: WebDriver) -> Iterator[None]:
    """The browser without JavaScript for the pages opened inside (Chromium's own
    switch, through the DevTools protocol): what a user with scripts disabled sees."""
    driver.execute_cdp_cmd("Emulation.setScriptExecutionDisabled", {"value": True})
    try:
        yield
    finally:
        driver.execute_cdp_cmd("Emulation.setScriptExecutionDisabled", {"value": False})


#: colours as a page's script reads them: `parse` a computed colour, compose one `over` another,
#: `ratio` of two opaque ones as WCAG 2 defines contrast (1.4.3: AA asks 4.5:1 of text)
COLOUR_JS = """
const parse = (c) => {
  const m = c.match(/rgba?\\(([^)]+)\\)/);
  if (!m) return [0, 0, 0, 0];
  const p = m[1].split(/[ ,\\/]+/).filter(Boolean).map(Number);
  return [p[0], p[1], p[2], p.length > 3 ? p[3] : 1];
};
const over = (top, under) => [0, 1, 2].map((i) => top[i] * top[3] + under[i] * (1 - top[3])).concat([1]);
const lum = (c) => {
  const v = c.slice(0, 3).map((x) => { x /= 255; return x <= 0.03928 ? x / 12.92 : ((x + 0.055) / 1.055) ** 2.4; });
  return 0.2126 * v[0] + 0.7152 * v[1] + 0.0722 * v[2];
};
const ratio = (a, b) => { const [hi, lo] = [lum(a), lum(b)].sort((x, y) => y - x); return (hi + 0.05) / (lo + 0.05); };
"""
#: for each element of the selector, its colour over the first opaque background behind it
#: (translucent ones composed on the way)
CONTRAST_JS = COLOUR_JS + """
const behind = (el) => {
  const layers = [];
  for (let e = el; e; e = e.parentElement) {
    const c = parse(getComputedStyle(e).backgroundColor);
    if (c[3] > 0) { layers.push(c); if (c[3] >= 1) break; }
  }
  let bg = [255, 255, 255, 1];
  for (const c of layers.reverse()) bg = over(c, bg);
  return bg;
};
return Array.from(document.querySelectorAll(arguments[0]))
  .filter((e) => e.offsetParent !== null && e.textContent.trim())
  .map((e) => {
    const bg = behind(e);
    const fg = over(parse(getComputedStyle(e).color), bg);
    return {text: e.textContent.trim().slice(0, 40), cls: e.className, ratio: ratio(fg, bg)};
  });
"""


def contrasts(driver: WebDriver, css: str) -> list[dict[str, Any]]:
    """[{text, cls, ratio}] of the visible elements matching `css` with text (CONTRAST_JS)."""
    return driver.execute_script(CONTRAST_JS, css)
