"""The built documentation site, opened in a real headless browser (Chromium).

Build the site first (CI does, in its docs step)::

    python -m sphinx -W --keep-going -b html docs docs/_build/html
    python -m pytest -q tests/test_docs_site.py

Without a built site the browser tests are skipped (with that message), so the normal
test command stays fast. Chromium is Debian's package, installed by
``docs/tools/install_chromium.sh`` where it is missing (skipped, with the script's reason,
where it cannot be installed); it is driven through the DevTools protocol with
``websocket-client`` (the ``docs`` extra). The site is served on 127.0.0.1 only.

Checks: the index, the API page of ``warp_patches`` (its signature is there), the
policies guide (the op table is there) and a gallery page (its images loaded: natural
width > 0) load without a console error or an exception, each saved as a screenshot in
``docs/_build/screenshots/``; and every internal link of every page of the site (``href``
and ``src``, with their ``#fragment``) resolves.
"""

from __future__ import annotations

import base64
import functools
import http.server
import json
import os
import shutil
import subprocess
import threading
import time
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Iterator
from html.parser import HTMLParser
from pathlib import Path
from typing import Any

import pytest

ROOT = Path(__file__).resolve().parent.parent
SITE = ROOT / "docs" / "_build" / "html"
SCREENSHOTS = ROOT / "docs" / "_build" / "screenshots"
INSTALL = ROOT / "docs" / "tools" / "install_chromium.sh"
BUILD_HINT = "python -m sphinx -W --keep-going -b html docs docs/_build/html"
CHROMIUM_FLAGS = [
    "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
    "--disable-background-networking", "--disable-component-update", "--disable-sync",
    "--disable-dev-shm-usage", "--hide-scrollbars", "--window-size=1280,900",
]

# CI sets AUGPATCH_DOCS_SITE_REQUIRED=1 after building the site: there a missing site or
# browser is a failure, not a skip.
REQUIRED = os.environ.get("AUGPATCH_DOCS_SITE_REQUIRED", "0") == "1"


def _skip_or_fail(reason: str) -> None:
    if REQUIRED:
        pytest.fail(f"{reason} (AUGPATCH_DOCS_SITE_REQUIRED=1)")
    pytest.skip(reason)


@pytest.fixture(scope="module", autouse=True)
def _site_built() -> None:
    # module scope: checked before the server and the browser start (no install without a site)
    if not (SITE / "index.html").is_file():
        _skip_or_fail(f"the documentation site has not been built ({SITE} has no index.html); "
                      f"build it with `{BUILD_HINT}`")


# -- serving the site ------------------------------------------------------------------

class _QuietHandler(http.server.SimpleHTTPRequestHandler):
    def log_message(self, format: str, *args: Any) -> None:  # noqa: A002
        pass


@pytest.fixture(scope="module")
def server() -> Iterator[str]:
    handler = functools.partial(_QuietHandler, directory=str(SITE))
    httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{httpd.server_address[1]}/"
    finally:
        httpd.shutdown()
        httpd.server_close()


# -- crawling every internal link -------------------------------------------------------

class _Links(HTMLParser):
    def __init__(self) -> None:
        super().__init__()
        self.links: list[str] = []
        self.ids: set[str] = set()

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        for key, value in attrs:
            if value is None:
                continue
            if key == "id" or (key == "name" and tag == "a"):
                self.ids.add(value)
            elif key in ("href", "src") and tag in ("a", "img", "link", "script", "source"):
                self.links.append(value)


def _parse(html: str) -> _Links:
    parser = _Links()
    parser.feed(html)
    return parser


def test_every_internal_link_resolves(server: str) -> None:
    pages: dict[str, _Links | None] = {}  # url without fragment -> parsed page (None: not html)
    broken: list[str] = []
    wanted: list[tuple[str, str, str]] = []  # (from page, target url, fragment)
    queue = [server + "index.html"]
    queued = set(queue)
    while queue:
        url = queue.pop()
        try:
            with urllib.request.urlopen(url, timeout=10) as response:
                body = response.read()
                kind = response.headers.get_content_type()
        except urllib.error.URLError as exc:
            broken.append(f"{url}: {exc}")
            pages[url] = None
            continue
        if kind != "text/html":
            pages[url] = None
            continue
        parsed = _parse(body.decode("utf-8", "replace"))
        pages[url] = parsed
        for link in parsed.links:
            target = urllib.parse.urljoin(url, link)
            if not target.startswith(server):  # external (links to other documentation)
                continue
            target, _, fragment = target.partition("#")
            target = target.split("?")[0]
            if target.endswith("/"):
                target += "index.html"
            if fragment:
                wanted.append((url, target, urllib.parse.unquote(fragment)))
            if target not in queued:
                queued.add(target)
                queue.append(target)
    for page, target, fragment in wanted:
        parsed = pages.get(target)
        if parsed is not None and fragment not in parsed.ids:
            broken.append(f"{page} -> {target}#{fragment}: no element with that id")
    html_pages = [u for u, p in pages.items() if p is not None]
    assert len(html_pages) > 50, f"crawled only {len(html_pages)} pages from the index"
    for needed in ("guides/policies.html", "api/generated/augpatch.functional.warp_patches.html",
                   "auto_examples/index.html"):
        assert server + needed in pages, f"the index does not lead to {needed}"
    assert not broken, "broken internal links:\n" + "\n".join(sorted(set(broken)))


