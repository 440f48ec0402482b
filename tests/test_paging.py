"""Paging: every feed links to the next older page with a stable cursor (RFC 5005, next_url)."""
from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import feedparser
import pytest
from flask import Flask
from flask.testing import FlaskClient

from feedsvc import create_app
from feedsvc.dataset import load_dataset

from .conftest import BASE_URL, release_yaml
from .helpers import publish


def _sixty(make_dataset: Callable[..., Path]) -> Path:
    # Twelve dates, five releases each: pages of 7 split ties, and ids order them.
    releases = [release_yaml(n, f"2020-01-{1 + n // 5:02d}",
                             countries=("TH",) if n % 2 else ("KH", "TH"),
                             topics=("social-security",) if n % 3 else ("gender-equality",))
                for n in range(60)]
    return make_dataset(releases)


@pytest.fixture
def paged_app(make_dataset: Callable[..., Path]) -> Flask:
    return create_app({"FEEDSVC_DATA": str(_sixty(make_dataset)), "FEEDSVC_BASE_URL": BASE_URL})


def _walk(client: FlaskClient, url: str) -> tuple[list[str], int]:
    """Follow rel=next from a feed URL; return the entry ids in order and the number of pages."""
    seen: list[str] = []
    pages = 0
    while url:
        response = client.get(url.removeprefix(BASE_URL.rstrip("/")))
        assert response.status_code == 200, response.data
        pages += 1
        if url.split("?")[0].endswith(".json"):
            feed = response.get_json()
            seen += [item["id"] for item in feed["items"]]
            url = feed.get("next_url", "")
        else:
            parsed = feedparser.parse(response.data)
            assert parsed.bozo == 0
            seen += [entry.id for entry in parsed.entries]
            url = next((link.href for link in parsed.feed.get("links", []) if link.rel == "next"), "")
        assert pages <= 60
    return seen, pages


@pytest.mark.parametrize("fmt", ["rss", "atom", "json"])
@pytest.mark.parametrize("path,expected", [("all", 60), ("countries/kh", 30),
                                           ("topics/gender-equality", 20)])
def test_walk_sees_every_release_once(paged_app: Flask, fmt: str, path: str,
                                      expected: int) -> None:
    seen, pages = _walk(paged_app.test_client(), f"{BASE_URL}feeds/{path}.{fmt}?limit=7")
    assert len(seen) == len(set(seen)) == expected
    assert pages == -(-expected // 7)
    index = load_dataset(paged_app.config["FEEDSVC_DATA"])
    newest_first = [f"tag:ilo.org,2004:release:{r.id}" for r in index.releases]
    assert seen == [tag for tag in newest_first if tag in set(seen)]


def test_first_page_is_the_subscription_url(client: FlaskClient) -> None:
    parsed = feedparser.parse(client.get("/feeds/all.atom?limit=3").data)
    links = {link.rel: link.href for link in parsed.feed.links}
    assert links["self"] == f"{BASE_URL}feeds/all.atom?limit=3"
    assert "before=" in links["next"] and "limit=3" in links["next"]
    second = feedparser.parse(client.get(links["next"].removeprefix(BASE_URL[:-1])).data)
    # Every page is the same feed: the cursor is not part of its id.
    assert second.feed.id == parsed.feed.id
    assert {link.rel: link.href for link in second.feed.links}["self"] == links["next"]


def test_last_page_has_no_next(client: FlaskClient) -> None:
    feed = client.get("/feeds/all.json?limit=100").get_json()
    assert "next_url" not in feed


@pytest.mark.parametrize("cursor", ["garbage", "20200101T000000Z", "20201301T000000Z~t-001",
                                    "20200101T000000Z~<b>", "20200101T000000Z~", "x" * 500])
def test_garbage_cursor_is_a_400_naming_the_parameter(client: FlaskClient, cursor: str) -> None:
    response = client.get("/feeds/all.rss", query_string={"before": cursor})
    assert response.status_code == 400
    assert b"'before'" in response.data


def test_cursor_survives_deletions_and_insertions(paged_app: Flask,
                                                  make_dataset: Callable[..., Path]) -> None:
    client = paged_app.test_client()
    first = client.get("/feeds/all.json?limit=7").get_json()
    last_id = first["items"][-1]["id"].rsplit(":", 1)[1]
    # The release the cursor names is deleted, and a newer one is published.
    kept = [release_yaml(n, f"2020-01-{1 + n // 5:02d}") for n in range(60) if f"t-{n:03d}" != last_id]
    kept.append(release_yaml(99, "2021-01-01"))
    publish(paged_app, kept)  # through the reload path: the store's keys renumbered
    second = client.get(first["next_url"].removeprefix(BASE_URL[:-1])).get_json()
    before = [item["id"] for item in first["items"]]
    after = [item["id"] for item in second["items"]]
    assert not set(before) & set(after)
    expected = [f"tag:ilo.org,2004:release:{r.id}"
                for r in load_dataset(paged_app.config["FEEDSVC_DATA"]).releases]
    start = expected.index(before[-2]) + 1
    assert after == expected[start:start + 7]


def test_html_pages_accept_the_cursor(paged_app: Flask) -> None:
    client = paged_app.test_client()
    feed = client.get("/feeds/all.json?limit=7").get_json()
    page = client.get(feed["next_url"].removeprefix(BASE_URL[:-1]).replace("/feeds/all.json", "/"))
    assert page.status_code == 200
    assert feed["items"][0]["title"].encode() not in page.data
