"""The deliverer (feedsvc/activitypub/deliver.py) against real loopback inboxes.

The deliverer's own loop runs in a thread, with its clock the test's; each inbox checks every
POST's signature with feedsvc's verify() and the site's public key, as a remote server would.
"""
from __future__ import annotations

import json
import os
import signal
import sqlite3
import subprocess
import sys
import threading
import urllib.request
from collections.abc import Callable, Iterator
from contextlib import closing, contextmanager
from dataclasses import dataclass
from pathlib import Path

import pytest
import yaml
from flask import Flask

from feedsvc import state
from feedsvc.activitypub.deliver import Deliverer, only_deliverer, sender
from feedsvc.activitypub.durable import Durable
from feedsvc.activitypub.ledger import Ledger
from feedsvc.activitypub.supervise import MASTER_ENV
from feedsvc.config import from_env
from feedsvc.dataset.db import connect
from feedsvc.feeds.urls import Urls

from .conftest import BASE_URL, FakeClock, release_yaml
from .helpers import publish
from .inboxes import Inbox, inbox_server
from .servers import start_gunicorn

ONE = [release_yaml(1, "2030-05-01")]
TWO = [*ONE, release_yaml(2, "2030-05-02")]


@dataclass
class World:
    app: Flask
    durable: Durable
    clock: FakeClock
    shared: Inbox  # the site actor's follower's server (a shared inbox)
    personal: Inbox  # Thailand's follower's server (its own inbox only)

    def deliverer(self) -> Deliverer:
        urls = Urls(BASE_URL)
        settings = from_env({"FEEDSVC_ACTIVITYPUB_ALLOW_PRIVATE": "loopback"})
        return Deliverer(self.durable, state.live(self.app).reader.path,
                         lambda reader: Ledger(self.durable, reader, urls),
                         sender(self.durable, urls, settings),
                         clock=lambda: self.clock.now.timestamp(), poll=0.02)

    @contextmanager
    def running(self) -> Iterator[Deliverer]:
        """Run a deliverer (as a started process does) until the block ends; it has made its
        first sync when the block begins."""
        deliverer = self.deliverer()
        deliverer.sync_if_changed()
        stop = threading.Event()
        thread = threading.Thread(target=deliverer.run, args=(stop,))
        thread.start()
        try:
            yield deliverer
        finally:
            stop.set()
            thread.join(20)


@pytest.fixture
def world(clocked_app: Callable[..., Flask], clock: FakeClock, tmp_path: Path) -> Iterator[World]:
    app = clocked_app(ONE)
    durable = Durable(tmp_path / "activitypub.sqlite3")
    public = durable.site_key().public_pem
    with inbox_server(public) as shared, inbox_server(public) as personal:
        for n in range(3):  # three followers on one server: one delivery to its shared inbox
            durable.follow("all", f"{shared.url()}/users/{n}", shared.url(f"/users/{n}/inbox"),
                           shared.url("/inbox"))
        durable.follow("th", f"{personal.url()}/users/ann", personal.url("/users/ann/inbox"), None)
        yield World(app, durable, clock, shared, personal)


def test_publish_edit_withdraw_reach_the_followers_signed(world: World) -> None:
    with world.running():
        publish(world.app, TWO)
        (create,) = world.shared.wait_for(1)
        (announce,) = world.personal.wait_for(1)
        assert create.path == "/inbox" and create.activity["type"] == "Create"
        assert create.key_id == f"{BASE_URL}ap/actors/all#main-key"
        assert create.activity["object"]["id"] == f"{BASE_URL}releases/t-002"
        assert announce.path == "/users/ann/inbox" and announce.activity["type"] == "Announce"
        assert announce.key_id == f"{BASE_URL}ap/actors/th#main-key"

        publish(world.app, [ONE[0], {**TWO[1], "title": "Corrected"}])
        update = world.shared.wait_for(2)[1]
        assert update.activity["type"] == "Update"
        assert update.activity["object"]["name"] == "Corrected"

        publish(world.app, [ONE[0], {**TWO[1], "withdrawn": "2030-05-20T00:00:00Z",
                                     "withdrawn_note": "Wrong."}])
        delete = world.shared.wait_for(3)[2]
        undo = world.personal.wait_for(2)[1]
        assert delete.activity["type"] == "Delete"
        assert delete.activity["object"]["type"] == "Tombstone"
        assert undo.activity["type"] == "Undo"
        assert undo.activity["object"]["id"] == announce.activity["id"]
    assert world.shared.refused == world.personal.refused == []
    assert world.durable.pending() == 0


