"""What the fediverse is told, decided from the store (feedsvc/activitypub/ledger.py).

Each test publishes through the dataset's own reload (the watcher's path), lets the ledger sync
as the deliverer does, and reads back what was queued from the durable file.
"""
from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from flask import Flask

from feedsvc import state
from feedsvc.activitypub import objects
from feedsvc.activitypub.durable import Durable
from feedsvc.activitypub.ledger import Ledger, begun
from feedsvc.dataset.reader import Reader
from feedsvc.feeds.urls import Urls

from .conftest import BASE_URL, FakeClock, release_yaml
from .helpers import publish
from .plans import scans

FAR = 10.0**12  # a moment after every delivery is due
ONE = [release_yaml(1, "2030-05-01")]
TWO = [*ONE, release_yaml(2, "2030-05-02")]
TH = "https://th-follower.example/users/ann"
ALL = "https://all-follower.example/users/bob"


@dataclass
class World:
    app: Flask
    durable: Durable
    clock: FakeClock
    urls: Urls

    def ledger(self) -> Ledger:
        """A ledger as a (re)started deliverer makes it: its own reader of the store."""
        return Ledger(self.durable, Reader(state.live(self.app).reader.path), self.urls)

    def generation(self) -> str:
        """Name the store's full build (a new one for each rebuild)."""
        with Reader(state.live(self.app).reader.path).read() as snapshot:
            found = snapshot.conn.execute("SELECT value FROM meta WHERE name = 'generation'")
            return str(found.fetchone()[0])

    def queued(self) -> list[tuple[str, str, dict[str, Any]]]:
        """Take every queued delivery: (signing actor, inbox, activity)."""
        return [(d.signer, d.inbox, json.loads(d.body))
                for d in self.durable.claim(10_000, now=FAR)]


@pytest.fixture
def world(clocked_app: Callable[..., Flask], clock: FakeClock, tmp_path: Path) -> World:
    app = clocked_app([release_yaml(1, "2030-05-01")])
    durable = Durable(tmp_path / "activitypub.sqlite3")
    # Followers of the site actor (shared inbox), and of Thailand (a personal inbox only).
    durable.follow("all", ALL, f"{ALL}/inbox", "https://all-follower.example/inbox")
    durable.follow("th", TH, f"{TH}/inbox", None)
    return World(app, durable, clock, Urls(BASE_URL))


def kinds(queued: list[tuple[str, str, dict[str, Any]]]) -> list[tuple[str, str, str]]:
    return sorted((signer, activity["type"], inbox) for signer, inbox, activity in queued)


def test_the_first_sync_records_the_archive_without_sending(world: World) -> None:
    synced = world.ledger().sync(world.clock.now)
    assert synced.recorded and synced.looked == 1
    assert world.queued() == []


def test_the_first_sync_records_even_without_followers_so_the_first_follow_misses_nothing(
        world: World, tmp_path: Path) -> None:
    lonely = Durable(tmp_path / "lonely.sqlite3")
    reader = Reader(state.live(world.app).reader.path)
    synced = Ledger(lonely, reader, world.urls).sync(world.clock.now)
    assert synced.recorded and synced.looked == 1
    lonely.follow("all", ALL, f"{ALL}/inbox", None)  # then a follow, and a release at once
    publish(world.app, TWO)
    synced = Ledger(lonely, reader, world.urls).sync(world.clock.now)
    assert not synced.recorded and synced.queued == 1
    (delivery,) = lonely.claim(100, now=FAR)
    assert json.loads(delivery.body)["type"] == "Create"


def test_what_changes_after_the_master_started_the_deliverer_is_sent_by_its_first_sync(
        world: World, tmp_path: Path) -> None:
    """The gunicorn master tells the deliverer where the store was before its workers served:
    a Follow and a release before the deliverer's first sync are not swallowed by it."""
    durable = Durable(tmp_path / "begun.sqlite3")
    reader = Reader(state.live(world.app).reader.path)
    publish(world.app, [*ONE, release_yaml(3, "2030-06-01T12:10:00Z")])  # scheduled
    since = begun(reader, world.clock.now)
    durable.follow("all", ALL, f"{ALL}/inbox", None)
    publish(world.app, [*TWO, release_yaml(3, "2030-06-01T12:10:00Z")])
    world.clock.advance(minutes=15)  # the scheduled one went live meanwhile
    synced = Ledger(durable, reader, world.urls, since).sync(world.clock.now)
    assert synced.recorded and synced.queued == 2
    sent = sorted(json.loads(d.body)["object"]["id"] for d in durable.claim(100, now=FAR))
    assert sent == [f"{BASE_URL}releases/t-002", f"{BASE_URL}releases/t-003"]  # not t-001
    # Once the ledger has its own mark, the master's is not read again (a restart).
    publish(world.app, [*TWO, release_yaml(3, "2030-06-01T12:10:00Z"), release_yaml(4, "2030-05-04")])
    assert Ledger(durable, reader, world.urls, since).sync(world.clock.now).queued == 1


