"""Withdrawn releases: out of every feed and listing, 410 Gone with the note, and an RFC 6721
tombstone in the Atom feeds they were in, for 30 days; corrections: shown, and dated."""
from __future__ import annotations

import json
from collections.abc import Callable
from datetime import datetime, timedelta
from pathlib import Path

import feedparser
import pytest
from flask import Flask
from flask.testing import FlaskClient
from lxml import etree, html
from werkzeug.test import TestResponse

from feedsvc import create_app

from .conftest import BASE_URL, FakeClock, release_yaml
from .helpers import FORMATS, entry_ids, parse_feed
from .test_fastpath import fast_path

AT = "http://purl.org/atompub/tombstones/1.0"
NOTE = "Withdrawn at the request of the ministry: the figures were provisional."


def _releases() -> list[dict[str, object]]:
    gone = release_yaml(2, "2030-05-10", countries=("KH",), topics=("gender-equality",))
    gone |= {"withdrawn": "2030-05-20T09:00:00+07:00", "withdrawn_note": NOTE}
    corrected = release_yaml(3, "2030-05-05", countries=("TH",))
    corrected |= {"body": "The body.", "corrections": [
        {"date": "2030-05-07", "note": "The meeting is on Tuesday, not Monday."},
        {"date": "2030-05-06T10:00:00+07:00", "note": "Spelling of the minister's name."}]}
    return [release_yaml(1, "2030-05-01", countries=("KH",)), gone, corrected]


def _tombstones(client: FlaskClient, path: str) -> list[tuple[str, str, list[str]]]:
    response = client.get(path)
    parse_feed(response)  # still a valid feed for feedparser
    root = etree.fromstring(response.data)
    return [(t.get("ref").rsplit(":", 1)[1], t.get("when"),
             [c.text for c in t.findall(f"{{{AT}}}comment")])
            for t in root.findall(f"{{{AT}}}deleted-entry")]


def test_withdrawn_release_is_out_of_every_feed_and_listing(
        clocked_app: Callable[..., Flask]) -> None:
    client = clocked_app(_releases()).test_client()
    for fmt in FORMATS:
        assert entry_ids(client.get(f"/feeds/all.{fmt}"), fmt) == ["t-003", "t-001"]
        assert entry_ids(client.get(f"/feeds/countries/kh.{fmt}"), fmt) == ["t-001"]
        assert entry_ids(client.get(f"/feeds/topics/gender-equality.{fmt}"), fmt) == []
    for page in ("/", "/countries/kh", "/embed/countries/kh", "/feeds/"):
        links = html.fromstring(client.get(page).data).xpath("//a/@href")
        assert not [link for link in links if link.endswith("/releases/t-002")], page
    directory = html.fromstring(client.get("/feeds/").data).text_content()
    assert "2 releases" in directory  # all: two of three


def test_withdrawn_release_page_is_410_gone_with_the_note(
        clocked_app: Callable[..., Flask]) -> None:
    client = clocked_app(_releases()).test_client()
    response = client.get("/releases/t-002")
    assert response.status_code == 410
    assert response.mimetype == "text/html"
    page = html.fromstring(response.data)
    assert NOTE in page.text_content()
    assert page.xpath("//time/@datetime") == ["2030-05-10T00:00:00+07:00",
                                              "2030-05-20T09:00:00+07:00"]


def test_atom_feeds_carry_a_tombstone_for_thirty_days(clocked_app: Callable[..., Flask],
                                                      clock: FakeClock) -> None:
    client = clocked_app(_releases()).test_client()
    notice = [("t-002", "2030-05-20T09:00:00+07:00", [NOTE])]
    assert _tombstones(client, "/feeds/all.atom") == notice
    assert _tombstones(client, "/feeds/countries/kh.atom") == notice
    assert _tombstones(client, "/feeds/topics/gender-equality.atom") == notice
    assert _tombstones(client, "/feeds/countries/th.atom") == []  # it was never in that feed
    assert _tombstones(client, "/feeds/all.atom?q=nothing") == []
    assert _tombstones(client, "/feeds/all.atom?limit=1") == notice
    # Withdrawal changed the feed: it is dated by it (the newest entry is older).
    assert parse_feed(client.get("/feeds/countries/kh.atom")).feed.updated == \
        "2030-05-20T09:00:00+07:00"
    clock.now = datetime.fromisoformat("2030-06-19T08:59:59+07:00")  # 30 days less a second
    assert _tombstones(client, "/feeds/all.atom") == notice
    clock.advance(seconds=1)
    assert _tombstones(client, "/feeds/all.atom") == []
    assert _tombstones(client, "/feeds/countries/kh.atom") == []