def test_a_scheduled_release_is_delivered_when_it_goes_live(world: World) -> None:
    publish(world.app, [*ONE, release_yaml(2, "2030-06-01T12:30:00Z")])
    with world.running():
        world.clock.advance(minutes=31)  # no file changes: the time passes
        (create,) = world.shared.wait_for(1)
    assert create.activity["object"]["id"] == f"{BASE_URL}releases/t-002"


def test_an_inbox_answering_500_is_retried_later(world: World) -> None:
    world.shared.answers[:] = [500]
    with world.running():
        publish(world.app, TWO)
        world.personal.wait_for(1)
        with world.shared.changed:  # the 500 was answered
            assert world.shared.changed.wait_for(lambda: not world.shared.answers, 20)
        assert world.shared.received == []
        # Noted: due again a minute later (not at the end of its claim's 5-minute lease).
        wait_until(lambda: 30 < (world.durable.next_due() or 0) - world.clock.now.timestamp() < 120)
        world.clock.advance(seconds=61)  # the first retry is due a minute later
        (create,) = world.shared.wait_for(1)
        assert create.activity["type"] == "Create"
    assert world.durable.pending() == 0


def test_a_gone_inbox_is_given_up_at_once_and_its_followers_forgotten(world: World) -> None:
    world.personal.answers[:] = [410]
    with world.running():
        publish(world.app, TWO)
        world.shared.wait_for(1)
        wait_until(lambda: world.durable.follower_count("th") == 0)
    assert world.durable.pending() == 0 and world.personal.received == []
    assert world.durable.follower_count("all") == 3


def test_a_restarted_deliverer_sends_nothing_twice(world: World) -> None:
    with world.running():
        publish(world.app, TWO)
        world.shared.wait_for(1)
        world.personal.wait_for(1)
    with world.running():  # a new process: its own reader, ledger and sender
        publish(world.app, [*TWO, release_yaml(3, "2030-05-03")])
        received = world.shared.wait_for(2)
        world.personal.wait_for(2)
    assert [r.activity["object"]["id"].rsplit("/", 1)[1] for r in received] == ["t-002", "t-003"]
    assert len(world.personal.received) == 2


def test_one_deliverer_per_durable_file(tmp_path: Path) -> None:
    stop = threading.Event()
    with only_deliverer(tmp_path / "activitypub.sqlite3", stop) as first:
        assert first
        second: list[bool] = []

        def take() -> None:
            with only_deliverer(tmp_path / "activitypub.sqlite3", stop) as held:
                second.append(held)

        thread = threading.Thread(target=take)
        thread.start()
        thread.join(0.3)
        assert thread.is_alive() and second == []  # it waits for the first
        stop.set()
        thread.join(5)
        assert second == [False]


def wait_until(condition: Callable[[], bool], deadline_s: float = 20.0) -> None:
    event = threading.Event()
    for _ in range(int(deadline_s / 0.02)):
        if condition():
            return
        event.wait(0.02)
    raise AssertionError("condition not met in time")


def children(pid: int) -> list[int]:
    """Return the processes whose parent is `pid` (the kernel's list of each thread)."""
    found: list[int] = []
    for task in Path(f"/proc/{pid}/task").iterdir():
        found += [int(p) for p in (task / "children").read_text().split()]
    return found


