"""Every object id we send dereferences (issue 22): a GET of each, with an ActivityStreams
Accept, answers the object with that id (the actor's document for a fragment of it: keys,
Accepts), or a Tombstone with 410 once the activity was replaced; never what readers may not
see. The activities are the ones the deliverer queues, read back from the durable file."""
from __future__ import annotations

import json
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from flask import Flask
from flask.testing import FlaskClient

from feedsvc import state
from feedsvc.activitypub import objects
from feedsvc.activitypub.deliver import GIVE_UP_AFTER
from feedsvc.activitypub.durable import Durable
from feedsvc.activitypub.ledger import UNDONE_KEPT, Ledger, announced
from feedsvc.dataset.reader import Reader
from feedsvc.feeds.urls import Urls
from feedsvc.views.activitypub import durable

from .conftest import BASE_URL, FakeClock, release_yaml
from .helpers import publish

AS = "application/activity+json"
ONE, TWO = release_yaml(1, "2030-05-01"), release_yaml(2, "2030-05-02")
LATER = release_yaml(4, "2030-07-01")  # the clock is 1 June: scheduled
FOLLOWER = "https://social.example/users/ann"


def get(client: FlaskClient, ident: str) -> tuple[int, dict[str, Any]]:
    """GET an id as a fediverse server does (the fragment stays with the client)."""
    answer = client.get(ident.split("#")[0].removeprefix(BASE_URL.rstrip("/")),
                        headers={"Accept": AS})
    assert answer.mimetype == AS, (ident, answer.status_code, answer.get_data(as_text=True))
    return answer.status_code, json.loads(answer.data)


def answers(client: FlaskClient, ident: str) -> dict[str, Any]:
    status, document = get(client, ident)
    assert status == 200 and document["id"] == ident.split("#")[0], (ident, status, document)
    return document


def outbox(client: FlaskClient, handle: str) -> list[dict[str, Any]]:
    collection = answers(client, f"{BASE_URL}ap/actors/{handle}/outbox")
    page = answers(client, collection["first"])
    return list(page["orderedItems"])


def test_every_id_we_send_dereferences(clocked_app: Callable[..., Flask], clock: FakeClock,
                                       tmp_path: Path) -> None:
    app = clocked_app([ONE, TWO, LATER], FEEDSVC_SNAPSHOT_DIR=str(tmp_path / "state"))
    client = app.test_client()
    with app.app_context():
        store = durable()
    for handle in ("all", "th", "social-security"):
        store.follow(handle, FOLLOWER, f"{FOLLOWER}/inbox", "https://social.example/inbox")
        actor = answers(client, f"{BASE_URL}ap/actors/{handle}")
        for ident in (actor["followers"], actor["outbox"], actor["publicKey"]["id"]):
            answers(client, ident)
    accept = objects.accept(f"{BASE_URL}ap/actors/th", {"id": f"{FOLLOWER}#follows/1",
                                                        "type": "Follow", "actor": FOLLOWER})
    assert answers(client, accept["id"])["type"] == "Service"
    ledger = Ledger(store, Reader(state.live(app).reader.path), Urls(BASE_URL))
    ledger.sync(clock.now)  # the archive recorded as sent
    sent = outbox(client, "all") + outbox(client, "th")
    assert {item["type"] for item in sent} == {"Create", "Announce"}
    for item in sent:
        assert answers(client, item["id"])["type"] == item["type"]
    # A correction, a new release and a withdrawal: Update, Create, Announce, Delete, Undo.
    publish(app, [{**ONE, "title": "Corrected"}, {**TWO, "withdrawn": "2030-05-03"},
                  release_yaml(3, "2030-05-03"), LATER])
    ledger.sync(clock.now)
    queued = [json.loads(d.body) for d in store.claim(100, now=10.0**12)]
    assert {a["type"] for a in queued} == {"Create", "Announce", "Update", "Delete", "Undo"}
    for activity in queued:
        found = answers(client, activity["id"])
        assert {k: found[k] for k in ("type", "actor")} == \
            {k: activity[k] for k in ("type", "actor")}
    # What went before: t-001's first Create was replaced by its Update (a Tombstone), its
    # Announce still stands (an edit is not boosted again), t-002's were withdrawn.
    for item in sent:
        status, found = get(client, item["id"])
        stands = item["type"] == "Announce" and item["object"].endswith("t-001")
        assert (status, found["type"]) == ((200, "Announce") if stands else (410, "Tombstone"))
        assert found["id"] == item["id"]


