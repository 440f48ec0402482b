"""Real browser: a partner page on another origin embeds one frame and two script widgets.

Headless Debian Chromium, driven by Playwright. The service and the partner page are real
HTTP servers on two loopback addresses, so every request is cross-origin as on the web.
"""
from __future__ import annotations

import shutil
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from flask import Flask
from playwright.sync_api import Browser, ConsoleMessage, Dialog, Page, expect, sync_playwright

from feedsvc import create_app

from .conftest import release_yaml

CHROMIUM = "/usr/bin/chromium"
ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
        "--disable-background-networking", "--disable-component-update", "--disable-sync"]
MARKUP = "<script>alert(1)</script> and <img src=x onerror=alert(1)>"
ARTIFACTS = Path(__file__).parent / "artifacts"


def _partner_page(service: str) -> bytes:
    return f"""<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>Partner</title><link rel="icon" href="data:,">
</head><body>
<h1>A partner organisation</h1>
<iframe id="frame" src="{service}/embed/countries/th?limit=3&amp;theme=dark" title="Latest releases"
        width="100%" height="150" style="border:0"></iframe>
<div id="w-country" data-feedsvc-country="th" data-limit="4"></div>
<div id="w-topic" data-feedsvc-topic="gender-equality" data-limit="2"></div>
<script src="{service}/embed.js" async></script>
</body></html>""".encode()


def _late_partner_page(service: str) -> bytes:
    """A partner page whose embed.js starts only after its frame has loaded (and told its
    height to nobody)."""
    return f"""<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>Partner</title><link rel="icon" href="data:,">
</head><body>
<iframe id="frame" src="{service}/embed/countries/th?limit=3" title="Latest releases"
        width="100%" height="150" style="border:0"></iframe>
<script>
document.getElementById("frame").addEventListener("load", function () {{
  setTimeout(function () {{
    var script = document.createElement("script");
    script.src = "{service}/embed.js";
    document.body.appendChild(script);
  }}, 200);
}});
</script>
</body></html>""".encode()


def _static(body: bytes) -> Callable[..., list[bytes]]:
    def wsgi(environ: dict[str, Any], start_response: Callable[..., Any]) -> list[bytes]:
        start_response("200 OK", [("Content-Type", "text/html; charset=utf-8"),
                                  ("Content-Length", str(len(body)))])
        return [body]
    return wsgi


@pytest.fixture
def service(make_dataset: Callable[..., Path], serve: Callable[..., str]) -> str:
    releases = [release_yaml(1, "2021-03-01", title=MARKUP),
                {**release_yaml(2, "2021-02-01"), "language": "th"},  # its title: lang="th"
                release_yaml(3, "2021-01-01", topics=("gender-equality",)),
                release_yaml(4, "2020-12-01", countries=("KH",), topics=("gender-equality",))]
    data = make_dataset(releases)
    # The service needs its own public origin before it starts: reserve it, then serve.
    holder: dict[str, Flask] = {}
    origin = serve(lambda environ, start: holder["app"](environ, start), "127.0.0.1")
    holder["app"] = create_app({"FEEDSVC_DATA": str(data), "FEEDSVC_BASE_URL": origin + "/"})
    return origin


@pytest.fixture(scope="module")
def browser() -> Iterator[Browser]:
    # Debian's browser, never Playwright's download: say so before Playwright names its own cache.
    assert Path(CHROMIUM).exists(), f"{CHROMIUM} is missing: `make test` installs Debian's chromium"
    with sync_playwright() as playwright:
        chromium = playwright.chromium.launch(executable_path=CHROMIUM, args=ARGS)
        yield chromium
        chromium.close()


@pytest.fixture
def page(browser: Browser) -> Iterator[Page]:
    context = browser.new_context(viewport={"width": 390, "height": 844})
    yield context.new_page()
    context.close()


class Watch:
    """Collect what the page must not do: dialogs, console errors, uncaught exceptions."""

    def __init__(self, page: Page) -> None:
        self.dialogs: list[str] = []
        self.errors: list[str] = []
        page.on("dialog", self._dialog)
        page.on("console", self._console)
        page.on("pageerror", lambda error: self.errors.append(f"pageerror: {error}"))

    def _dialog(self, dialog: Dialog) -> None:
        self.dialogs.append(dialog.message)
        dialog.dismiss()

    def _console(self, message: ConsoleMessage) -> None:
        if message.type in ("error", "warning"):
            self.errors.append(f"{message.type}: {message.text}")


def _widget_links(page: Page, selector: str) -> list[dict[str, str]]:
    result: list[dict[str, str]] = page.eval_on_selector_all(
        f"{selector} li a", "links => links.map(a => ({href: a.href, text: a.textContent,"
                             " target: a.target, rel: a.rel, lang: a.lang}))")
    return result