def test_the_shipped_gunicorn_config_runs_the_deliverer_restarts_and_stops_it(
        tmp_path: Path, make_dataset: Callable[..., Path]) -> None:
    data = make_dataset(ONE)
    state_dir = tmp_path / "state"
    state_dir.mkdir(mode=0o700)
    durable = Durable(state_dir / "activitypub.sqlite3")
    with inbox_server(durable.site_key().public_pem) as inbox:
        durable.follow("all", inbox.url("/users/1"), inbox.url("/users/1/inbox"), inbox.url())
        server = start_gunicorn(tmp_path, env={
            "FEEDSVC_DATA": str(data), "FEEDSVC_SNAPSHOT_DIR": str(state_dir),
            "FEEDSVC_BASE_URL": BASE_URL, "FEEDSVC_ACTIVITYPUB_ALLOW_PRIVATE": "loopback"})
        try:
            master = server.process.pid
            (supervisor,) = [p for p in children(master)
                             if b"deliver" in Path(f"/proc/{p}/cmdline").read_bytes()]
            wait_until(lambda: len(children(supervisor)) == 1)
            (first,) = children(supervisor)
            wait_until(lambda: niceness(first) == niceness(master) + 10)  # requests go first
            wait_until(lambda: synced(durable))  # its first sync recorded the archive
            write_release(data, release_yaml(2, "2020-05-02"))  # the real clock: in the past
            assert inbox.wait_for(1)[0].activity["type"] == "Create"

            os.kill(first, signal.SIGKILL)  # the deliverer dies: it is started again
            wait_until(lambda: children(supervisor) not in ([], [first]))
            write_release(data, release_yaml(3, "2020-05-03"))
            assert [r.activity["object"]["id"][-5:] for r in inbox.wait_for(2)] == \
                ["t-002", "t-003"]
        finally:
            server.stop()
        assert not Path(f"/proc/{supervisor}").exists()  # stopped with the master
    assert "fediverse deliverer started" in server.log.read_text()


def test_the_site_key_is_made_at_the_first_start_and_never_shown(
        tmp_path: Path, make_dataset: Callable[..., Path]) -> None:
    state_dir = tmp_path / "state"
    state_dir.mkdir(mode=0o700)
    server = start_gunicorn(tmp_path, env={
        "FEEDSVC_DATA": str(make_dataset(ONE)), "FEEDSVC_SNAPSHOT_DIR": str(state_dir),
        "FEEDSVC_BASE_URL": BASE_URL})
    try:
        wait_until(lambda: stored_key(state_dir / "activitypub.sqlite3") is not None)  # no request yet
        with urllib.request.urlopen(f"http://127.0.0.1:{server.port}/ap/actors/all") as answer:
            actor = json.loads(answer.read())
        with urllib.request.urlopen(f"http://127.0.0.1:{server.port}/readyz") as answer:
            readiness = answer.read().decode()
    finally:
        server.stop()
    public = stored_key(state_dir / "activitypub.sqlite3")
    assert public is not None and actor["publicKey"]["publicKeyPem"] == public
    for shown in (readiness, server.log.read_text()):
        assert "PRIVATE KEY" not in shown and public.splitlines()[1] not in shown


def stored_key(path: Path) -> str | None:
    """The site's public key in the durable file, read without making one (None: none yet)."""
    try:
        with closing(sqlite3.connect(f"file:{path}?mode=ro", uri=True)) as conn:
            row = conn.execute("SELECT public_pem FROM keys WHERE name = 'site'").fetchone()
    except sqlite3.Error:
        return None
    return None if row is None else str(row[0])


def niceness(pid: int) -> int:
    return int(Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[16])


def synced(durable: Durable) -> bool:
    with durable.transaction() as conn:
        tables = {r[0] for r in conn.execute("SELECT name FROM sqlite_schema")}
        return "ledger_sync" in tables and conn.execute(
            "SELECT sum(name = 'generation') = 1 AND sum(name = 'baseline') = 0 "
            "FROM ledger_sync").fetchone()[0] == 1


def write_release(data: Path, release: dict[str, object]) -> None:
    text = yaml.safe_dump(release, allow_unicode=True, sort_keys=False)
    (data / "releases" / f"{release['id']}.yaml").write_text(text, encoding="utf-8")


