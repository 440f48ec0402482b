"""A sender host's allowance is the instance's, whatever the number of workers: under the
shipped gunicorn config (2 gevent workers), verified posts from one server, spread over both
workers, are let in up to the allowance and refused (429) past it, not up to twice it (each
worker counting its own, as they did)."""
from __future__ import annotations

import json
import time
from collections import Counter
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor

from feedsvc.activitypub.ratelimit import WINDOW
from feedsvc.activitypub.signatures import sign
from feedsvc.views.inboxes import PER_CLIENT, PER_SENDER

from . import servers
from .conftest import BASE_URL
from .test_activitypub_gunicorn import gunicorn as gunicorn  # the fixture
from .test_activitypub_gunicorn import remote_actor, request

EXTRA = 60  # posts past the allowance


def test_one_sender_host_has_one_allowance_across_workers(
        gunicorn: servers.Server, serve: Callable[..., str]) -> None:
    ann, key = remote_actor(serve)
    posts = []
    for n in range(PER_SENDER + EXTRA):  # signed first: the sender's cost, outside the window
        body = json.dumps({"id": f"{ann}/likes/{n}", "type": "Like", "actor": ann,
                           "object": f"{BASE_URL}releases/pr-2004-001"}).encode()
        posts.append((body, sign("POST", f"{BASE_URL}ap/inbox", body, f"{ann}#main-key",
                                 key.private_pem)))
    assert PER_SENDER + EXTRA < PER_CLIENT  # one client address: its own limit is not reached
    needed = 30.0  # seconds the posts may take: all of them in one window
    deadline = time.monotonic() + WINDOW
    while time.time() % WINDOW > WINDOW - needed and time.monotonic() < deadline:
        time.sleep(0.2)  # waiting for the next window to begin (a condition, not a flake)
    window = time.time() // WINDOW
    with ThreadPoolExecutor(8) as pool:  # at once, over fresh connections: both workers answer
        statuses = Counter(pool.map(lambda post: request(gunicorn.port, "/ap/inbox", *post)[0],
                                    posts))
    assert time.time() // WINDOW == window, "the posts took longer than the test allows"
    assert statuses == {202: PER_SENDER, 429: EXTRA}, gunicorn.tail()