def test_partner_page_embeds_frame_and_two_widgets(service: str, serve: Callable[..., str],
                                                   page: Page, tmp_path: Path) -> None:
    partner = serve(_static(_partner_page(service)), "127.0.0.2")
    assert partner.split(":")[1] != service.split(":")[1]
    watch = Watch(page)
    page.goto(partner + "/")
    page.wait_for_selector("#w-country[data-feedsvc-state=ready] li")
    page.wait_for_selector("#w-topic[data-feedsvc-state=ready] li")
    country = _widget_links(page, "#w-country")
    topic = _widget_links(page, "#w-topic")
    assert [link["text"] for link in country] == [MARKUP, "Test release number 2",
                                                  "Test release number 3"]
    assert [link["text"] for link in topic] == ["Test release number 3", "Test release number 4"]
    assert [link["lang"] for link in country] == ["", "th", ""]  # the feed's is en
    for link in country + topic:
        assert link["href"].startswith(service + "/releases/t-")
        assert link["target"] == "_blank" and link["rel"] == "noopener"
    # Markup in a title stays text: nothing was parsed into elements, nothing ran.
    assert page.locator("#w-country img, #w-country script").count() == 0

    frame = page.frame_locator("#frame")
    frame.locator("li").first.wait_for()
    assert frame.locator("li a").all_text_contents() == [MARKUP, "Test release number 2",
                                                         "Test release number 3"]
    assert frame.locator("li a").evaluate_all("links => links.map(a => a.lang)") == ["", "th", ""]
    assert frame.locator("img, li script").count() == 0
    hrefs = frame.locator("li a").evaluate_all("links => links.map(a => a.href)")
    assert all(h.startswith(service + "/releases/t-") for h in hrefs)
    # The frame's own inline script ran under its policy and sized the frame to the list.
    # Locator assertions poll without evaluating strings in the page (its CSP forbids eval).
    inner = frame.locator("html").evaluate("html => Math.ceil(html.getBoundingClientRect().height)")
    expect(page.locator("#frame")).to_have_css("height", f"{inner}px")
    assert frame.locator("html").evaluate("html => getComputedStyle(html).colorScheme") == "dark"

    shot = tmp_path / "partner.png"
    page.screenshot(path=str(shot), full_page=True)
    assert shot.stat().st_size > 1000
    ARTIFACTS.mkdir(exist_ok=True)
    shutil.copy(shot, ARTIFACTS / "partner.png")
    assert watch.dialogs == [] and watch.errors == []


def test_a_frame_loaded_before_the_script_is_sized_too(service: str,
                                                      serve: Callable[..., str],
                                                      page: Page) -> None:
    partner = serve(_static(_late_partner_page(service)), "127.0.0.2")
    page.goto(partner + "/")
    frame = page.frame_locator("#frame")
    frame.locator("li").first.wait_for()
    page.wait_for_function("() => document.querySelector('script[src$=\"/embed.js\"]')")
    inner = frame.locator("html").evaluate("html => Math.ceil(html.getBoundingClientRect().height)")
    expect(page.locator("#frame")).to_have_css("height", f"{inner}px")


def test_widget_fails_quietly_when_the_service_is_unreachable(
        service: str, serve: Callable[..., str], page: Page) -> None:
    partner = serve(_static(_partner_page(service)), "127.0.0.2")
    page.route(f"{service}/feeds/**", lambda route: route.abort("connectionrefused"))
    watch = Watch(page)
    page.goto(partner + "/")
    page.wait_for_selector("#w-country[data-feedsvc-state=failed] a")
    fallback = page.eval_on_selector("#w-country a", "a => [a.href, a.textContent]")
    assert fallback == [f"{service}/feeds/countries/th.rss", "Latest releases (feed)"]
    page.wait_for_selector("#w-topic[data-feedsvc-state=failed] a")
    assert watch.dialogs == []
    assert not [e for e in watch.errors if "ERR_CONNECTION_REFUSED" not in e]


def test_directory_in_the_browser(service: str, page: Page, browser: Browser) -> None:
    watch = Watch(page)
    page.goto(service + "/feeds/")
    urls = page.eval_on_selector_all("input[id^=url-]", "inputs => inputs.map(i => i.value)")
    urls.append(page.get_attribute("link[type='text/x-opml']", "href"))
    assert len(urls) == 3 * (1 + 7 + 2) + 1
    types = {"rss": "application/rss+xml", "atom": "application/atom+xml",
             "json": "application/feed+json", "opml": "text/x-opml"}
    for url in urls:
        response = page.request.get(url)
        assert response.status == 200, url
        assert response.headers["content-type"].split(";")[0] == types[url.rsplit(".", 1)[1]], url
    # The copy buttons appear with the script, and say what they did.
    button = page.locator("button[data-copy='url-all-rss']")
    assert button.is_visible()
    button.click()
    # A locator assertion waits for the text; wait_for_function("<string>") would be an eval,
    # which this page's Content-Security-Policy (script-src 'self') refuses.
    expect(page.locator(".copy-status")).to_contain_text("RSS feed of")
    # Fits a phone: nothing wider than the viewport.
    assert page.locator("html").evaluate("html => html.scrollWidth") <= 390
    assert watch.dialogs == [] and watch.errors == []


def test_directory_sections_look_clickable(service: str, page: Page) -> None:
    page.goto(service + "/")
    page.get_by_role("link", name="Every feed").click()
    expect(page).to_have_url(service + "/feeds/")
    summary = page.locator("summary").first
    # A summary shows its disclosure triangle only as a list item (display:flex hides it).
    expect(summary).to_have_css("display", "list-item")
    expect(summary).to_have_css("cursor", "pointer")
    shot = ARTIFACTS / "directory-summary.png"
    ARTIFACTS.mkdir(exist_ok=True)
    summary.scroll_into_view_if_needed()
    page.screenshot(path=str(shot), full_page=False)
    details = page.locator("details").first
    expect(details).not_to_have_attribute("open", "")
    summary.click()
    expect(details).to_have_attribute("open", "")
    expect(details.locator("textarea").first).to_be_visible()
