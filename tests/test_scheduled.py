"""Scheduled releases (published in the future) and drafts: served nowhere until their time,
then everywhere, with no file change and no reload; time moved by the clock fixture."""
from __future__ import annotations

import json
import threading
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path

from flask import Flask
from flask.testing import FlaskClient
from lxml import etree, html

from feedsvc import create_app, state
from feedsvc.clock import set_clock
from feedsvc.http.fastpath import fast_path
from feedsvc.operations.export import export
from feedsvc.operations.websub import MAX_WAIT, schedule, start_schedule

from .conftest import BASE_URL, FakeClock, release_yaml
from .helpers import FORMATS, entry_ids, publish
from .test_websub import Hub

AT_ONE = "2030-06-01T13:00:00+00:00"  # an hour after the clock fixture's start


def _releases() -> list[dict[str, object]]:
    scheduled = release_yaml(2, AT_ONE, countries=("LA",), topics=("labour-migration",))
    draft = release_yaml(3, "2030-05-02", countries=("KH",), topics=("gender-equality",))
    draft["draft"] = True
    return [release_yaml(1, "2030-05-01"), scheduled, draft]


def _links(client: FlaskClient, path: str) -> set[str]:
    response = client.get(path)
    assert response.status_code == 200
    return {a.rsplit("/", 1)[-1] for a in html.fromstring(response.data).xpath("//a/@href")}


def _opml_feeds(client: FlaskClient) -> set[str]:
    opml = etree.fromstring(client.get("/feeds.opml").data)
    return {u.rsplit("/", 1)[-1] for u in opml.xpath("//outline/@xmlUrl")}


def _what_readers_see(client: FlaskClient) -> dict[str, object]:
    readiness = client.get("/readyz").get_json()["dataset"]
    directory = html.fromstring(client.get("/feeds/").data).text_content()
    return {
        "feeds": {fmt: entry_ids(client.get(f"/feeds/all.{fmt}"), fmt) for fmt in FORMATS},
        "laos": entry_ids(client.get("/feeds/countries/la.atom"), "atom"),
        "topic": entry_ids(client.get("/feeds/topics/labour-migration.json"), "json"),
        "page": client.get("/releases/t-002").status_code,
        "home": {"t-002", "t-003"} & _links(client, "/"),
        "embed": {"t-002"} & _links(client, "/embed/countries/la"),
        "opml": {"la.rss", "kh.rss"} & _opml_feeds(client),
        "counted": ("2 releases" in directory, "1 release," in directory),
        "readyz": (readiness["visible"], readiness["next_scheduled"]),
    }


def test_scheduled_release_goes_live_at_its_instant_without_reload(
        clocked_app: Callable[..., Flask], clock: FakeClock) -> None:
    app = clocked_app(_releases())
    client, version = app.test_client(), state.live(app).index.version
    before = {"feeds": {fmt: ["t-001"] for fmt in FORMATS}, "laos": [], "topic": [],
              "page": 404, "home": set(), "embed": set(), "opml": set(),
              "counted": (False, True), "readyz": (1, AT_ONE)}
    assert _what_readers_see(client) == before
    assert _what_readers_see(client) == before  # again: now from the caches and fast path
    fast = fast_path(app)  # the proxy layers wrap it: found by its accessor
    assert fast is not None and fast.answered > 0
    clock.advance(minutes=59, seconds=59)
    assert _what_readers_see(client) == before
    clock.advance(seconds=1)
    assert _what_readers_see(client) == {
        "feeds": {fmt: ["t-002", "t-001"] for fmt in FORMATS}, "laos": ["t-002"],
        "topic": ["t-002"], "page": 200, "home": {"t-002"}, "embed": {"t-002"},
        "opml": {"la.rss"}, "counted": (True, True), "readyz": (2, None)}
    assert state.live(app).index.version == version  # nothing was reloaded


def _max_age(client: FlaskClient, path: str) -> tuple[int, int]:
    response = client.get(path)
    assert response.status_code == 200
    control = dict(part.strip().split("=") for part in
                   response.headers["Cache-Control"].split(",") if "=" in part)
    return int(control["max-age"]), int(control["stale-while-revalidate"])


def test_no_copy_outlives_the_next_publication(clocked_app: Callable[..., Flask],
                                               clock: FakeClock) -> None:
    client = clocked_app(_releases()).test_client()
    paths = ["/feeds/all.rss", "/feeds/all.rss", "/", "/feeds/", "/feeds.opml",
             "/embed/countries/th"]  # the feed twice: the fast path answers the second
    assert {_max_age(client, p) for p in paths} == {(300, 600)}  # configured: an hour to go
    clock.advance(minutes=59, seconds=50)
    assert {_max_age(client, p) for p in paths} == {(10, 0)}
    # Not even the "not found" of the release about to appear.
    missing = client.get("/releases/t-002")
    assert missing.status_code == 404 and missing.headers["Cache-Control"] == "public, max-age=10"
    clock.advance(seconds=10)  # published: nothing else is scheduled
    assert {_max_age(client, p) for p in paths} == {(300, 600)}