def test_no_id_tells_what_readers_may_not_see(clocked_app: Callable[..., Flask],
                                              tmp_path: Path) -> None:
    app = clocked_app([ONE, LATER], FEEDSVC_SNAPSHOT_DIR=str(tmp_path / "state"))
    client = app.test_client()
    urls = Urls(BASE_URL)
    with state.live(app).reader.read() as snapshot:  # as readers will see it in 2031
        release = snapshot.view_at(datetime(2031, 1, 1, tzinfo=UTC)).status("t-004")[1]
    assert release is not None
    version = objects.version(objects.article(release, urls))  # the version it will have
    for kind, handle in (("create", "all"), ("announce", "th"), ("delete", "all"),
                         ("undo-announce", "th")):
        assert client.get(f"/ap/activities/{kind}/{handle}/t-004/{version}",
                          headers={"Accept": AS}).status_code == 404
    for path in ("/ap/activities/create/th/t-001/0", "/ap/activities/delete/all/t-001/tombstone",
                 "/ap/activities/undo-announce/th/t-001/0", "/ap/activities/like/all/t-001/0",
                 "/ap/activities/create/nobody/t-001/0", "/ap/activities/create/all/t-999/0"):
        assert client.get(path, headers={"Accept": AS}).status_code == 404, path


def boosts_undone(clocked_app: Callable[..., Flask], clock: FakeClock, tmp_path: Path
                  ) -> tuple[FlaskClient, Ledger, Durable, dict[str, str]]:
    """Boost t-002, then withdraw it and sync: an Undo of each boost, now. Return the client,
    the ledger, its durable store and the boosts (version by actor handle)."""
    app = clocked_app([ONE, TWO], FEEDSVC_SNAPSHOT_DIR=str(tmp_path / "state"))
    with app.app_context():
        store = durable()
    ledger = Ledger(store, Reader(state.live(app).reader.path), Urls(BASE_URL))
    ledger.sync(clock.now)
    boosts = announced(store, "t-002")
    assert boosts
    publish(app, [ONE, {**TWO, "withdrawn": "2030-05-03"}])
    ledger.sync(clock.now)
    return app.test_client(), ledger, store, boosts


def test_an_undo_answers_only_for_a_boost_that_was_undone(clocked_app: Callable[..., Flask],
                                                          clock: FakeClock, tmp_path: Path) -> None:
    client, _, _, boosts = boosts_undone(clocked_app, clock, tmp_path)
    for handle, version in boosts.items():
        sent = f"{BASE_URL}ap/activities/undo-announce/{handle}/t-002/{version}"
        assert answers(client, sent)["object"]["id"] == \
            f"{BASE_URL}ap/activities/announce/{handle}/t-002/{version}"
        for never in (sent.replace(version, "0" * 16),  # a version it never boosted
                      sent.replace(f"/{handle}/", "/all/")):  # the site actor never boosts
            assert client.get(never.removeprefix(BASE_URL.rstrip("/")),
                              headers={"Accept": AS}).status_code == 404, never


def test_an_undo_answers_while_its_deliveries_may_be_fetched_then_is_forgotten(
        clocked_app: Callable[..., Flask], clock: FakeClock, tmp_path: Path) -> None:
    """An undone boost is kept UNDONE_KEPT (its deliveries are retried for 48 hours, then a
    day for a server to fetch the id): its Undo's id answers until then and 404 after, and
    the sync after that deletes it (the table holds the boosts undone lately, not all)."""
    client, ledger, store, boosts = boosts_undone(clocked_app, clock, tmp_path)
    ids = [f"{BASE_URL}ap/activities/undo-announce/{h}/t-002/{v}" for h, v in boosts.items()]
    assert ids and UNDONE_KEPT > GIVE_UP_AFTER
    clock.advance(seconds=UNDONE_KEPT - 1)
    assert [answers(client, ident)["type"] for ident in ids] == ["Undo"] * len(ids)
    ledger.sync(clock.now)  # kept by a sync before its time
    clock.advance(seconds=2)
    for ident in ids:
        assert client.get(ident.removeprefix(BASE_URL.rstrip("/")),
                          headers={"Accept": AS}).status_code == 404, ident
    assert len(store.read("SELECT * FROM undone_boosts")) == len(ids)
    ledger.sync(clock.now)
    assert store.read("SELECT * FROM undone_boosts") == []
