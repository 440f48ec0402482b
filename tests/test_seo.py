"""Release pages for search engines and link previews: canonical URL, OpenGraph, JSON-LD."""
from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

from flask.testing import FlaskClient
from lxml import html

from feedsvc import create_app

from .conftest import BASE_URL, release_yaml
from .test_media import GIF_URL, illustrated, with_media

HOSTILE = "Pay </script><script>alert(1)</script> <!-- & “wages” rise"


def head(client: FlaskClient, path: str) -> html.HtmlElement:
    response = client.get(path)
    assert response.status_code == 200
    return html.fromstring(response.data)


def meta(doc: html.HtmlElement) -> dict[str, str]:
    return {(m.get("property") or m.get("name")): m.get("content") for m in doc.xpath("//meta")
            if m.get("content") is not None}


def test_release_page_has_canonical_opengraph_twitter_and_jsonld(
        make_dataset: Callable[..., Path]) -> None:
    root = with_media(make_dataset([illustrated(title=HOSTILE, updated="2005-01-03")]))
    client = create_app({"FEEDSVC_DATA": str(root), "FEEDSVC_BASE_URL": BASE_URL}).test_client()
    doc = head(client, "/releases/t-001")
    assert doc.xpath("//link[@rel='canonical']/@href") == [f"{BASE_URL}releases/t-001"]
    found = meta(doc)
    assert found["og:title"] == found["twitter:title"] == HOSTILE
    assert found["og:url"] == f"{BASE_URL}releases/t-001"
    assert found["og:image"] == found["twitter:image"] == GIF_URL
    assert found["og:description"] == "Summary of test release 1."
    assert found["twitter:card"] == "summary_large_image"
    scripts = doc.xpath("//script")
    assert len(scripts) == 1 and scripts[0].get("type") == "application/ld+json"
    article = json.loads(scripts[0].text)
    assert article["@type"] == "NewsArticle" and article["headline"] == HOSTILE
    assert article["datePublished"] == "2005-01-01T00:00:00+07:00"
    assert article["dateModified"] == "2005-01-03T00:00:00+07:00"
    assert article["image"] == [GIF_URL]
    assert article["publisher"]["name"].startswith("International Labour Organization")
    assert "</script" not in scripts[0].text and "<!--" not in scripts[0].text


def test_a_release_without_picture_is_a_summary_card(make_dataset: Callable[..., Path]) -> None:
    root = make_dataset([release_yaml(1, "2005-01-01")])
    client = create_app({"FEEDSVC_DATA": str(root), "FEEDSVC_BASE_URL": BASE_URL}).test_client()
    doc = head(client, "/releases/t-001")
    found = meta(doc)
    assert found["twitter:card"] == "summary" and "og:image" not in found
    article = json.loads(doc.xpath("//script[@type='application/ld+json']")[0].text)
    assert "image" not in article and article["dateModified"] == article["datePublished"]
