"""The framable widget pages and /embed.js: headers, parameters, links, CORS."""
from __future__ import annotations

import base64
import hashlib

import pytest
from flask.testing import FlaskClient
from lxml import html

from .conftest import BASE_URL


def _hash(text: str) -> str:
    return "'sha256-" + base64.b64encode(hashlib.sha256(text.encode()).digest()).decode() + "'"


def test_embed_page_is_framable_cookieless_and_locked_down(client: FlaskClient) -> None:
    response = client.get("/embed/countries/th")
    assert response.status_code == 200
    assert response.content_type == "text/html; charset=utf-8"
    assert "X-Frame-Options" not in response.headers
    assert "Set-Cookie" not in response.headers
    assert response.headers["Access-Control-Allow-Origin"] == "*"
    assert "Access-Control-Allow-Credentials" not in response.headers
    policy = dict(p.strip().split(" ", 1) for p in response.headers["Content-Security-Policy"].split(";"))
    assert policy["default-src"] == "'none'" and policy["frame-ancestors"] == "*"
    page = html.fromstring(response.data)
    # The only inline style and script are the ones the policy allows, by hash.
    assert policy["style-src"] == _hash(page.xpath("//style")[0].text)
    assert policy["script-src"] == _hash(page.xpath("//script")[0].text)
    assert not page.xpath("//*[@src] | //link | //*[@style]")


def test_embed_lists_latest_releases_with_absolute_links(client: FlaskClient) -> None:
    page = html.fromstring(client.get("/embed/countries/th?limit=2").data)
    items = page.xpath("//li")
    assert len(items) == 2
    feed = client.get("/feeds/countries/th.json?limit=2").get_json()
    for item, entry in zip(items, feed["items"], strict=True):
        link = item.xpath("a")[0]
        assert link.get("href") == entry["url"] and link.get("href").startswith("https://")
        assert link.get("target") == "_blank" and link.get("rel") == "noopener"
        assert link.text == entry["title"]
        assert item.xpath("time/@datetime")[0] == entry["date_published"]
    assert len(html.fromstring(client.get("/embed/topics/social-security").data).xpath("//li")) <= 5


@pytest.mark.parametrize("theme,css_class", [("light", "light"), ("dark", "dark")])
def test_theme(client: FlaskClient, theme: str, css_class: str) -> None:
    page = html.fromstring(client.get(f"/embed/topics/gender-equality?theme={theme}").data)
    assert page.get("class") == css_class


@pytest.mark.parametrize("query,parameter", [("theme=blue", "theme"), ("limit=0", "limit"),
                                             ("limit=x", "limit"), ("theme=dark&theme=light", "theme")])
def test_bad_parameters_are_400_naming_them(client: FlaskClient, query: str, parameter: str) -> None:
    response = client.get(f"/embed/countries/th?{query}")
    assert response.status_code == 400
    assert f"'{parameter}'".encode() in response.data


@pytest.mark.parametrize("path", ["/embed/countries/zz", "/embed/countries/xyz", "/embed/topics/nope"])
def test_unknown_scopes_are_404(client: FlaskClient, path: str) -> None:
    assert client.get(path).status_code == 404


def test_embed_script(client: FlaskClient) -> None:
    response = client.get("/embed.js")
    assert response.status_code == 200
    assert response.content_type == "text/javascript; charset=utf-8"
    assert response.headers["Access-Control-Allow-Origin"] == "*"
    assert b"innerHTML" not in response.data and b"textContent" in response.data
    assert client.get("/embed.js", headers={"If-None-Match": response.headers["ETag"]}).status_code == 304


@pytest.mark.parametrize("path", ["/feeds/all.rss", "/feeds/countries/th.json", "/embed/countries/th",
                                  "/embed.js", "/feeds/all.json?limit=0"])
def test_cors_for_anonymous_get(client: FlaskClient, path: str) -> None:
    response = client.get(path, headers={"Origin": "https://partner.example"})
    assert response.headers["Access-Control-Allow-Origin"] == "*"
    assert "Access-Control-Allow-Credentials" not in response.headers


def test_embed_urls_are_built_from_the_base(client: FlaskClient) -> None:
    page = html.fromstring(client.get("/embed/countries/th").data)
    assert page.xpath("//h1/a/@href") == [f"{BASE_URL}countries/th"]
    assert page.xpath("//p[@class='more']/a/@href") == [f"{BASE_URL}feeds/countries/th.rss"]
