"""The fast path: a feed held in the worker's memory is answered before Flask, exactly as Flask
would answer it."""
from __future__ import annotations

import sqlite3
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from flask import Flask
from lxml import etree
from werkzeug.test import TestResponse

from feedsvc import state
from feedsvc.config import BUNDLED_DATA
from feedsvc.dataset import reader
from feedsvc.dataset.db import connect
from feedsvc.http import fastpath
from feedsvc.http.fastpath import FastPath
from feedsvc.operations.reload import reloader

from .conftest import BASE_URL, FakeClock, build, release_yaml
from .helpers import parse_feed

URLS = ["/feeds/all.rss", "/feeds/countries/th.atom?topic=social-security",
        "/feeds/topics/occupational-safety-and-health.json?limit=3"]
ENCODINGS = [{}, {"Accept-Encoding": "gzip"}]
AT = "http://purl.org/atompub/tombstones/1.0"


def fast_path(app: Flask) -> FastPath:
    found = fastpath.fast_path(app)
    assert isinstance(found, FastPath)
    return found


def headers_of(response: TestResponse) -> dict[str, str]:
    return {k: v for k, v in response.headers.items() if k != "X-Request-ID"}


@pytest.mark.parametrize("url", URLS)
@pytest.mark.parametrize("headers", ENCODINGS)
def test_the_fast_path_answers_as_flask_does(url: str, headers: dict[str, str]) -> None:
    fast, slow = build(), build(FEEDSVC_FAST_PATH=False)
    assert fastpath.fast_path(slow) is None
    # The first request of each renders (in the fast app too: through Flask); the second is
    # tested, against both.
    rendered = [app.test_client().get(url, headers=headers) for app in (fast, slow)][0]
    answered = fast_path(fast).answered
    by_fast, by_flask = fast.test_client().get(url, headers=headers), slow.test_client().get(
        url, headers=headers)
    assert fast_path(fast).answered == answered + 1
    assert by_fast.status_code == by_flask.status_code == rendered.status_code == 200
    assert by_fast.data == by_flask.data == rendered.data
    assert headers_of(by_fast) == headers_of(rendered)
    # Each app dates the dataset by its own commit of it (conditional.dated): Last-Modified
    # may differ by the second between two apps, as between two instances.
    assert {k: v for k, v in headers_of(by_fast).items() if k != "Last-Modified"} == \
        {k: v for k, v in headers_of(by_flask).items() if k != "Last-Modified"}
    assert by_fast.headers["X-Request-ID"] != by_flask.headers["X-Request-ID"]


def test_the_fast_path_answers_without_the_app() -> None:
    app = build()
    client = app.test_client()
    first = client.get("/feeds/all.rss")

    def broken(**_: str) -> str:
        raise RuntimeError("the view must not run for a feed the worker holds")
    app.view_functions["feeds.all_releases"] = broken
    again = client.get("/feeds/all.rss", headers={"X-Request-ID": "poll-42"})
    assert again.data == first.data and again.headers["X-Request-ID"] == "poll-42"
    # Another query is another key: not held, so the (broken) view runs.
    assert client.get("/feeds/all.rss?limit=3").status_code == 500
    # The same canonical query in other words is the same key: answered here.
    assert client.get("/feeds/all.rss?limit=20&utm_source=x").data == first.data


@pytest.mark.parametrize("fast", [True, False], ids=["fast-path", "flask"])
def test_304_and_head_agree_on_both_paths(fast: bool) -> None:
    app = build(FEEDSVC_FAST_PATH=fast)
    client = app.test_client()
    plain = client.get("/feeds/all.atom")
    zipped = client.get("/feeds/all.atom", headers={"Accept-Encoding": "gzip"})
    hits = state.feed_cache(app).local_hits
    for etag in (plain.headers["ETag"], zipped.headers["ETag"], f'W/{plain.headers["ETag"]}, "x"'):
        not_modified = client.get("/feeds/all.atom", headers={"If-None-Match": etag})
        assert not_modified.status_code == 304 and not_modified.data == b""
        assert not_modified.headers["ETag"] == plain.headers["ETag"]
        assert "Content-Type" not in not_modified.headers
        assert not_modified.headers["Access-Control-Allow-Origin"] == "*"
    assert state.feed_cache(app).local_hits == hits  # a 304 needs no body
    since = client.get("/feeds/all.atom", headers={"If-Modified-Since": plain.headers["Last-Modified"]})
    assert since.status_code == 304
    assert client.get("/feeds/all.atom", headers={"If-None-Match": '"other"'}).data == plain.data
    head = client.head("/feeds/all.atom")
    assert head.status_code == 200 and head.data == b""
    assert head.headers["Content-Length"] == plain.headers["Content-Length"]
    assert (fast_path(app).answered == 7) if fast else fastpath.fast_path(app) is None


def test_a_new_dataset_version_is_never_answered_from_the_old(dataset_dir: Path) -> None:
    app = build(FEEDSVC_DATA=str(dataset_dir))
    client = app.test_client()
    before = parse_feed(client.get("/feeds/countries/in.rss"))
    path = next((dataset_dir / "releases").glob("pr-2004-005*"))
    path.write_text(path.read_text().replace("official visit to India", "visit to New Delhi"))
    assert reloader(app).check() == "reloaded"  # as the watcher would, on the change
    after = parse_feed(client.get("/feeds/countries/in.rss"))
    assert before.entries[0].title.endswith("official visit to India")
    assert after.entries[0].title == "ILO Director-General on visit to New Delhi"


