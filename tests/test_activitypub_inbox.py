"""Inboxes through the Flask client, with real draft-cavage-12 signatures (signatures.sign) by a
remote actor whose document and key a loopback server serves (fetched with a signed GET)."""
from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
from flask import Flask, Response, request
from flask.testing import FlaskClient
from werkzeug.test import TestResponse

from feedsvc import create_app
from feedsvc.activitypub import ratelimit
from feedsvc.activitypub.keys import SiteKey, new_site_key
from feedsvc.activitypub.signatures import sign
from feedsvc.config import BUNDLED_DATA
from feedsvc.views import inboxes
from feedsvc.views.activitypub import durable

from .conftest import BASE_URL

TH = f"{BASE_URL}ap/actors/th"


@dataclass
class Remote:
    """A remote actor on a loopback server: its id, key, and the GETs its server received."""

    origin: str
    key: SiteKey
    name: str = "ann"
    gets: list[dict[str, str]] = field(default_factory=list)
    answers: int = 1_000_000  # GETs answered before the server starts failing (500)

    @property
    def id(self) -> str:
        return f"{self.origin}/users/{self.name}"

    def document(self) -> dict[str, Any]:
        return {"@context": "https://www.w3.org/ns/activitystreams", "id": self.id,
                "type": "Person", "preferredUsername": self.name, "inbox": f"{self.id}/inbox",
                "endpoints": {"sharedInbox": f"{self.origin}/inbox"},
                "publicKey": {"id": f"{self.id}#main-key", "owner": self.id,
                              "publicKeyPem": self.key.public_pem}}


@pytest.fixture
def remote(serve: Callable[..., str]) -> Remote:
    site = Flask("remote")
    found: list[Remote] = []

    @site.get("/users/<name>")
    def actor(name: str) -> Response:
        found[0].gets.append(dict(request.headers))
        if len(found[0].gets) > found[0].answers:
            return Response("down", status=500)
        return Response(json.dumps(found[0].document()), content_type="application/activity+json")

    found.append(Remote(serve(site), new_site_key()))
    return found[0]


@pytest.fixture
def app(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Flask]:
    monkeypatch.setenv("FEEDSVC_ACTIVITYPUB_ALLOW_PRIVATE", "loopback")  # the remote is loopback
    app = create_app({"FEEDSVC_DATA": str(BUNDLED_DATA), "FEEDSVC_BASE_URL": BASE_URL,
                      "FEEDSVC_SNAPSHOT_DIR": str(tmp_path / "state")})
    yield app


def post(client: FlaskClient, path: str, activity: dict[str, Any], remote: Remote,
         body: bytes | None = None, key: SiteKey | None = None) -> TestResponse:
    """POST an activity signed by the remote actor (or with `key`); `body` replaces what is
    sent after signing."""
    signed = json.dumps(activity).encode()
    headers = sign("POST", f"{BASE_URL.rstrip('/')}{path}", signed, f"{remote.id}#main-key",
                   (key or remote.key).private_pem)
    return client.post(path, data=signed if body is None else body, headers=headers,
                       base_url=BASE_URL)


def post_from(address: str, client: FlaskClient, path: str, activity: dict[str, Any],
              remote: Remote) -> TestResponse:
    """POST a signed activity as `post` does, from client address `address`."""
    signed = json.dumps(activity).encode()
    headers = sign("POST", f"{BASE_URL.rstrip('/')}{path}", signed, f"{remote.id}#main-key",
                   remote.key.private_pem)
    return client.post(path, data=signed, headers=headers, base_url=BASE_URL,
                       environ_base={"REMOTE_ADDR": address})


def follow(remote: Remote, target: str = TH) -> dict[str, Any]:
    return {"@context": "https://www.w3.org/ns/activitystreams", "id": f"{remote.id}/follows/1",
            "type": "Follow", "actor": remote.id, "object": target}