def test_rss_and_json_have_no_tombstone_markup(clocked_app: Callable[..., Flask]) -> None:
    client = clocked_app(_releases()).test_client()
    assert etree.fromstring(client.get("/feeds/all.rss").data).findall(
        f".//{{{AT}}}deleted-entry") == []
    assert "t-002" not in client.get("/feeds/all.json").get_data(as_text=True)


def test_corrections_date_the_entry_and_are_shown(clocked_app: Callable[..., Flask]) -> None:
    client = clocked_app(_releases()).test_client()
    atom = feedparser.parse(client.get("/feeds/countries/th.atom").data)
    (entry,) = atom.entries
    assert entry.updated == "2030-05-07T00:00:00+07:00"  # the newest correction
    content = entry.content[0].value
    assert content.index("The meeting is on Tuesday") < content.index("Spelling of the minister")
    assert content.index("Spelling of the minister") < content.index("The body.")
    rss = feedparser.parse(client.get("/feeds/countries/th.rss").data)
    assert "Correction (2030-05-07): The meeting is on Tuesday" in rss.entries[0].content[0].value
    (item,) = json.loads(client.get("/feeds/countries/th.json").data)["items"]
    assert item["date_modified"] == "2030-05-07T00:00:00+07:00"
    assert "Correction (2030-05-06): Spelling" in item["content_text"]
    page = html.fromstring(client.get("/releases/t-003").data)
    notes = [li.text_content() for li in page.xpath("//*[@class='corrections']//li")]
    assert len(notes) == 2 and "Tuesday, not Monday" in notes[0] and "Spelling" in notes[1]


def _max_age(response: TestResponse) -> int:
    control = dict(part.strip().partition("=")[::2]
                   for part in response.headers["Cache-Control"].split(","))
    return int(control["max-age"]) + int(control["stale-while-revalidate"])


def test_a_withdrawn_release_scheduled_later_ends_the_cache_lifetime_when_it_goes_live(
        clocked_app: Callable[..., Flask], clock: FakeClock) -> None:
    """Published in 100 s, already withdrawn: nothing is listed, but its notice appears in the
    Atom feeds then, so no answer may be kept (stale copies included) past that instant, by
    Flask or by the fast path (its second answer)."""
    live = clock.now + timedelta(seconds=100)
    gone = {**release_yaml(2, live.isoformat(), countries=("KH",)),
            "withdrawn": (live + timedelta(days=2)).isoformat(), "withdrawn_note": NOTE}
    app = clocked_app([release_yaml(1, "2030-05-01", countries=("KH",)), gone])
    client, fast = app.test_client(), fast_path(app)
    for path in ("/feeds/all.atom", "/feeds/countries/kh.atom", "/feeds/all.rss"):
        for answered_by_fast in (0, 1):  # Flask renders it; the fast path answers it again
            answered = fast.answered
            assert 0 < _max_age(client.get(path)) <= 100, path
            assert fast.answered == answered + answered_by_fast
    assert _tombstones(client, "/feeds/all.atom") == []
    clock.now = live
    notice = [("t-002", (live + timedelta(days=2)).isoformat(), [NOTE])]
    assert _tombstones(client, "/feeds/all.atom") == notice
    assert _tombstones(client, "/feeds/countries/kh.atom") == notice
    for fmt in FORMATS:  # never listed
        assert entry_ids(client.get(f"/feeds/all.{fmt}"), fmt) == ["t-001"]
    assert _max_age(client.get("/feeds/all.atom")) > 100  # nothing further is scheduled


@pytest.mark.parametrize(("date", "modified"), [
    ("2024-03-05T15:30:00+07:00", "2024-03-05T15:30:00+07:00"),  # the day of publication, timed
    ("2024-03-06", "2024-03-06T00:00:00+07:00"),  # a later day: its midnight
    ("2024-03-05", "2024-03-05T09:00:00+07:00"),  # that day's midnight is before: nothing moves
])
def test_a_correction_made_the_day_of_publication_dates_the_entry_by_its_time(
        make_dataset: Callable[..., Path], date: str, modified: str) -> None:
    """docs/dataset.md, Corrected: a date alone is midnight."""
    release = {**release_yaml(1, "2024-03-05T09:00:00+07:00"),
               "corrections": [{"date": date, "note": "A name was misspelt."}]}
    client = create_app({"FEEDSVC_DATA": str(make_dataset([release])),
                         "FEEDSVC_BASE_URL": BASE_URL}).test_client()
    item = client.get("/feeds/all.json").get_json()["items"][0]
    assert (item["date_published"], item["date_modified"]) == ("2024-03-05T09:00:00+07:00",
                                                              modified)
    assert "A name was misspelt." in item["content_text"]
