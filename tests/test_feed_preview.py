"""A feed opened by a person in a browser tab is a page about it; feed readers get the feed,
byte for byte as before, under the same ETag and cache entry, through every cache layer."""
from __future__ import annotations

import http.client
from collections.abc import Callable, Iterator
from pathlib import Path

import feedparser
import pytest
from flask import Flask
from lxml import etree, html
from playwright.sync_api import Browser

from feedsvc import create_app
from feedsvc.config import BUNDLED_DATA
from feedsvc.http.fastpath import fast_path

from . import servers
from .conftest import BASE_URL
from .test_browser import browser  # noqa: F401  (the module's Chromium)

TAB = {"Sec-Fetch-Dest": "document", "Sec-Fetch-Mode": "navigate"}
# What a feed reader or a script sends: no Sec-Fetch-Dest, or not `document`.
READERS = [{}, {"Sec-Fetch-Dest": "empty", "Sec-Fetch-Mode": "cors"},
           {"User-Agent": "Mozilla/5.0 (X11; Linux x86_64) Chrome/140.0 Safari/537.36"}]


def preview_url(body: bytes) -> str:
    """Return the feed address the page offers to copy."""
    found: list[str] = html.fromstring(body).xpath("//input[@id='feed-url']/@value")
    assert len(found) == 1
    return found[0]


@pytest.fixture
def app() -> Flask:
    return create_app({"FEEDSVC_DATA": str(BUNDLED_DATA), "FEEDSVC_BASE_URL": BASE_URL})


@pytest.mark.parametrize("path", ["/feeds/all.rss", "/feeds/countries/th.atom",
                                  "/feeds/topics/social-security.json?limit=3"])
def test_a_tab_gets_a_page_and_readers_the_feed_they_got_before(app: Flask, path: str) -> None:
    client = app.test_client()
    before = client.get(path)  # a reader, before anybody opened the feed in a tab
    page = client.get(path, headers=TAB)
    assert page.status_code == 200 and page.mimetype == "text/html"
    assert preview_url(page.data) == BASE_URL + path.lstrip("/")
    assert page.headers["ETag"] != before.headers["ETag"]
    for reader in READERS:
        again = client.get(path, headers=reader)
        assert again.data == before.data and again.headers["ETag"] == before.headers["ETag"]
        assert again.mimetype == before.mimetype != "text/html"
    for answer in (before, page):
        assert [v.strip() for v in answer.headers["Vary"].split(",")] == [
            "Accept-Encoding", "Sec-Fetch-Dest"]
    if not path.endswith("json?limit=3"):
        assert feedparser.parse(before.data).entries  # a feed, that a reader reads
        # Browsers that still run XSLT keep the stylesheet.
        assert isinstance(etree.fromstring(before.data).getprevious(), etree._XSLTProcessingInstruction)


def test_each_is_revalidated_by_its_own_etag(app: Flask) -> None:
    client = app.test_client()
    feed = client.get("/feeds/all.atom")
    page = client.get("/feeds/all.atom", headers=TAB)
    assert client.get("/feeds/all.atom", headers={"If-None-Match": feed.headers["ETag"]}
                      ).status_code == 304
    assert client.get("/feeds/all.atom", headers={**TAB, "If-None-Match": page.headers["ETag"]}
                      ).status_code == 304
    # A tab holding the feed's ETag (opened before this change) gets the page, not a 304.
    assert client.get("/feeds/all.atom", headers={**TAB, "If-None-Match": feed.headers["ETag"]}
                      ).status_code == 200


def test_the_fast_path_keeps_the_two_apart(app: Flask) -> None:
    client, fast = app.test_client(), fast_path(app)
    assert fast is not None
    feed = client.get("/feeds/all.rss").data
    page = client.get("/feeds/all.rss", headers=TAB).data
    assert page != feed
    answered = fast.answered
    assert client.get("/feeds/all.rss", headers=TAB).data == page
    assert client.get("/feeds/all.rss").data == feed
    assert fast.answered == answered + 2  # both from the fast path, each its own


def test_chromium_shows_a_page_with_the_feed_address(
        serve: Callable[..., str], browser: Browser) -> None:  # noqa: F811
    holder: dict[str, Flask] = {}
    origin = serve(lambda environ, start: holder["app"](environ, start))
    holder["app"] = create_app({"FEEDSVC_DATA": str(BUNDLED_DATA), "FEEDSVC_BASE_URL": origin + "/"})
    context = browser.new_context()
    page = context.new_page()
    page.goto(f"{origin}/")
    page.get_by_role("link", name="RSS").first.click()  # "Subscribe: RSS" on the home page
    page.wait_for_url(f"{origin}/feeds/all.rss")
    assert page.locator("h1").inner_text() == "ILO Asia and the Pacific press releases"
    assert page.locator("#feed-url").input_value() == f"{origin}/feeds/all.rss"
    assert page.locator("ul.releases li").count() > 0
    context.close()
    conn = http.client.HTTPConnection(origin.removeprefix("http://"), timeout=10)
    try:
        conn.request("GET", "/feeds/all.rss")  # a reader, after the browser
        assert feedparser.parse(conn.getresponse().read()).entries
    finally:
        conn.close()


@pytest.fixture
def front(tmp_path: Path) -> Iterator[int]:
    app = servers.start_gunicorn(tmp_path, env={"FEEDSVC_BASE_URL": BASE_URL,
                                                "FEEDSVC_RELOAD_INTERVAL": "0"})
    proxy = servers.start_shipped_nginx(tmp_path, app.port, "/healthz")
    yield proxy.port
    proxy.stop()
    app.stop()


def fetch(port: int, path: str, headers: dict[str, str]) -> tuple[str, str, bytes]:
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
    try:
        conn.request("GET", path, headers={"Host": "feeds.example.org", **headers})
        response = conn.getresponse()
        return (response.getheader("Content-Type", ""), response.getheader("X-Cache-Status", ""),
                response.read())
    finally:
        conn.close()


def test_nginx_caches_the_page_and_the_feed_apart(front: int) -> None:
    kind, status, page = fetch(front, "/feeds/all.rss", TAB)  # a person first: the cache fills
    assert kind.startswith("text/html") and status == "MISS"
    kind, status, feed = fetch(front, "/feeds/all.rss", {})
    assert kind.startswith("application/rss+xml") and status == "MISS"  # not the page's entry
    assert feedparser.parse(feed).entries
    assert fetch(front, "/feeds/all.rss", {}) == (kind, "HIT", feed)
    assert fetch(front, "/feeds/all.rss", TAB)[1:] == ("HIT", page)