@pytest.mark.parametrize(("env", "why"), [
    ({"FEEDSVC_ACTIVITYPUB": "off"}, "FEEDSVC_ACTIVITYPUB=off"),
    ({"FEEDSVC_BASE_URL": ""}, "FEEDSVC_BASE_URL"),
    ({"FEEDSVC_ACTIVITYPUB": "elsewhere"}, "FEEDSVC_ACTIVITYPUB=elsewhere"),
])
def test_the_command_refuses_in_one_line_where_this_instance_does_not_deliver(
        tmp_path: Path, env: dict[str, str], why: str) -> None:
    settings = {"FEEDSVC_BASE_URL": BASE_URL, "FEEDSVC_SNAPSHOT_DIR": str(tmp_path), **env}
    done = subprocess.run([sys.executable, "-m", "feedsvc", "deliver"], capture_output=True,
                          text=True, timeout=60, env={**os.environ, **settings}, check=False)
    assert done.returncode == 2
    (line,) = done.stderr.splitlines()
    assert line.startswith("feedsvc deliver: this instance does not deliver: ") and why in line
    assert not (tmp_path / "activitypub.sqlite3").exists()


def test_a_deliverer_that_fails_is_said_and_started_again_and_the_command_stops_on_sigterm(
        tmp_path: Path, make_dataset: Callable[..., Path]) -> None:
    (tmp_path / "activitypub.sqlite3").write_bytes(b"not a database, " * 10)
    settings = {"FEEDSVC_BASE_URL": BASE_URL, "FEEDSVC_SNAPSHOT_DIR": str(tmp_path),
                "FEEDSVC_DATA": str(make_dataset(ONE))}
    log = tmp_path / "deliver.log"
    with log.open("wb") as out:
        command = subprocess.Popen([sys.executable, "-m", "feedsvc", "deliver"], stderr=out,
                                   env={**os.environ, **settings})
    try:
        wait_until(lambda: log.read_text().count("the deliverer failed") >= 2)
    finally:
        command.send_signal(signal.SIGTERM)
        assert command.wait(20) == 0
    text = log.read_text()
    assert "not an SQLite database" in text  # durable.py's word, naming the file
    assert "the deliverer ended (exit status 1): starting it again in" in text


def test_a_sigterm_as_the_deliverer_starts_stops_it(
        tmp_path: Path, make_dataset: Callable[..., Path]) -> None:
    # The moment after the fork, before the deliverer has imported or set up anything: a
    # SIGTERM then (the supervisor passing on the master's stop) must end it, not be lost.
    settings = {"FEEDSVC_BASE_URL": BASE_URL, "FEEDSVC_SNAPSHOT_DIR": str(tmp_path),
                "FEEDSVC_DATA": str(make_dataset(ONE))}
    command = subprocess.Popen([sys.executable, "-m", "feedsvc", "deliver"],
                               stderr=subprocess.DEVNULL, env={**os.environ, **settings})
    try:
        while not (started := children(command.pid)):  # no wait: the first moment it exists
            assert command.poll() is None
        (first,) = started
        os.kill(first, signal.SIGTERM)
        wait_until(lambda: first not in children(command.pid))  # it ended (and was reaped)
    finally:
        command.send_signal(signal.SIGTERM)
        assert command.wait(20) == 0


def test_a_deliverer_whose_master_died_before_it_started_stops(
        tmp_path: Path, make_dataset: Callable[..., Path]) -> None:
    # The master SIGKILLed while the deliverer it spawned was still starting: its parent is
    # then init, never the master; it must stop, not deliver on for good.
    dead = subprocess.Popen([sys.executable, "-c", "pass"])
    dead.wait()
    settings = {"FEEDSVC_BASE_URL": BASE_URL, "FEEDSVC_SNAPSHOT_DIR": str(tmp_path),
                "FEEDSVC_DATA": str(make_dataset(ONE)), MASTER_ENV: str(dead.pid)}
    command = subprocess.Popen([sys.executable, "-m", "feedsvc", "deliver"],
                               stderr=subprocess.DEVNULL, env={**os.environ, **settings})
    try:
        assert command.wait(30) == 0
    finally:
        command.kill()


def test_the_deliverer_waits_for_a_store_not_built_yet(tmp_path: Path) -> None:
    durable = Durable(tmp_path / "activitypub.sqlite3")
    store = tmp_path / "store.sqlite"
    urls = Urls(BASE_URL)
    deliverer = Deliverer(durable, store, lambda reader: Ledger(durable, reader, urls),
                          lambda delivery: 202)
    assert not deliverer.sync_if_changed()  # no file
    connect(store, write=True).close()  # the schema, no dataset yet (a build under way)
    assert not deliverer.sync_if_changed()
