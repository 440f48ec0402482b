"""Replay: a repeated feed request is answered from the worker's recording, exactly as before."""
from __future__ import annotations

from pathlib import Path

import pytest
from flask import Flask
from flask.testing import FlaskClient

from feedsvc import create_app
from feedsvc.config import BUNDLED_DATA
from feedsvc.dataset import load_dataset
from feedsvc.index import build_index
from feedsvc.replay import Replay

from .conftest import BASE_URL
from .helpers import parse_feed

URLS = ["/feeds/all.rss", "/feeds/countries/th.atom?topic=social-security",
        "/feeds/topics/occupational-safety-and-health.json?limit=3"]
ENCODINGS = [{}, {"Accept-Encoding": "gzip"}]


def same_headers(a: dict[str, str], b: dict[str, str]) -> None:
    a, b = dict(a), dict(b)
    assert a.pop("X-Request-ID") != b.pop("X-Request-ID")
    assert a == b


@pytest.mark.parametrize("url", URLS)
@pytest.mark.parametrize("headers", ENCODINGS)
def test_replayed_response_is_the_recorded_one(client: FlaskClient, url: str,
                                               headers: dict[str, str]) -> None:
    first, second = client.get(url, headers=headers), client.get(url, headers=headers)
    assert first.status_code == second.status_code == 200
    assert first.data == second.data
    same_headers(first.headers, second.headers)


def test_replay_answers_without_the_app(app: Flask) -> None:
    client = app.test_client()
    recorded = client.get("/feeds/all.rss")

    def broken(**_: str) -> None:
        raise RuntimeError("the view must not run for a replayed request")
    app.view_functions["feeds.all_releases"] = broken
    replayed = client.get("/feeds/all.rss", headers={"X-Request-ID": "poll-42"})
    assert replayed.data == recorded.data and replayed.headers["X-Request-ID"] == "poll-42"
    assert client.get("/feeds/all.rss?limit=3").status_code == 500  # not recorded: the app ran


def test_replay_answers_conditional_and_head_requests(client: FlaskClient) -> None:
    plain = client.get("/feeds/all.atom")
    zipped = client.get("/feeds/all.atom", headers={"Accept-Encoding": "gzip"})
    for etag in (plain.headers["ETag"], zipped.headers["ETag"], f'W/{plain.headers["ETag"]}, "x"'):
        not_modified = client.get("/feeds/all.atom", headers={"If-None-Match": etag})
        assert not_modified.status_code == 304 and not_modified.data == b""
        assert not_modified.headers["ETag"] == plain.headers["ETag"]
        assert "Content-Type" not in not_modified.headers
    since = client.get("/feeds/all.atom", headers={"If-Modified-Since": plain.headers["Last-Modified"]})
    assert since.status_code == 304
    assert client.get("/feeds/all.atom", headers={"If-None-Match": '"other"'}).data == plain.data
    head = client.head("/feeds/all.atom")
    assert head.status_code == 200 and head.data == b""
    assert head.headers["Content-Length"] == plain.headers["Content-Length"]


def test_a_new_dataset_version_is_never_answered_from_an_old_recording(app: Flask,
                                                                        dataset_dir: Path) -> None:
    client = app.test_client()
    before = parse_feed(client.get("/feeds/countries/in.rss"))
    path = dataset_dir / "releases" / "pr-2004-005.yaml"
    path.write_text(path.read_text().replace("official visit to India", "visit to New Delhi"))
    app.extensions["feedsvc.live"].swap(build_index(load_dataset(dataset_dir)))
    after = parse_feed(client.get("/feeds/countries/in.rss"))
    assert before.entries[0].title.endswith("official visit to India")
    assert after.entries[0].title == "ILO Director-General on visit to New Delhi"


def test_each_host_has_its_own_recording_when_links_follow_the_host() -> None:
    app = create_app({"FEEDSVC_DATA": str(BUNDLED_DATA)})
    client = app.test_client()
    for host in ("a.example", "b.example", "a.example"):
        feed = parse_feed(client.get("/feeds/all.rss", base_url=f"http://{host}/"))
        assert feed.feed.link == f"http://{host}/"


def test_recordings_are_bounded() -> None:
    app = create_app({"FEEDSVC_DATA": str(BUNDLED_DATA), "FEEDSVC_BASE_URL": BASE_URL,
                      "FEEDSVC_MEMO_ENTRIES": 2})
    client = app.test_client()
    for limit in range(1, 30):
        assert client.get(f"/feeds/all.json?limit={limit}").status_code == 200
    layer = app.wsgi_app  # the replay, below the host canonicalisation (feedsvc/proxy.py)
    while not isinstance(layer, Replay):
        layer = layer.wsgi_app  # type: ignore[attr-defined]
    assert len(layer) == 2