def test_each_host_has_its_own_entry_when_links_follow_the_host() -> None:
    app = build(FEEDSVC_BASE_URL=None)
    client = app.test_client()
    for host in ("a.example", "b.example", "a.example", "b.example"):
        feed = parse_feed(client.get("/feeds/all.rss", base_url=f"http://{host}/"))
        assert feed.feed.link == f"http://{host}/"
    assert fast_path(app).answered == 2


@pytest.mark.parametrize("base", [None, BASE_URL])
def test_refusals_are_flasks_to_make(base: str | None) -> None:
    app = build(FEEDSVC_BASE_URL=base, FEEDSVC_ALLOWED_HOSTS=["feeds.example.org"])
    client = app.test_client()
    good = {"Host": "feeds.example.org"}
    assert client.get("/feeds/all.rss", headers=good).status_code == 200
    assert client.get("/feeds/all.rss", headers={"Host": "evil.example"}).status_code == 400
    assert client.get("/feeds/all.rss?limit=x", headers=good).status_code == 400
    assert client.get("/feeds/countries/TH.rss", headers=good).status_code == 301
    assert client.post("/feeds/all.rss", headers=good).status_code == 405
    assert client.get("/feeds/all.rss", headers=good).status_code == 200
    assert fast_path(app).answered == 1


def test_the_fast_path_writes_the_access_line_and_metrics(capsys: pytest.CaptureFixture[str]) -> None:
    app = build(FEEDSVC_LOG_FORMAT="json", FEEDSVC_DATA=str(BUNDLED_DATA), FEEDSVC_BASE_URL=BASE_URL)
    client = app.test_client()
    client.get("/feeds/all.json")
    capsys.readouterr()
    client.get("/feeds/all.json?x=1", headers={"X-Request-ID": "fast-1"})
    (line,) = capsys.readouterr().err.splitlines()
    assert '"cache": "hit"' in line and '"request_id": "fast-1"' in line
    assert '"path": "/feeds/all.json"' in line and '"query": "x=1"' in line
    assert fast_path(app).answered == 1


def test_each_app_parses_a_query_string_once_per_dataset_version(
        monkeypatch: pytest.MonkeyPatch) -> None:
    from feedsvc.feeds.query import FeedQuery, parse_query

    parsed: list[object] = []

    def counted(*args: Any) -> FeedQuery:
        parsed.append(args)
        return parse_query(*args)

    monkeypatch.setattr("feedsvc.views.common.parse_query", counted)
    url = "/feeds/countries/th.atom?topic=social-security"
    first, second = build(), build()
    for _ in range(3):  # a miss (Flask), then hits (the fast path): one parse
        assert first.test_client().get(url).status_code == 200
    assert len(parsed) == 1 and fast_path(first).answered == 2
    key = (state.live(first).index.version, b"topic=social-security")
    assert state.parsed_queries(first).get(key) is not None
    assert state.parsed_queries(second).get(key) is None  # the app's own, not shared
    assert second.test_client().get(url).status_code == 200
    assert len(parsed) == 2


def test_a_hit_reads_nothing_of_the_store_until_a_commit(dataset_dir: Path,
                                                         monkeypatch: pytest.MonkeyPatch) -> None:
    statements: list[str] = []

    def traced(path: Any, write: bool) -> sqlite3.Connection:
        conn = connect(path, write)
        if not write:  # the readers' connections: what a request asks of the store
            conn.set_trace_callback(statements.append)
        return conn
    monkeypatch.setattr(reader, "connect", traced)
    app = build(FEEDSVC_DATA=str(dataset_dir))
    client = app.test_client()
    for round_ in ("before", "after"):
        first = client.get("/feeds/countries/in.rss")  # rendered (a miss, or a new version)
        answered, statements[:] = fast_path(app).answered, []
        for _ in range(3):
            assert client.get("/feeds/countries/in.rss").data == first.data
        assert fast_path(app).answered == answered + 3
        assert statements == ["PRAGMA data_version"] * 3  # no transaction, no query
        if round_ == "before":
            assert parse_feed(first).entries[0].title.endswith("official visit to India")
            path = next((dataset_dir / "releases").glob("pr-2004-005*"))
            path.write_text(path.read_text().replace("official visit to India", "visit to Delhi"))
            assert reloader(app).check() == "reloaded"
    assert parse_feed(first).entries[0].title == "ILO Director-General on visit to Delhi"


def test_what_a_hit_keeps_ends_when_time_changes_what_is_visible(
        clocked_app: Callable[..., Flask], clock: FakeClock) -> None:
    # t-002 goes live in an hour, already withdrawn: its notice appears then (a hidden
    # release: no scheduled publication says so), and the clock may be set back.
    gone = {**release_yaml(2, "2030-06-01T13:00:00+00:00"),
            "withdrawn": "2030-06-01T13:05:00+00:00", "withdrawn_note": "Sent in error."}
    app = clocked_app([release_yaml(1, "2030-05-01"), gone])
    client, start = app.test_client(), clock.now

    def notices() -> list[str]:
        found = []
        for _ in range(2):  # the second from the fast path
            answered = fast_path(app).answered
            root = etree.fromstring(client.get("/feeds/all.atom").data)
            found.append([n.get("ref").rsplit(":", 1)[1]
                          for n in root.iter(f"{{{AT}}}deleted-entry")])
        assert fast_path(app).answered == answered + 1 and found[0] == found[1]
        return found[0]
    assert notices() == []
    clock.advance(minutes=59, seconds=59)
    assert notices() == []
    clock.advance(seconds=1)
    assert notices() == ["t-002"]
    clock.now = start  # set back (a clock corrected): what was visible then, again
    assert notices() == []
    clock.advance(days=31)  # the notice has ended
    assert notices() == []