# -- the browser -------------------------------------------------------------------------

def _chromium() -> str:
    try:
        done = subprocess.run(["bash", str(INSTALL)], capture_output=True, text=True,
                              timeout=900, check=False)
    except (OSError, subprocess.TimeoutExpired) as exc:
        _skip_or_fail(f"Chromium could not be installed: {exc}")
    path = done.stdout.strip().splitlines()[-1] if done.stdout.strip() else ""
    if done.returncode != 0 or not path or not shutil.which(path):
        _skip_or_fail("Chromium is not installed and could not be installed "
                    f"({INSTALL.name} exited {done.returncode}: {done.stderr.strip()[-400:]})")
    return path


class DevTools:
    """A minimal client of the Chrome DevTools protocol over one page's websocket."""

    def __init__(self, url: str) -> None:
        import websocket

        self.ws = websocket.create_connection(url, timeout=60, suppress_origin=True)
        self.next_id = 0
        self.events: list[dict[str, Any]] = []

    def call(self, method: str, **params: Any) -> dict[str, Any]:
        self.next_id += 1
        self.ws.send(json.dumps({"id": self.next_id, "method": method, "params": params}))
        while True:
            message = json.loads(self.ws.recv())
            if message.get("id") == self.next_id:
                if "error" in message:
                    raise RuntimeError(f"{method}: {message['error']}")
                return message.get("result", {})
            self.events.append(message)

    def wait_event(self, method: str, timeout: float = 60.0) -> dict[str, Any]:
        deadline = time.monotonic() + timeout
        for event in self.events:
            if event.get("method") == method:
                self.events.remove(event)
                return event
        while time.monotonic() < deadline:
            message = json.loads(self.ws.recv())
            if message.get("method") == method:
                return message
            self.events.append(message)
        raise TimeoutError(f"no {method} within {timeout} s")

    def evaluate(self, expression: str) -> Any:
        result = self.call("Runtime.evaluate", expression=expression, returnByValue=True,
                           awaitPromise=True)
        if "exceptionDetails" in result:
            raise AssertionError(f"{expression!r} raised {result['exceptionDetails']}")
        return result["result"].get("value")

    def errors(self) -> list[str]:
        """Console errors, uncaught exceptions and failed loads seen so far (then cleared)."""
        found = []
        for event in self.events:
            method, params = event.get("method"), event.get("params", {})
            if method == "Runtime.consoleAPICalled" and params.get("type") in ("error", "assert"):
                found.append("console: " + " ".join(str(a.get("value", a.get("description")))
                                                    for a in params.get("args", [])))
            elif method == "Runtime.exceptionThrown":
                found.append(f"exception: {params.get('exceptionDetails')}")
            elif method == "Log.entryAdded" and params.get("entry", {}).get("level") == "error":
                entry = params["entry"]
                found.append(f"log: {entry.get('text')} {entry.get('url', '')}")
            elif method == "Network.loadingFailed" and not params.get("canceled"):
                found.append(f"load failed: {params.get('errorText')} ({params.get('type')})")
        self.events.clear()
        return found

    def close(self) -> None:
        self.ws.close()


