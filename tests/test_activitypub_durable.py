"""The durable file: the site's key pair, followers, the delivery queue (feedsvc/activitypub/durable.py)."""
from __future__ import annotations

import json
import shutil
import sqlite3
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import padding, rsa
from cryptography.hazmat.primitives.hashes import SHA256
from hypothesis import settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, invariant, precondition, rule

from feedsvc.activitypub.durable import Durable, DurableError, durable_path
from feedsvc.activitypub.durablefile import APPLICATION_ID, SCHEMA, STEPS
from feedsvc.activitypub.ratelimit import SharedCounts
from feedsvc.config import BUNDLED_DATA
from feedsvc.dataset.statedir import state_file

ACTOR = "https://social.example/users/{}"
CHILD = """
import sys, time
from pathlib import Path
from feedsvc.activitypub.durable import Durable
go = Path(sys.argv[2])
Path(sys.argv[3]).touch()  # imported: ready
deadline = time.monotonic() + 30
while not go.exists() and time.monotonic() < deadline:  # all start making the key together
    time.sleep(0.001)
print(Durable(sys.argv[1]).site_key().public_pem)
"""


def _cli(env: dict[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "feedsvc", *args], capture_output=True, text=True,
                          timeout=60, env={"PATH": "/usr/bin:/bin", "HOME": env["HOME"], **env})


def _signs_and_verifies(private_pem: bytes, public_pem: str) -> None:
    key = serialization.load_pem_private_key(private_pem, password=None)
    assert isinstance(key, rsa.RSAPrivateKey) and key.key_size == 2048
    signature = key.sign(b"x", padding.PKCS1v15(), SHA256())
    public = serialization.load_pem_public_key(public_pem.encode())
    assert isinstance(public, rsa.RSAPublicKey)
    public.verify(signature, b"x", padding.PKCS1v15(), SHA256())  # raises if not its pair