def queued(app: Flask) -> list[tuple[str, dict[str, Any]]]:
    with app.app_context():
        return [(d.inbox, json.loads(d.body)) for d in durable().claim(100)]


def followers(app: Flask, handle: str = "th") -> int:
    with app.app_context():
        return durable().follower_count(handle)


def test_a_follow_is_recorded_and_answered_with_an_accept(app: Flask, remote: Remote) -> None:
    answer = post(app.test_client(), "/ap/actors/th/inbox", follow(remote), remote)
    assert answer.status_code == 202, answer.get_data(as_text=True)
    assert followers(app) == 1
    [(inbox, accept)] = queued(app)
    assert inbox == f"{remote.id}/inbox"
    assert accept["type"] == "Accept" and accept["actor"] == TH
    assert accept["object"]["id"] == f"{remote.id}/follows/1"
    # the actor was fetched once (its key, then its inbox, from one document) with a signed
    # GET, as authorized-fetch servers want
    assert len(remote.gets) == 1 and "Signature" in remote.gets[0]


def test_the_shared_inbox_takes_follows_of_any_actor(app: Flask, remote: Remote) -> None:
    client = app.test_client()
    assert post(client, "/ap/inbox", follow(remote, f"{BASE_URL}ap/actors/all"),
                remote).status_code == 202
    assert followers(app, "all") == 1
    # a follow of no actor of ours is accepted and ignored
    assert post(client, "/ap/inbox", follow(remote, f"{BASE_URL}ap/actors/zz"),
                remote).status_code == 202
    assert followers(app, "zz") == 0 and len(queued(app)) == 1


def test_undo_and_delete_remove_the_follower(app: Flask, remote: Remote) -> None:
    client = app.test_client()
    post(client, "/ap/inbox", follow(remote), remote)
    undo = {"id": f"{remote.id}/undo/1", "type": "Undo", "actor": remote.id,
            "object": follow(remote)}
    assert post(client, "/ap/inbox", undo, remote).status_code == 202
    assert followers(app) == 0
    post(client, "/ap/inbox", follow(remote), remote)
    post(client, "/ap/inbox", follow(remote, f"{BASE_URL}ap/actors/all"), remote)
    gone = {"id": f"{remote.id}#delete", "type": "Delete", "actor": remote.id, "object": remote.id}
    assert post(client, "/ap/inbox", gone, remote).status_code == 202
    assert followers(app) == followers(app, "all") == 0


def test_other_activities_are_accepted_and_ignored(app: Flask, remote: Remote) -> None:
    like = {"id": f"{remote.id}/likes/1", "type": "Like", "actor": remote.id,
            "object": f"{BASE_URL}releases/pr-2004-005"}
    assert post(app.test_client(), "/ap/inbox", like, remote).status_code == 202
    assert queued(app) == [] and followers(app) == 0


def test_unsigned_or_badly_signed_posts_store_nothing(app: Flask, remote: Remote) -> None:
    client = app.test_client()
    unsigned = client.post("/ap/actors/th/inbox", data=json.dumps(follow(remote)),
                           headers={"Content-Type": "application/activity+json"},
                           base_url=BASE_URL)
    assert unsigned.status_code == 401
    tampered = json.dumps({**follow(remote), "object": f"{BASE_URL}ap/actors/all"}).encode()
    assert post(client, "/ap/inbox", follow(remote), remote, body=tampered).status_code == 401
    assert post(client, "/ap/inbox", follow(remote), remote,
                key=new_site_key()).status_code == 401  # not the key the actor publishes
    other = {**follow(remote), "actor": "https://social.example/users/bob"}
    assert post(client, "/ap/inbox", other, remote).status_code == 401  # on another's behalf
    assert followers(app) == followers(app, "all") == 0 and queued(app) == []


