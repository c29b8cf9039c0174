"""Render the built chapter in headless Chromium: math typeset, figures loaded, links alive.

Skipped with a reason when no Chromium is installed; `.ci/run` installs Debian's.
Screenshots land in _build/screenshots/ for a person to look at.
"""
import functools
import http.server
import re
import threading
from urllib.parse import urldefrag, urljoin

import pytest

from conftest import MATHJAX_DONE, ROOT, toc_files

pytestmark = [pytest.mark.slow, pytest.mark.browser, pytest.mark.xdist_group("book")]
PAGES = [f"{page}.html" for page in toc_files()]


@pytest.fixture(scope="module")
def server(built_book):
    class Quiet(http.server.SimpleHTTPRequestHandler):
        def log_message(self, *args):
            pass

    handler = functools.partial(Quiet, directory=str(built_book))
    httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    threading.Thread(target=httpd.serve_forever, daemon=True).start()
    yield f"http://127.0.0.1:{httpd.server_address[1]}/"
    httpd.shutdown()


IMAGES = """() => Array.from(document.images).map(i => ({src: i.currentSrc, ok: i.complete && i.naturalWidth > 0}))"""


@pytest.mark.parametrize("page", PAGES)
def test_page_renders(browser, server, page):
    tab = browser.new_page(viewport={"width": 1280, "height": 1800})
    failed = []
    tab.on("requestfailed", lambda r: failed.append(r.url))
    tab.on("response", lambda r: r.status >= 400 and not r.url.endswith("favicon.ico") and failed.append(r.url))
    tab.goto(server + page, wait_until="load")
    math = tab.evaluate(MATHJAX_DONE)
    assert math["loaded"], "MathJax did not load"
    assert math["errors"] == 0, f"{math['errors']} MathJax errors on {page}"
    assert math["raw"] == 0, f"untypeset TeX visible on {page}"
    if "/ch" in page and not page.endswith("summary.html"):
        assert math["typeset"] > 0, f"no typeset math on {page}"
    broken = [img["src"] for img in tab.evaluate(IMAGES) if not img["ok"]]
    assert broken == [], f"images that did not load on {page}: {broken}"
    local_failures = [u for u in failed if u.startswith(server)]
    assert local_failures == [], f"requests to the book that failed: {local_failures}"

    shots = ROOT / "_build" / "screenshots"
    shots.mkdir(parents=True, exist_ok=True)
    tab.screenshot(path=str(shots / (page.replace("/", "_") + ".png")), full_page=False)
    tab.close()


def test_no_internal_link_is_broken(browser, server):
    tab = browser.new_page()
    ids_cache = {}

    def ids_of(url):
        if url not in ids_cache:
            response = tab.request.get(url)
            assert response.ok, f"broken link target {url} ({response.status})"
            ids_cache[url] = set(re.findall(r'id="([^"]+)"', response.text()))
        return ids_cache[url]

    checked = 0
    for page in PAGES:
        tab.goto(server + page)
        for href in tab.eval_on_selector_all("a[href]", "els => els.map(e => e.href)"):
            if not href.startswith(server):
                continue
            target, anchor = urldefrag(href)
            if not target.endswith(".html"):
                assert tab.request.get(target).ok, f"{page}: broken link to {target}"
            elif anchor:
                assert anchor in ids_of(target), f"{page}: link to missing anchor {href}"
            else:
                ids_of(target)
            checked += 1
    assert checked > 20, "too few internal links found: is the page empty?"
    tab.close()


def test_jupyterhub_link_carries_its_query_once_decoded(browser, server):
    """The browser reads the JupyterHub link's query as nbgitpuller will: no double
    escaping (an `&amp;` left in the href would become part of a parameter's name)."""
    import yaml
    from conftest import chapters
    config = yaml.safe_load((ROOT / "_config.yml").read_text())
    tab = browser.new_page()
    for chapter in chapters():
        tab.goto(f"{server}{chapter}/index.html")
        params = tab.evaluate("""() => {
            const a = document.querySelector('ul.assignment-links a.launch-jupyterhub');
            return a ? Object.fromEntries(new URL(a.href).searchParams) : null; }""")
        assert params is not None, f"{chapter}: no JupyterHub link"
        assert set(params) == {"repo", "branch", "urlpath"}, params
        assert params["repo"] == config["repository"]["url"] and params["branch"] == config["repository"]["branch"]
        assert params["urlpath"].startswith("lab/tree/") and params["urlpath"].endswith(".ipynb"), params
    tab.close()
