"""The fediverse's surface under the shipped gunicorn config (2 gevent workers, forked): one
site key whichever worker answers first, and a signed Follow recorded from any worker."""
from __future__ import annotations

import json
import urllib.request
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import pytest
from flask import Flask, Response

from feedsvc.activitypub.durable import Durable, durable_path
from feedsvc.activitypub.keys import SiteKey, new_site_key
from feedsvc.activitypub.signatures import sign
from feedsvc.config import BUNDLED_DATA

from . import servers
from .conftest import BASE_URL

AS = "application/activity+json"


@pytest.fixture
def gunicorn(tmp_path: Path) -> Iterator[servers.Server]:
    env = {"FEEDSVC_DATA": str(BUNDLED_DATA), "FEEDSVC_BASE_URL": BASE_URL,
           "FEEDSVC_SNAPSHOT_DIR": str(tmp_path / "state"),
           "FEEDSVC_ACTIVITYPUB_ALLOW_PRIVATE": "loopback", "FEEDSVC_RELOAD_INTERVAL": "0",
           # No deliverer: these tests count what the workers queue (one would send and remove
           # it meanwhile), and the workers make the key (the deliverer would make it at start).
           "FEEDSVC_ACTIVITYPUB_DELIVER": "external"}
    server = servers.start_gunicorn(tmp_path, env=env)
    yield server
    server.stop()


def request(port: int, path: str, data: bytes | None = None,
            headers: dict[str, str] | None = None) -> tuple[int, Any]:
    call = urllib.request.Request(f"http://127.0.0.1:{port}{path}", data=data,
                                  headers={"Accept": AS, **(headers or {})})
    try:
        with urllib.request.urlopen(call, timeout=10) as answer:
            body = answer.read()
            return answer.status, json.loads(body) if body.startswith(b"{") else body
    except urllib.error.HTTPError as error:
        return error.code, error.read()


def remote_actor(serve: Callable[..., str]) -> tuple[str, SiteKey]:
    """Serve a remote server's actor `ann` on loopback; return its id and its key pair."""
    key, remote = new_site_key(), Flask("remote")
    ann = f"{serve(remote)}/users/ann"

    @remote.get("/users/ann")
    def actor() -> Response:
        return Response(json.dumps({
            "id": ann, "type": "Person", "inbox": f"{ann}/inbox",
            "publicKey": {"id": f"{ann}#main-key", "owner": ann, "publicKeyPem": key.public_pem}}),
            content_type=AS)

    return ann, key


def test_one_key_and_follows_from_any_worker(gunicorn: servers.Server, tmp_path: Path,
                                             serve: Callable[..., str]) -> None:
    port = gunicorn.port
    # both workers asked at once, each making the key if none is there: one key for all
    with ThreadPoolExecutor(8) as pool:
        answers = list(pool.map(lambda _: request(port, "/ap/actors/th"), range(16)))
    assert {status for status, _ in answers} == {200}
    assert len({actor["publicKey"]["publicKeyPem"] for _, actor in answers}) == 1
    status, jrd = request(port, "/.well-known/webfinger?resource=acct:th@feeds.example.org")
    assert status == 200 and jrd["links"][0]["href"] == f"{BASE_URL}ap/actors/th"

    ann, key = remote_actor(serve)
    for n in range(6):  # whichever worker takes each (the durable file opened after the fork)
        body = json.dumps({"id": f"{ann}/follows/{n}", "type": "Follow", "actor": ann,
                           "object": f"{BASE_URL}ap/actors/th"}).encode()
        headers = sign("POST", f"{BASE_URL}ap/actors/th/inbox", body, f"{ann}#main-key",
                       key.private_pem)
        status, _ = request(port, "/ap/actors/th/inbox", body, headers)
        assert status == 202, gunicorn.tail()
    durable = Durable(durable_path(tmp_path / "state"))
    assert durable.follower_count("th") == 1 and durable.pending() == 6  # an Accept each
    assert request(port, "/ap/actors/th/followers")[1]["totalItems"] == 1