def test_bodies_are_capped_and_senders_limited(app: Flask, remote: Remote,
                                               monkeypatch: pytest.MonkeyPatch) -> None:
    client = app.test_client()
    big = {**follow(remote), "padding": "x" * inboxes.MAX_BODY}
    assert post(client, "/ap/inbox", big, remote).status_code == 413
    monkeypatch.setattr(inboxes, "PER_SENDER", 3)
    statuses = [post(client, "/ap/inbox", follow(remote), remote).status_code for _ in range(5)]
    assert statuses == [202, 202, 202, 429, 429]
    assert followers(app) == 1


def test_a_forged_key_id_spends_no_allowance_of_the_server_it_names(
        app: Flask, remote: Remote, monkeypatch: pytest.MonkeyPatch) -> None:
    client = app.test_client()
    monkeypatch.setattr(inboxes, "PER_SENDER", 3)
    forger = new_site_key()  # posts naming the remote's key id, signed with another key
    forged = [post(client, "/ap/inbox", follow(remote), remote, key=forger).status_code
              for _ in range(5)]
    assert forged == [401] * 5
    assert post(client, "/ap/actors/th/inbox", follow(remote), remote).status_code == 202
    assert followers(app) == 1


def test_one_client_address_is_limited_before_any_signature_is_checked(
        app: Flask, remote: Remote, monkeypatch: pytest.MonkeyPatch) -> None:
    client = app.test_client()
    monkeypatch.setattr(inboxes, "PER_CLIENT", 3)
    forger = new_site_key()
    statuses = [post(client, "/ap/inbox", follow(remote), remote, key=forger).status_code
                for _ in range(4)]
    assert statuses == [401, 401, 401, 429]
    # another address is not limited by it
    other = post_from("203.0.113.9", client, "/ap/inbox", follow(remote), remote)
    assert other.status_code == 202 and followers(app) == 1


def test_a_stranger_leaving_costs_no_fetch(app: Flask, remote: Remote) -> None:
    gone = {"id": f"{remote.id}#delete", "type": "Delete", "actor": remote.id, "object": remote.id}
    assert post(app.test_client(), "/ap/inbox", gone, remote).status_code == 202
    assert remote.gets == []  # never followed us: its key was not fetched


def test_what_cannot_be_read_stores_nothing(app: Flask, remote: Remote) -> None:
    client = app.test_client()
    for body in (b"{not json", b"[1, 2]"):
        headers = sign("POST", f"{BASE_URL}ap/inbox", body, f"{remote.id}#main-key",
                       remote.key.private_pem)
        assert client.post("/ap/inbox", data=body, headers=headers,
                           base_url=BASE_URL).status_code == 400
    like = {"id": f"{remote.id}/likes/1", "type": "Like", "actor": remote.id, "object": TH}
    assert post(client, "/ap/inbox", like, remote).status_code == 202  # its key is kept
    remote.answers = len(remote.gets)  # then its server fails: its inbox cannot be known
    answer = post(client, "/ap/inbox", follow(remote), remote)
    assert answer.status_code == 502 and followers(app) == 0 and queued(app) == []


def test_a_limited_sender_is_let_in_again_the_next_minute(app: Flask, remote: Remote,
                                                          monkeypatch: pytest.MonkeyPatch) -> None:
    now = [1_800_000_000.0]  # the start of a minute
    with app.app_context():
        app.extensions[inboxes.COUNTS] = (ratelimit.Counts(clock=lambda: now[0]),
                                          ratelimit.SharedCounts(durable(), clock=lambda: now[0]))
    monkeypatch.setattr(inboxes, "PER_SENDER", 1)
    client = app.test_client()
    like = {"id": f"{remote.id}/likes/1", "type": "Like", "actor": remote.id, "object": TH}
    assert [post(client, "/ap/inbox", like, remote).status_code for _ in range(2)] == [202, 429]
    now[0] += 59
    assert post(client, "/ap/inbox", like, remote).status_code == 429
    now[0] += 1
    assert post(client, "/ap/inbox", like, remote).status_code == 202