def test_a_publication_is_created_by_the_site_and_announced_by_its_followed_actors(
        world: World) -> None:
    world.ledger().sync(world.clock.now)
    new = release_yaml(2, "2030-05-02", countries=("TH", "KH"), topics=("social-security",))
    publish(world.app, [release_yaml(1, "2030-05-01"), new])
    world.ledger().sync(world.clock.now)
    queued = world.queued()
    # KH and social-security have no followers: nothing is queued for them.
    assert kinds(queued) == [("all", "Create", "https://all-follower.example/inbox"),
                             ("th", "Announce", f"{TH}/inbox")]
    by_type = {activity["type"]: activity for _, _, activity in queued}
    page = f"{BASE_URL}releases/t-002"
    assert by_type["Create"]["object"]["id"] == page
    assert by_type["Create"]["actor"] == f"{BASE_URL}ap/actors/all"
    assert by_type["Announce"]["object"] == page
    assert by_type["Announce"]["actor"] == f"{BASE_URL}ap/actors/th"


def test_an_edit_is_an_update_and_a_withdrawal_a_delete_with_each_announce_undone(
        world: World) -> None:
    world.ledger().sync(world.clock.now)
    publish(world.app, [release_yaml(1, "2030-05-01"), release_yaml(2, "2030-05-02")])
    world.ledger().sync(world.clock.now)
    announce = next(a for _, _, a in world.queued() if a["type"] == "Announce")

    edited = release_yaml(2, "2030-05-02", title="A corrected title")
    publish(world.app, [release_yaml(1, "2030-05-01"), edited])
    world.ledger().sync(world.clock.now)
    queued = world.queued()
    assert kinds(queued) == [("all", "Update", "https://all-follower.example/inbox")]
    assert queued[0][2]["object"]["name"] == "A corrected title"

    withdrawn = {**edited, "withdrawn": "2030-05-20T00:00:00+00:00", "withdrawn_note": "Wrong."}
    publish(world.app, [release_yaml(1, "2030-05-01"), withdrawn])
    world.ledger().sync(world.clock.now)
    queued = world.queued()
    assert kinds(queued) == [("all", "Delete", "https://all-follower.example/inbox"),
                             ("th", "Undo", f"{TH}/inbox")]
    by_type = {activity["type"]: activity for _, _, activity in queued}
    assert by_type["Delete"]["object"] == {"id": f"{BASE_URL}releases/t-002", "type": "Tombstone"}
    assert by_type["Undo"]["object"]["id"] == announce["id"]  # the boost it undoes
    assert by_type["Undo"]["object"]["type"] == "Announce"


def test_a_removed_release_file_is_deleted_too(world: World) -> None:
    world.ledger().sync(world.clock.now)
    releases = [release_yaml(n, f"2030-05-0{n}") for n in range(1, 7)]
    publish(world.app, releases)
    world.ledger().sync(world.clock.now)
    world.queued()
    publish(world.app, releases[:-1])  # one of six: under FEEDSVC_MAX_REMOVAL
    world.ledger().sync(world.clock.now)
    assert kinds(world.queued()) == [("all", "Delete", "https://all-follower.example/inbox"),
                                     ("th", "Undo", f"{TH}/inbox")]


def test_a_scheduled_release_is_sent_when_it_goes_live_with_no_file_change(world: World) -> None:
    world.ledger().sync(world.clock.now)
    publish(world.app, [release_yaml(1, "2030-05-01"), release_yaml(2, "2030-06-01T13:00:00Z")])
    synced = world.ledger().sync(world.clock.now)
    assert world.queued() == []
    assert synced.next_change is not None and synced.next_change.isoformat().startswith(
        "2030-06-01T13:00:00")
    world.clock.advance(hours=1)
    world.ledger().sync(world.clock.now)
    assert kinds(world.queued()) == [("all", "Create", "https://all-follower.example/inbox"),
                                     ("th", "Announce", f"{TH}/inbox")]


