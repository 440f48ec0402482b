"""The feed URL contract: every feed, every format, filters, and the errors around them."""
from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

import pycountry
import pytest
from flask.testing import FlaskClient

from feedsvc import create_app

from .conftest import BASE_URL, release_yaml
from .helpers import FORMATS, entry_ids, parse_feed
from .seed import COUNTRIES, NEWEST_FIRST, SEED, TOPICS, ids_where

CONTENT_TYPES = {
    "rss": "application/rss+xml; charset=utf-8",
    "atom": "application/atom+xml; charset=utf-8",
    "json": "application/feed+json; charset=utf-8",
}


@pytest.mark.parametrize("fmt", FORMATS)
def test_all_feed_lists_every_seed_release_newest_first(client: FlaskClient, fmt: str) -> None:
    response = client.get(f"/feeds/all.{fmt}")
    assert response.headers["Content-Type"] == CONTENT_TYPES[fmt]
    assert entry_ids(response, fmt) == NEWEST_FIRST


@pytest.mark.parametrize("fmt", FORMATS)
@pytest.mark.parametrize("code", COUNTRIES)
def test_country_feeds(client: FlaskClient, fmt: str, code: str) -> None:
    response = client.get(f"/feeds/countries/{code}.{fmt}")
    assert response.headers["Content-Type"] == CONTENT_TYPES[fmt]
    assert entry_ids(response, fmt) == ids_where(country={code})


@pytest.mark.parametrize("fmt", FORMATS)
@pytest.mark.parametrize("slug", TOPICS)
def test_topic_feeds(client: FlaskClient, fmt: str, slug: str) -> None:
    response = client.get(f"/feeds/topics/{slug}.{fmt}")
    assert entry_ids(response, fmt) == ids_where(topic={slug})


def test_every_iso_country_has_a_valid_feed(client: FlaskClient) -> None:
    for country in pycountry.countries:
        code = country.alpha_2.lower()
        parsed = parse_feed(client.get(f"/feeds/countries/{code}.atom"))
        expected = ids_where(country={code})
        assert [e.id.rsplit(":", 1)[1] for e in parsed.entries] == expected, code


@pytest.mark.parametrize("fmt", FORMATS)
def test_empty_country_feed_is_valid(client: FlaskClient, fmt: str) -> None:
    response = client.get(f"/feeds/countries/fr.{fmt}")
    assert entry_ids(response, fmt) == []


def test_seed_releases_carry_their_published_dates_countries_and_topics(client: FlaskClient) -> None:
    atom = parse_feed(client.get("/feeds/all.atom?limit=100"))
    rss = parse_feed(client.get("/feeds/all.rss?limit=100"))
    for entry, item in zip(atom.entries, rss.entries, strict=True):
        rid = entry.id.rsplit(":", 1)[1]
        title, day, countries, topics, dateline = SEED[rid]
        assert entry.title.startswith(title)
        # Midnight in Bangkok on the day published: never the day before in UTC.
        assert entry.published == f"{day}T00:00:00+07:00"
        assert entry.updated == f"{day}T00:00:00+07:00"
        assert item.published.endswith("00:00:00 +0700")
        assert f"{int(day[8:])} " in item.published and day[:4] in item.published
        terms = {t.term for t in entry.tags}
        assert terms == set(topics) | set(countries)
        if dateline:
            assert entry.summary.startswith(f"{dateline} — ")


def test_the_bangkok_date_in_every_format(client: FlaskClient) -> None:
    rss = parse_feed(client.get("/feeds/countries/kh.rss"))
    assert rss.entries[0].published == "Mon, 17 Jan 2005 00:00:00 +0700"
    items = json.loads(client.get("/feeds/countries/kh.json").data)["items"]
    assert items[0]["date_published"] == "2005-01-17T00:00:00+07:00"


@pytest.mark.parametrize(("query", "expected"), [
    ("country=th", ids_where(country={"th"})),
    ("country=th,kh", ids_where(country={"th", "kh"})),
    ("country=th&country=KH", ids_where(country={"th", "kh"})),
    ("topic=social-security,gender-equality", ids_where(topic={"social-security", "gender-equality"})),
    ("country=th&topic=occupational-safety-and-health",
     ids_where(country={"th"}, topic={"occupational-safety-and-health"})),
    ("country=kh,kr&topic=occupational-safety-and-health,working-conditions",
     ids_where(country={"kh", "kr"}, topic={"occupational-safety-and-health", "working-conditions"})),
    ("q=WISH", ["pr-2004-004", "pr-2004-002"]),
    ("q=safety+homeworkers", ["pr-2004-004"]),
    ("q=%EF%BC%B7%EF%BC%A9%EF%BC%B3%EF%BC%A8", ["pr-2004-004", "pr-2004-002"]),  # full-width
    ("q=ho%C2%ADme%E2%80%8Bworkers+SAFETY", ["pr-2004-004"]),  # soft hyphen, zero-width space
    ("q=coal&country=cn", ["pr-2004-001"]),
    ("q=coal&country=th", []),
    ("since=2004-12-03", NEWEST_FIRST[:4]),
    ("since=2004-12-04", NEWEST_FIRST[:3]),
    ("limit=3", NEWEST_FIRST[:3]),
    ("limit=100&utm_source=newsletter&fbclid=x", NEWEST_FIRST),
])
@pytest.mark.parametrize("fmt", FORMATS)
def test_query_filters_select_exactly(client: FlaskClient, fmt: str, query: str,
                                      expected: list[str]) -> None:
    assert entry_ids(client.get(f"/feeds/all.{fmt}?{query}"), fmt) == expected