def test_processes_making_the_key_at_once_share_one(tmp_path: Path) -> None:
    path, go = durable_path(tmp_path), tmp_path / "go"
    ready = [tmp_path / f"ready-{n}" for n in range(4)]
    children = [subprocess.Popen([sys.executable, "-c", CHILD, str(path), str(go), str(mark)],
                                 stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
                for mark in ready]
    deadline = time.monotonic() + 60
    while not all(mark.exists() for mark in ready) and time.monotonic() < deadline:
        time.sleep(0.01)  # until all four have imported and wait for `go`
    go.touch()
    outputs = [child.communicate(timeout=60) for child in children]
    assert [child.returncode for child in children] == [0] * 4, outputs
    keys = {out for out, _ in outputs}
    assert len(keys) == 1
    made = [err for _, err in outputs if "made the site's key pair" in err]
    assert len(made) <= 1  # the others found the first one's key, and said nothing
    stored = Durable(path).site_key()
    assert stored.public_pem.strip() == keys.pop().strip()
    _signs_and_verifies(stored.private_pem, stored.public_pem)
    assert path.stat().st_mode & 0o777 == 0o600


def test_the_key_is_kept_across_opens_and_never_shown(tmp_path: Path) -> None:
    first = Durable(durable_path(tmp_path)).site_key()
    again = Durable(durable_path(tmp_path)).site_key()
    assert again == first
    assert "PRIVATE" not in repr(first) and "PRIVATE" not in str(first)


def test_follow_unfollow_and_forget_actor(tmp_path: Path) -> None:
    durable = Durable(durable_path(tmp_path))
    a, b = ACTOR.format("a"), ACTOR.format("b")
    durable.follow("th", a, a + "/inbox", "https://social.example/inbox")
    durable.follow("th", a, a + "/inbox2", None)  # again: updated, still one follow
    durable.follow("all", a, a + "/inbox", None)
    durable.follow("th", b, b + "/inbox", None)
    assert (durable.follower_count("th"), durable.follower_count("all")) == (2, 1)
    assert durable.unfollow("th", b) is True
    assert durable.unfollow("th", b) is False
    assert durable.follower_count("th") == 1
    assert durable.enqueue_to_followers("th", {"type": "Create"}) == 1
    assert [d.inbox for d in durable.claim(10)] == [a + "/inbox2"]
    assert durable.forget_actor(a) == 2
    assert (durable.follower_count("th"), durable.follower_count("all")) == (0, 0)
    assert durable.follower_count("nobody") == 0


def test_followers_get_one_delivery_per_shared_inbox(tmp_path: Path) -> None:
    durable = Durable(durable_path(tmp_path))
    for n in range(5):  # five on one server with a shared inbox
        durable.follow("th", ACTOR.format(n), ACTOR.format(n) + "/inbox", "https://social.example/inbox")
    durable.follow("th", "https://b.example/u/1", "https://b.example/u/1/inbox", "https://b.example/inbox")
    durable.follow("th", "https://c.example/u/1", "https://c.example/u/1/inbox", None)
    durable.follow("de", "https://d.example/u/1", "https://d.example/u/1/inbox", None)
    activity = {"type": "Announce", "object": "https://feeds.example.org/releases/r1", "name": "Thaïlande"}
    assert durable.enqueue_to_followers("th", activity, now=1000.0) == 3
    assert durable.enqueue_to_followers("nl", activity, now=1000.0) == 0  # no followers, nothing kept
    claimed = durable.claim(10, now=1000.0)
    assert sorted(d.inbox for d in claimed) == ["https://b.example/inbox", "https://c.example/u/1/inbox",
                                                "https://social.example/inbox"]
    assert {d.signer for d in claimed} == {"th"}
    assert all(json.loads(d.body) == activity and d.attempts == 1 for d in claimed)


def test_the_queue_leases_retries_and_gives_up(tmp_path: Path) -> None:
    durable = Durable(durable_path(tmp_path))
    inboxes = ["https://a.example/inbox", "https://b.example/inbox", "https://c.example/inbox"]
    assert durable.enqueue("all", {"type": "Accept"}, inboxes + inboxes[:1], now=100.0) == 3
    claimed = durable.claim(2, lease=60, now=100.0)
    assert [d.inbox for d in claimed] == inboxes[:2] and all(d.created == 100.0 for d in claimed)
    assert [d.inbox for d in durable.claim(10, lease=60, now=101.0)] == inboxes[2:]  # leased: not again
    assert durable.claim(10, now=150.0) == []
    durable.delivered(claimed[0].id)
    durable.retry_later(claimed[1].id, at=500.0, error="HTTP 500")
    # the third, claimed and never answered (its deliverer died), is due when its lease ends
    assert durable.next_due() == 161.0
    again = durable.claim(10, lease=60, now=161.0)
    assert [(d.inbox, d.attempts) for d in again] == [(inboxes[2], 2)]
    durable.give_up(again[0].id, "HTTP 410")
    assert [(d.inbox, d.attempts) for d in durable.claim(10, now=500.0)] == [(inboxes[1], 2)]
    durable.delivered(claimed[1].id)
    assert (durable.pending(), durable.next_due()) == (0, None)
    with sqlite3.connect(durable_path(tmp_path)) as conn:  # the activity went with its last delivery
        assert conn.execute("SELECT count(*) FROM activities").fetchone() == (0,)


def test_a_gone_inbox_is_forgotten_with_its_followers(tmp_path: Path) -> None:
    durable = Durable(durable_path(tmp_path))
    durable.follow("th", ACTOR.format(1), ACTOR.format(1) + "/inbox", "https://social.example/inbox")
    durable.follow("th", ACTOR.format(2), ACTOR.format(2) + "/inbox", None)
    durable.enqueue_to_followers("th", {"type": "Create"})
    assert durable.forget_inbox("https://social.example/inbox") == 1
    assert durable.follower_count("th") == 1
    assert [d.inbox for d in durable.claim(10)] == [ACTOR.format(2) + "/inbox"]


def test_a_store_rebuild_leaves_the_durable_file_alone(tmp_path: Path) -> None:
    state = tmp_path / "state"
    env = {"HOME": str(tmp_path), "FEEDSVC_STATE_DIR": str(state)}
    assert _cli(env, "snapshot", str(BUNDLED_DATA)).returncode == 0  # builds the store
    durable = Durable(durable_path(state))
    key = durable.site_key()
    durable.follow("th", ACTOR.format(1), ACTOR.format(1) + "/inbox", None)
    store = state_file(state, BUNDLED_DATA, "sqlite")
    assert store.exists() and store != durable_path(state)
    store.write_bytes(b"garbage, so the next start moves the store aside and builds it again")
    done = _cli(env, "snapshot", str(BUNDLED_DATA))
    assert done.returncode == 0 and "rebuilding" in done.stderr, done.stderr
    assert store.with_name(store.name + ".bad").exists()  # it was rebuilt
    reopened = Durable(durable_path(state))
    assert reopened.site_key() == key and reopened.follower_count("th") == 1


@pytest.mark.parametrize("content, says", [
    (b"not a database at all" * 10, "not an SQLite database"),
    (None, "not feedsvc's fediverse file"),  # another program's SQLite database
])
def test_a_foreign_file_is_an_error_naming_it_never_new_keys(
        tmp_path: Path, content: bytes | None, says: str) -> None:
    path = durable_path(tmp_path)
    if content is None:
        with sqlite3.connect(path) as conn:
            conn.execute("CREATE TABLE notes(text)")
    else:
        path.write_bytes(content)
    before = path.read_bytes()
    with pytest.raises(DurableError) as raised:
        Durable(path).site_key()
    assert str(path) in str(raised.value) and says in str(raised.value)
    assert "backup" in str(raised.value)
    assert path.read_bytes() == before


def test_a_newer_schema_is_refused(tmp_path: Path) -> None:
    path = durable_path(tmp_path)
    Durable(path).follower_count("th")
    with sqlite3.connect(path) as conn:
        conn.execute("PRAGMA user_version = 99")
    with pytest.raises(DurableError, match="schema 99"):
        Durable(path).follower_count("th")


def test_a_damaged_file_is_an_error_naming_it(tmp_path: Path) -> None:
    path = durable_path(tmp_path)
    durable = Durable(path)
    for n in range(200):
        durable.follow("th", ACTOR.format(n), ACTOR.format(n) + "/inbox", None)
    durable.close()  # its WAL is written back into the file
    data = bytearray(path.read_bytes())
    data[4096:] = b"\xff" * (len(data) - 4096)  # every page after the first
    path.write_bytes(bytes(data))
    with pytest.raises(DurableError) as raised:
        Durable(path).follower_count("th")
    assert str(path) in str(raised.value)


def test_exported_keys_are_private_and_read_back_from_the_keys_dir(tmp_path: Path) -> None:
    state, out = tmp_path / "state", tmp_path / "secret"
    env = {"HOME": str(tmp_path), "FEEDSVC_STATE_DIR": str(state)}
    done = _cli(env, "activitypub", "export-keys", str(out))
    assert done.returncode == 0, done.stderr
    assert sorted(p.name for p in out.iterdir()) == ["private.pem", "public.pem"]
    assert {p.stat().st_mode & 0o777 for p in out.iterdir()} == {0o600}
    stored = Durable(durable_path(state)).site_key()  # the pair it made in the durable file
    assert (out / "private.pem").read_bytes() == stored.private_pem
    from_dir = Durable(durable_path(tmp_path / "elsewhere"), keys_dir=out).site_key()
    assert from_dir == stored
    assert not durable_path(tmp_path / "elsewhere").exists()  # a mounted key is never copied into a file
    _signs_and_verifies(from_dir.private_pem, from_dir.public_pem)
    again = _cli(env, "activitypub", "export-keys", str(out))  # never overwrites a key
    assert again.returncode == 1 and "private.pem exists" in again.stderr
    off = _cli({**env, "FEEDSVC_STATE_DIR": "off"}, "activitypub", "export-keys", str(tmp_path / "x"))
    assert off.returncode == 2 and "FEEDSVC_STATE_DIR is off" in off.stderr


def test_a_keys_dir_without_its_pair_is_an_error_naming_the_file(tmp_path: Path) -> None:
    keys = tmp_path / "keys"
    keys.mkdir()
    with pytest.raises(DurableError, match="private.pem"):
        Durable(durable_path(tmp_path), keys_dir=keys).site_key()
    (keys / "private.pem").write_bytes(Durable(durable_path(tmp_path / "a")).site_key().private_pem)
    (keys / "public.pem").write_text(Durable(durable_path(tmp_path / "b")).site_key().public_pem)
    with pytest.raises(DurableError, match="public.pem is not the public half"):
        Durable(durable_path(tmp_path), keys_dir=keys).site_key()


@pytest.mark.parametrize("name, raw", [("FEEDSVC_ACTIVITYPUB_KEYS_DIR", "relative/keys"),
                                       ("FEEDSVC_ACTIVITYPUB_ALLOW_PRIVATE", "everything")])
def test_a_bad_setting_is_one_line_and_exit_2(tmp_path: Path, name: str, raw: str) -> None:
    done = _cli({"HOME": str(tmp_path), name: raw}, "activitypub", "export-keys", str(tmp_path / "x"))
    assert done.returncode == 2 and done.stderr.count("\n") == 1 and name in done.stderr


def test_a_forked_child_opens_its_own_connection(tmp_path: Path) -> None:
    import os
    import warnings

    durable = Durable(durable_path(tmp_path))
    durable.follow("th", ACTOR.format(1), ACTOR.format(1) + "/inbox", None)  # opened in the parent
    with warnings.catch_warnings():  # Python 3.12 warns of fork() with threads; gunicorn forks all the same
        warnings.simplefilter("ignore", DeprecationWarning)
        pid = os.fork()
    if pid == 0:  # the child: a worker after gunicorn's fork
        try:
            durable.follow("th", ACTOR.format(2), ACTOR.format(2) + "/inbox", None)
        finally:
            os._exit(0 if durable.follower_count("th") == 2 else 1)
    assert os.waitpid(pid, 0)[1] == 0
    assert durable.follower_count("th") == 2  # the parent still reads and writes its own
    durable.follow("th", ACTOR.format(3), ACTOR.format(3) + "/inbox", None)
    assert Durable(durable_path(tmp_path)).follower_count("th") == 3


class QueueMachine(RuleBasedStateMachine):
    """Random sequences of follows, enqueues, claims and answers against a model of the queue."""

    def __init__(self) -> None:
        super().__init__()
        self.directory = Path(tempfile.mkdtemp(prefix="feedsvc-queue-"))
        self.durable = Durable(durable_path(self.directory))
        self.now = 1000.0
        self.followers: dict[tuple[str, str], str] = {}  # (handle, actor) -> where to deliver
        self.queue: dict[int, dict[str, Any]] = {}  # id -> inbox, due, attempts, activity
        self.next_id = 1
        self.claimed: list[int] = []

    def teardown(self) -> None:
        self.durable.close()
        shutil.rmtree(self.directory, ignore_errors=True)

    @rule(handle=st.sampled_from(["th", "all"]), actor=st.integers(0, 5), server=st.integers(0, 2),
          shared=st.booleans())
    def follow(self, handle: str, actor: int, server: int, shared: bool) -> None:
        actor_id = f"https://s{server}.example/u/{actor}"
        shared_inbox = f"https://s{server}.example/inbox" if shared else None
        self.durable.follow(handle, actor_id, actor_id + "/inbox", shared_inbox)
        self.followers[handle, actor_id] = shared_inbox or actor_id + "/inbox"

    @rule(handle=st.sampled_from(["th", "all"]), actor=st.integers(0, 5), server=st.integers(0, 2))
    def unfollow(self, handle: str, actor: int, server: int) -> None:
        actor_id = f"https://s{server}.example/u/{actor}"
        assert self.durable.unfollow(handle, actor_id) == ((handle, actor_id) in self.followers)
        self.followers.pop((handle, actor_id), None)

    @rule(handle=st.sampled_from(["th", "all"]))
    def enqueue(self, handle: str) -> None:
        targets = sorted({inbox for (h, _), inbox in self.followers.items() if h == handle})
        activity = {"type": "Create", "n": self.next_id}
        assert self.durable.enqueue_to_followers(handle, activity, now=self.now) == len(targets)
        for inbox in targets:
            self.queue[self.next_id] = {"inbox": inbox, "due": self.now, "attempts": 0, "activity": activity}
            self.next_id += 1

    @rule(limit=st.integers(1, 4), lease=st.sampled_from([10.0, 300.0]))
    def claim(self, limit: int, lease: float) -> None:
        due = sorted((entry["due"], id_) for id_, entry in self.queue.items() if entry["due"] <= self.now)
        expected = sorted(id_ for _, id_ in due[:limit])
        claimed = self.durable.claim(limit, lease=lease, now=self.now)
        assert [d.id for d in claimed] == expected
        for delivery in claimed:
            entry = self.queue[delivery.id]
            entry["due"], entry["attempts"] = self.now + lease, entry["attempts"] + 1
            assert (delivery.inbox, delivery.attempts) == (entry["inbox"], entry["attempts"])
            assert json.loads(delivery.body) == entry["activity"]
        self.claimed = expected

    @precondition(lambda self: self.claimed)
    @rule(data=st.data(), answer=st.sampled_from(["delivered", "retry", "give_up"]))
    def answer(self, data: st.DataObject, answer: str) -> None:
        id_ = data.draw(st.sampled_from(self.claimed))
        self.claimed.remove(id_)
        if answer == "retry":
            self.durable.retry_later(id_, self.now + 60, "HTTP 500")
            if id_ in self.queue:
                self.queue[id_]["due"] = self.now + 60
            return
        getattr(self.durable, answer)(*([id_] if answer == "delivered" else [id_, "HTTP 410"]))
        self.queue.pop(id_, None)

    @rule(seconds=st.sampled_from([1.0, 30.0, 400.0]))
    def wait(self, seconds: float) -> None:
        self.now += seconds

    @invariant()
    def agrees(self) -> None:
        assert self.durable.pending() == len(self.queue)
        assert self.durable.next_due() == min((e["due"] for e in self.queue.values()), default=None)
        live = {json.dumps(e["activity"]) for e in self.queue.values()}
        with sqlite3.connect(durable_path(self.directory)) as conn:  # activities go with their last delivery
            assert conn.execute("SELECT count(*) FROM activities").fetchone()[0] == len(live)


TestQueue = QueueMachine.TestCase
TestQueue.settings = settings(settings.get_profile("feedsvc"), stateful_step_count=25)


def test_calls_inside_a_transaction_commit_or_roll_back_with_it(tmp_path: Path) -> None:
    """The ledger's writes and the queue are one transaction: a failure between them leaves neither."""
    durable = Durable(durable_path(tmp_path))
    durable.follow("th", ACTOR.format(1), ACTOR.format(1) + "/inbox", None)
    with pytest.raises(RuntimeError), durable.transaction() as conn:
        conn.execute("INSERT INTO ledger VALUES ('r1', 'v1', '{}')")
        assert durable.enqueue_to_followers("th", {"type": "Create"}) == 1
        raise RuntimeError("the deliverer dies here")
    assert durable.pending() == 0
    with durable.transaction() as conn:
        conn.execute("INSERT INTO ledger VALUES ('r1', 'v1', '{}')")
        durable.enqueue_to_followers("th", {"type": "Create"})
    assert durable.pending() == 1
    assert Durable(durable_path(tmp_path)).follower_count("th") == 1  # another connection sees it


WRITER = """
import sys
from feedsvc.activitypub.durable import Durable
durable = Durable(sys.argv[1])
durable.follow("th", sys.argv[2], sys.argv[2] + "/inbox", None)
durable.close()
"""


def test_a_process_closing_the_file_leaves_the_others_their_wal(tmp_path: Path) -> None:
    """The locks SQLite holds on the file stay held: a process that opens, writes and closes it
    (the gunicorn master, the CLI) never checkpoints and deletes the -wal and -shm under another
    process's open connection, which then sees every later write."""
    path = durable_path(tmp_path)
    holder = Durable(path)  # a worker, its connection open throughout
    assert holder.follower_count("th") == 0
    for actor in (ACTOR.format("b"), ACTOR.format("c")):  # B opens, writes, closes; then C
        done = subprocess.run([sys.executable, "-c", WRITER, str(path), actor], capture_output=True,
                              text=True, timeout=60)
        assert done.returncode == 0, done.stderr
        assert path.with_name(path.name + "-shm").exists()  # not deleted under the holder
    assert holder.follower_count("th") == 2


@pytest.mark.parametrize("ledger_rows", [None, 0, 3])  # schema 1 files made the ledger on first use
def test_a_schema_1_file_is_upgraded_keeping_what_it_holds(
        tmp_path: Path, ledger_rows: int | None, caplog: pytest.LogCaptureFixture) -> None:
    path = durable_path(tmp_path)
    with sqlite3.connect(path) as conn:
        for statement in STEPS[0].split(";\n"):
            conn.execute(statement)
        conn.execute("INSERT INTO keys VALUES ('site', x'00', 'PEM', 1)")
        conn.execute(f"INSERT INTO followers VALUES ('th', '{ACTOR.format(1)}', 'inbox', NULL, 1)")
        if ledger_rows is not None:  # as ledger.py made it before it kept its count
            conn.execute("CREATE TABLE ledger(id TEXT PRIMARY KEY, version TEXT NOT NULL, "
                         "announced TEXT NOT NULL) WITHOUT ROWID")
            conn.execute("CREATE TABLE ledger_sync(name TEXT PRIMARY KEY, value TEXT NOT NULL) "
                         "WITHOUT ROWID")
            conn.executemany("INSERT INTO ledger VALUES (?, 'v', '{}')",
                             [(f"r{n}",) for n in range(ledger_rows)])
        conn.execute(f"PRAGMA application_id = {APPLICATION_ID}")
        conn.execute("PRAGMA user_version = 1")
    durable = Durable(path)
    assert durable.follower_count("th") == 1
    assert SharedCounts(durable).hit("social.example", 2)
    with durable.transaction() as conn:
        conn.execute("INSERT INTO ledger VALUES ('new', 'v', '{}')")  # counted by the triggers
        count = conn.execute("SELECT value FROM ledger_sync WHERE name = 'count'").fetchone()[0]
    assert int(count) == (ledger_rows or 0) + 1
    assert durable.read("PRAGMA user_version") == [(SCHEMA,)]
    assert f"upgraded {path} from schema 1 to {SCHEMA}" in caplog.text
    assert Durable(path).site_key().public_pem == "PEM"  # kept, and opened again without a word
    assert caplog.text.count("upgraded") == 1


def test_a_schema_3_file_keeps_its_undone_boosts_as_undone_at_the_upgrade(tmp_path: Path) -> None:
    """Schema 3 did not say when a boost was undone: its rows count from the upgrade (their
    Undo ids answer for UNDONE_KEPT more, then a sync deletes them)."""
    path = durable_path(tmp_path)
    with sqlite3.connect(path) as conn:
        for step in STEPS[:3]:
            conn.executescript(step)
        conn.execute("INSERT INTO undone_boosts VALUES ('r1', 'th', 'v1')")
        conn.execute(f"PRAGMA application_id = {APPLICATION_ID}")
        conn.execute("PRAGMA user_version = 3")
    before = time.time()
    durable = Durable(path)
    assert durable.read("PRAGMA user_version") == [(SCHEMA,)] and SCHEMA == 4
    ((undone,),) = durable.read("SELECT undone FROM undone_boosts WHERE id = 'r1'")
    assert before - 1 <= undone <= time.time() + 1
