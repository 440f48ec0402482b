"""The site's icon and logo: in every feed format, at /favicon.ico, and on every HTML page."""
from __future__ import annotations

import hashlib
import json
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import feedparser
from flask import Flask
from flask.testing import FlaskClient
from lxml import etree, html

from feedsvc import create_app

from .conftest import BASE_URL, release_yaml

PNG = hashlib.sha256(b"not really a png").digest() * 4  # the route does not look inside
LOGO = "https://cdn.example.org/logo.png"
ICON_URL = f"{BASE_URL}media/brand/icon.png?v={hashlib.sha256(PNG).hexdigest()[:16]}"
ATOM = "{http://www.w3.org/2005/Atom}"


def with_site_pictures(root: Path, icon: str = "brand/icon.png", logo: str = LOGO) -> Path:
    with (root / "site.yaml").open("a", encoding="utf-8") as site:
        site.write(f"  icon: {icon}\n  logo: {logo}\n")
    (root / "media" / "brand").mkdir(parents=True)
    (root / "media" / "brand" / "icon.png").write_bytes(PNG)
    return root


def app_for(root: Path) -> Flask:
    return create_app({"FEEDSVC_DATA": str(root), "FEEDSVC_BASE_URL": BASE_URL})


def test_feeds_carry_the_icon_and_logo(make_dataset: Callable[..., Path]) -> None:
    client = app_for(with_site_pictures(make_dataset([release_yaml(1, "2005-01-01")]))).test_client()
    rss = etree.fromstring(client.get("/feeds/all.rss").data).find("channel/image")
    assert rss.findtext("url") == LOGO and rss.findtext("link") == BASE_URL
    atom = etree.fromstring(client.get("/feeds/all.atom").data)
    assert atom.findtext(f"{ATOM}icon") == ICON_URL and atom.findtext(f"{ATOM}logo") == LOGO
    assert feedparser.parse(client.get("/feeds/all.atom").data).feed.icon == ICON_URL
    feed = json.loads(client.get("/feeds/all.json").data)
    assert (feed["icon"], feed["favicon"]) == (LOGO, ICON_URL)


def test_favicon_is_the_site_icon(make_dataset: Callable[..., Path]) -> None:
    client = app_for(with_site_pictures(make_dataset([release_yaml(1, "2005-01-01")]))).test_client()
    response = client.get("/favicon.ico", buffered=True)
    assert response.status_code == 200 and response.data == PNG
    assert response.headers["Content-Type"] == "image/png"
    assert client.get(ICON_URL.removeprefix(BASE_URL.rstrip("/")), buffered=True).data == PNG
    again = client.get("/favicon.ico", buffered=True, headers={"If-None-Match": response.headers["ETag"]})
    assert again.status_code == 304


def test_without_an_icon_favicon_is_feedsvc_own(client: FlaskClient) -> None:
    response = client.get("/favicon.ico", buffered=True)
    assert response.status_code == 200
    assert response.headers["Content-Type"] == "image/vnd.microsoft.icon"
    assert response.data[:4] == b"\x00\x00\x01\x00"  # an ICO file
    assert "max-age" in response.headers["Cache-Control"] and "ETag" in response.headers
    for fmt in ("rss", "atom"):  # no icon: no <image>, no <icon>
        assert b"<image>" not in client.get(f"/feeds/all.{fmt}").data
        assert b"<icon>" not in client.get(f"/feeds/all.{fmt}").data


def test_every_html_page_names_the_icon(client: FlaskClient) -> None:
    for path in ("/", "/countries/th", "/topics/social-security", "/releases/pr-2004-005",
                 "/feeds/", "/no/such/page"):
        response = client.get(path, headers={"Accept": "text/html"})
        assert response.mimetype == "text/html", path
        icons = html.fromstring(response.data).xpath("//link[@rel='icon']/@href")
        assert icons in ([f"{BASE_URL}favicon.ico"], ["/favicon.ico"]), path


def check(root: Path) -> str:
    done = subprocess.run([sys.executable, "-m", "feedsvc", "check-data", str(root)],
                          capture_output=True, text=True, timeout=60)
    assert done.returncode == 1
    return done.stderr


def test_a_bad_icon_or_logo_is_located(make_dataset: Callable[..., Path]) -> None:
    root = with_site_pictures(make_dataset([release_yaml(1, "2005-01-01")]), icon="../icon.png")
    lines = (root / "site.yaml").read_text().splitlines()
    line = next(n for n, text in enumerate(lines, 1) if text.startswith("  icon:"))
    assert (f"{root / 'site.yaml'}:{line}: field icon: '../icon.png' must not contain"
            in check(root))
    root = with_site_pictures(make_dataset([release_yaml(1, "2005-01-01")]),
                              logo="brand/missing.png")
    assert (f"{root / 'site.yaml'}:{line + 1}: field logo: 'brand/missing.png' is not a file"
            in check(root))