def test_a_sync_looks_at_what_changed_not_at_the_archive(world: World) -> None:
    releases = [release_yaml(n, f"2030-05-{n % 28 + 1:02d}T{n // 28:02d}:00:00Z")
                for n in range(1, 301)]  # each in a second of its own (ties are renumbered)
    publish(world.app, releases)
    world.ledger().sync(world.clock.now)
    releases[41] = {**releases[41], "title": "Edited"}
    publish(world.app, releases)
    synced = world.ledger().sync(world.clock.now)
    assert synced.looked == 1 and synced.queued == 1


def test_a_sync_after_an_edit_runs_no_scan_of_the_ledger(world: World) -> None:
    """The ledger's size is kept with its rows (a count of them would read every one)."""
    releases = [release_yaml(n, f"2030-05-{n % 28 + 1:02d}T{n // 28:02d}:00:00Z")
                for n in range(1, 31)]
    publish(world.app, releases)
    world.ledger().sync(world.clock.now)
    releases[7] = {**releases[7], "title": "Edited"}
    publish(world.app, releases)
    ledger, statements = world.ledger(), list[str]()
    with world.durable.transaction() as conn:
        conn.set_trace_callback(statements.append)
    try:
        assert ledger.sync(world.clock.now).queued == 1
    finally:
        conn.set_trace_callback(None)
    assert any("FROM ledger " in sql for sql in statements)
    assert scans(conn, statements, few=["ledger_sync"]) == []
    publish(world.app, releases[:-1])  # a release removed: the kept size says so
    world.ledger().sync(world.clock.now)
    assert ("all", "Delete", "https://all-follower.example/inbox") in kinds(world.queued())
    with world.durable.transaction() as conn:
        assert conn.execute("SELECT count(*) FROM ledger").fetchone()[0] == 29


def test_a_restarted_deliverer_sends_nothing_twice(world: World) -> None:
    world.ledger().sync(world.clock.now)
    publish(world.app, [release_yaml(1, "2030-05-01"), release_yaml(2, "2030-05-02")])
    world.ledger().sync(world.clock.now)
    assert len(world.queued()) == 2
    synced = world.ledger().sync(world.clock.now)  # a new process: nothing new to say
    assert synced.queued == 0 and world.queued() == []


def test_a_crash_between_two_activities_queues_neither_and_the_next_sync_both(
        world: World, monkeypatch: pytest.MonkeyPatch) -> None:
    world.ledger().sync(world.clock.now)
    publish(world.app, [release_yaml(1, "2030-05-01"), release_yaml(2, "2030-05-02")])
    real = objects.announce

    def crash(handle: str, article: dict[str, Any]) -> dict[str, Any]:
        raise RuntimeError("the deliverer dies here")

    monkeypatch.setattr(objects, "announce", crash)
    with pytest.raises(RuntimeError):
        world.ledger().sync(world.clock.now)
    assert world.durable.pending() == 0  # the Create went with the ledger row: not written
    monkeypatch.setattr(objects, "announce", real)
    world.ledger().sync(world.clock.now)
    assert [t for _, t, _ in kinds(world.queued())] == ["Create", "Announce"]


def test_a_rebuilt_store_is_compared_release_by_release_and_only_changes_are_sent(
        world: World) -> None:
    world.ledger().sync(world.clock.now)
    publish(world.app, TWO)
    world.ledger().sync(world.clock.now)
    world.queued()
    before = world.generation()
    site = Path(world.app.config["FEEDSVC_DATA"]) / "site.yaml"
    site.write_text(site.read_text(encoding="utf-8").replace("title:", "title: New", 1),
                    encoding="utf-8")  # the site's file: a full read, a new generation
    publish(world.app, [ONE[0], {**TWO[1], "title": "Corrected"}])
    assert world.generation() != before
    synced = world.ledger().sync(world.clock.now)
    assert synced.looked >= 2  # every release compared
    assert kinds(world.queued()) == [("all", "Update", "https://all-follower.example/inbox")]