@pytest.fixture(scope="module")
def browser(server: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[DevTools]:
    try:
        import websocket  # noqa: F401
    except ImportError:
        _skip_or_fail("websocket-client is missing: pip install -e '.[docs]'")
    executable = _chromium()
    profile = tmp_path_factory.mktemp("chromium-profile")
    process = subprocess.Popen(
        [executable, *CHROMIUM_FLAGS, f"--user-data-dir={profile}",
         "--remote-debugging-address=127.0.0.1", "--remote-debugging-port=0", "about:blank"],
        stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
    )
    try:
        port_file = profile / "DevToolsActivePort"
        deadline = time.monotonic() + 60
        while not port_file.is_file() or not port_file.read_text().strip():
            if process.poll() is not None:
                raise RuntimeError(f"Chromium exited: {process.stderr.read().decode()[-2000:]}")
            if time.monotonic() > deadline:
                raise TimeoutError("Chromium did not open its DevTools port within 60 s")
            time.sleep(0.1)
        port = int(port_file.read_text().split()[0])
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/json/list", timeout=10) as r:
            targets = [t for t in json.load(r) if t.get("type") == "page"]
        tools = DevTools(targets[0]["webSocketDebuggerUrl"])
        for domain in ("Page", "Runtime", "Log", "Network"):
            tools.call(f"{domain}.enable")
        yield tools
        tools.close()
    finally:
        process.terminate()
        try:
            process.wait(timeout=20)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


def _open(browser: DevTools, url: str, screenshot: str) -> None:
    """Load ``url``, wait for it and its images, save a full-page screenshot, and fail on
    any console error, exception or failed load."""
    browser.errors()
    browser.call("Page.navigate", url=url)
    browser.wait_event("Page.loadEventFired")
    # scroll every image into view (lazy loading) and wait until each has loaded or failed
    browser.evaluate(
        "Promise.all(Array.from(document.images).map(img => { img.loading = 'eager';"
        " img.scrollIntoView(); return img.complete ? null :"
        " new Promise(done => { img.onload = img.onerror = done; }); }))"
        ".then(() => window.scrollTo(0, 0))"
    )
    metrics = browser.call("Page.getLayoutMetrics")["cssContentSize"]
    shot = browser.call("Page.captureScreenshot", format="png", captureBeyondViewport=True,
                        clip={"x": 0, "y": 0, "width": metrics["width"],
                              "height": min(metrics["height"], 12000), "scale": 1})
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    (SCREENSHOTS / screenshot).write_bytes(base64.b64decode(shot["data"]))
    errors = browser.errors()
    assert not errors, f"{url}: " + "\n".join(errors)


def test_index_loads(browser: DevTools, server: str) -> None:
    _open(browser, server + "index.html", "index.png")
    assert "augpatch" in browser.evaluate("document.title")
    links = browser.evaluate("Array.from(document.querySelectorAll('a')).map(a => a.href)")
    assert any(link.endswith("guides/getting-started.html") for link in links)
    assert browser.evaluate("document.images[0] && document.images[0].naturalWidth") > 0


def test_api_page_shows_the_signature(browser: DevTools, server: str) -> None:
    _open(browser, server + "api/generated/augpatch.functional.warp_patches.html",
          "api_warp_patches.png")
    signature = browser.evaluate(
        "Array.from(document.querySelectorAll('dt.sig')).map(d => d.innerText).join('\\n')"
    )
    assert "warp_patches(" in signature, signature
    for argument in ("images", "boxes", "theta", "obj_to_img", "padding_mode", "overlap"):
        assert argument in signature, (argument, signature)
    text = browser.evaluate("document.body.innerText")
    assert "[B, C, H, W]" in text and ">>> from augpatch.functional import warp_patches" in text
    picture = browser.evaluate(
        "Array.from(document.images).filter(i => i.src.includes('warp_patches.png'))"
        ".map(i => i.naturalWidth)"
    )
    assert picture and all(width > 0 for width in picture), picture


def test_policies_guide_has_the_op_table(browser: DevTools, server: str) -> None:
    _open(browser, server + "guides/policies.html", "guide_policies.png")
    tables = browser.evaluate(
        "Array.from(document.querySelectorAll('table')).map(t => t.innerText)"
    )
    op_tables = [t for t in tables if "Rotate_Only_BBoxes" in t and "Equalize" in t]
    assert op_tables, tables
    for op in ("AutoContrast", "SolarizeAdd", "TranslateY_BBox", "Cutout_Only_BBoxes"):
        assert op in op_tables[0], op


def test_gallery_page_shows_its_figures(browser: DevTools, server: str) -> None:
    _open(browser, server + "auto_examples/plot_transforms.html", "gallery_transforms.png")
    widths = browser.evaluate(
        "Array.from(document.images).filter(i => i.src.includes('sphx_glr_plot_transforms'))"
        ".map(i => i.naturalWidth)"
    )
    assert widths and all(width > 0 for width in widths), widths
    assert os.path.getsize(SCREENSHOTS / "gallery_transforms.png") > 10_000