def test_the_hub_is_told_when_a_scheduled_release_goes_live(
        clocked_app: Callable[..., Flask], clock: FakeClock, serve: Callable[..., str]) -> None:
    hub = Hub()
    app = clocked_app(_releases(), FEEDSVC_WEBSUB_HUB=serve(hub) + "/hub")
    timer = schedule(app)
    assert timer is not None
    timer.arm()
    assert timer.tick() is None and hub.drain() == []  # nothing went live yet
    clock.advance(hours=1)
    published = timer.tick()
    assert isinstance(published, threading.Thread)
    published.join(timeout=30)
    urls = sorted(u.rsplit("/feeds/", 1)[1] for r in hub.drain() for u in r["hub.url"])
    assert urls == sorted(f"{p}.{f}" for p in ("all", "countries/la", "topics/labour-migration")
                          for f in FORMATS)
    assert timer.tick() is None and hub.drain() == []  # told once


def test_drafts_are_never_served(clocked_app: Callable[..., Flask], clock: FakeClock) -> None:
    client = clocked_app(_releases()).test_client()
    clock.advance(days=3650)
    assert client.get("/releases/t-003").status_code == 404
    assert entry_ids(client.get("/feeds/countries/kh.json"), "json") == []
    assert "t-003" not in _links(client, "/topics/gender-equality")
    assert "kh.rss" not in _opml_feeds(client)


def test_export_writes_what_http_serves_at_export_time(
        clocked_app: Callable[..., Flask], clock: FakeClock, tmp_path: Path) -> None:
    app = clocked_app(_releases())
    before = export(app, tmp_path / "before")
    assert "feeds/countries/la.rss" not in {f["path"] for f in before["files"]}
    feed = json.loads((tmp_path / "before/feeds/all.json").read_text(encoding="utf-8"))
    assert [i["id"].rsplit(":", 1)[1] for i in feed["items"]] == ["t-001"]
    clock.advance(hours=1)
    after = export(app, tmp_path / "after")
    assert "feeds/countries/la.rss" in {f["path"] for f in after["files"]}
    assert "feeds/countries/kh.rss" not in {f["path"] for f in after["files"]}  # a draft's
    feed = json.loads((tmp_path / "after/feeds/all.json").read_text(encoding="utf-8"))
    assert [i["id"].rsplit(":", 1)[1] for i in feed["items"]] == ["t-002", "t-001"]


def test_the_timer_fires_at_the_publication(make_dataset: Callable[..., Path],
                                             serve: Callable[..., str]) -> None:
    """The real timer, and time passing: the hub hears of a release due a second after the
    timer is set (the clock runs at the real pace, shifted to just before the release)."""
    hub = Hub()
    due = datetime(2030, 1, 1, tzinfo=UTC)
    releases = [release_yaml(1, "2020-01-01"), release_yaml(2, due.isoformat()),
                release_yaml(4, "2999-01-01T00:00:00+00:00", countries=("VN",))]
    app = create_app({"FEEDSVC_DATA": str(make_dataset(releases)), "FEEDSVC_BASE_URL": BASE_URL,
                      "FEEDSVC_WEBSUB_HUB": serve(hub) + "/hub"})
    shift = due - timedelta(seconds=1) - datetime.now(UTC)
    set_clock(app, lambda: datetime.now(UTC) + shift)
    timer = start_schedule(app)
    assert timer is not None and timer.timer is not None and timer.timer.interval <= 1.1
    # Waits for each publication, with a deadline.
    told = sorted(hub.received.get(timeout=30)["hub.url"][0] for _ in range(9))
    assert told == sorted(f"{BASE_URL}feeds/{p}.{f}" for f in FORMATS
                          for p in ("all", "countries/th", "topics/social-security"))
    for thread in threading.enumerate():
        if thread.name == "websub-publish":
            thread.join(timeout=30)
    assert entry_ids(app.test_client().get("/feeds/all.json"), "json") == ["t-002", "t-001"]
    # Re-armed before publishing, for the release due in 2999: it looks again within the hour.
    assert timer.seen is not None
    assert timer.timer is not None and timer.timer.interval == MAX_WAIT
    timer.timer.cancel()


def test_new_data_with_a_scheduled_release_tells_the_hub_nothing_yet(
        clocked_app: Callable[..., Flask], make_dataset: Callable[..., Path],
        serve: Callable[..., str]) -> None:
    hub = Hub()
    app = clocked_app([release_yaml(1, "2030-05-01")], FEEDSVC_WEBSUB_HUB=serve(hub) + "/hub")
    live = state.live(app)
    publisher = live.listeners[-1]
    threads: list[object] = []
    live.listeners[-1] = lambda old, new: threads.append(publisher(old, new))
    publish(app, _releases())  # the reload path production uses
    (thread,) = threads
    assert isinstance(thread, threading.Thread)
    thread.join(timeout=30)
    assert hub.drain() == []  # the scheduled one is not out, the draft never is