def test_path_and_query_filters_combine(client: FlaskClient) -> None:
    response = client.get("/feeds/countries/th.atom?topic=occupational-safety-and-health")
    assert entry_ids(response, "atom") == ["pr-2004-004"]
    response = client.get("/feeds/topics/occupational-safety-and-health.rss?country=kh")
    assert entry_ids(response, "rss") == ["pr-2004-002"]


def test_titles_say_what_was_filtered(client: FlaskClient) -> None:
    assert parse_feed(client.get("/feeds/countries/th.rss")).feed.title.endswith(" — Thailand")
    topic = parse_feed(client.get("/feeds/topics/occupational-safety-and-health.atom"))
    assert topic.feed.title.endswith(" — Occupational safety and health")
    both = parse_feed(client.get("/feeds/countries/th.rss?topic=social-security"))
    assert both.feed.title.endswith(" — Thailand — Social security")


def test_equivalent_queries_give_identical_responses(client: FlaskClient) -> None:
    a = client.get("/feeds/all.rss?topic=social-security,gender-equality")
    b = client.get("/feeds/all.rss?topic=gender-equality&topic=social-security&utm_medium=x")
    assert a.data == b.data and a.headers["ETag"] == b.headers["ETag"]


@pytest.mark.parametrize(("query", "parameter"), [
    ("limit=0", "limit"), ("limit=101", "limit"), ("limit=ten", "limit"), ("limit=5&limit=6", "limit"),
    ("since=2005-02-30", "since"), ("since=yesterday", "since"), ("since=17/01/2005", "since"),
    ("country=zz", "country"), ("country=tha", "country"), ("country=th,", None),
    ("topic=cooking", "topic"), ("q=" + "x" * 201, "q"),
    ("q=" + "+".join(f"w{n}" for n in range(13)), "q"),  # more words than the store matches
    ("country=" + ",".join(["th"] * 51), "country"),
    ("topic=" + "&topic=".join(["gender-equality"] * 51), "topic"),
    ("q=a&q=b", "q"), ("since=2005-01-01&since=2005-01-02", "since"),
    ("before=20050116T170000Z~pr-2005-001&before=20050116T170000Z~pr-2005-001", "before"),
])
def test_bad_parameters_get_a_400_naming_them(client: FlaskClient, query: str,
                                               parameter: str | None) -> None:
    response = client.get(f"/feeds/all.rss?{query}")
    if parameter is None:  # a trailing comma is harmless
        assert response.status_code == 200
        return
    assert response.status_code == 400
    body = response.get_data(as_text=True)
    assert f"'{parameter}'" in body
    assert response.headers["Content-Type"].startswith("text/plain")


def test_uppercase_country_redirects_permanently_to_lowercase(client: FlaskClient) -> None:
    response = client.get("/feeds/countries/TH.atom?topic=social-security")
    assert response.status_code == 301
    assert response.headers["Location"] == (
        "https://feeds.example.org/feeds/countries/th.atom?topic=social-security")
    assert client.get("/feeds/countries/Th.rss").status_code == 301


@pytest.mark.parametrize("path", [
    "/feeds/countries/zz.rss", "/feeds/countries/xyz.rss", "/feeds/countries/t.atom",
    "/feeds/countries/th.xml", "/feeds/topics/cooking.rss", "/feeds/topics/Social-Security.rss",
    "/feeds/everything.rss", "/feeds/countries/..%2f..%2fetc%2fpasswd.rss",
])
def test_unknown_feeds_are_404_with_a_short_message(client: FlaskClient, path: str) -> None:
    response = client.get(path)
    assert response.status_code == 404
    assert 0 < len(response.data) < 300


def test_q_with_as_many_words_as_allowed_is_answered(client: FlaskClient) -> None:
    twelve = "+".join(f"w{n}" for n in range(12)) + "+w0"  # a repeated word counts once
    response = client.get(f"/feeds/all.json?q={twelve}")
    assert response.status_code == 200
    assert response.get_json()["items"] == []


def test_an_entry_in_another_language_says_so(make_dataset: Callable[..., Path]) -> None:
    """Atom's xml:lang on the entry, JSON Feed's item language; RSS has no way to say it."""
    thai = {**release_yaml(1, "2024-03-05"), "title": "แรงงานข้ามชาติ", "language": "th"}
    client = create_app({"FEEDSVC_DATA": str(make_dataset([thai, release_yaml(2, "2024-03-04")])),
                         "FEEDSVC_BASE_URL": BASE_URL}).test_client()
    atom = parse_feed(client.get("/feeds/all.atom"))
    assert [(e.title, e.title_detail.language) for e in atom.entries] == [
        ("แรงงานข้ามชาติ", "th"), ("Test release number 2", "en")]
    items = client.get("/feeds/all.json").get_json()["items"]
    assert [item["language"] for item in items] == ["th", "en"]
