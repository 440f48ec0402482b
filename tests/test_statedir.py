"""The state directory (statedir.py) as starts meet it, each start a new process: a damaged or
unwritable store is built again from the YAML with one log line, a second instance is refused,
the workers of one plain `gunicorn -w N` share it.

Root writes through any file mode, so the starts run as `nobody` when the tests run as root
(tests/statedir_child.py drops privileges before opening): the permission cases then fail as
they do for a service's user."""
from __future__ import annotations

import json
import os
import shutil
import sqlite3
import subprocess
import sys
import tempfile
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from feedsvc.config import ConfigError
from feedsvc.dataset import guard, load_dataset
from feedsvc.dataset.statedir import NO_STATE, open_state, state_file

from .servers import ROOT

NOBODY = 65534


@pytest.fixture
def base() -> Iterator[Path]:
    """A folder `nobody` owns (pytest's tmp_path is root's alone), holding a copy of data/."""
    folder = Path(tempfile.mkdtemp(prefix="statedir-"))
    shutil.copytree(ROOT / "data", folder / "data")
    if os.getuid() == 0:
        for path in [folder, *folder.rglob("*")]:
            os.chown(path, NOBODY, NOBODY)
    yield folder
    (folder / "state").chmod(0o700) if (folder / "state").exists() else None
    shutil.rmtree(folder)


def child(*args: str, **popen: Any) -> subprocess.Popen[str]:
    return subprocess.Popen([sys.executable, "-m", "tests.statedir_child", *args], cwd=ROOT,
                            stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            text=True, **popen)


def start(base: Path) -> tuple[dict[str, Any], list[str]]:
    """Start as the service would (opening the state, building it if asked); return what it
    found and its log lines."""
    out, err = child("open", str(base / "state"), str(base / "data"), "--build",
                     "--as-nobody").communicate(timeout=60)
    lines = [line for line in err.splitlines() if line.startswith("feedsvc.statedir:")]
    return json.loads(out), lines


def garble(file: Path) -> None:
    file.write_bytes(b"not a database\n" * 1000)


def foreign(file: Path) -> None:
    """Replace the store by another program's database (no schema version), the same owner."""
    owner = file.stat()
    file.unlink()
    sql("CREATE TABLE notes(text)")(file)
    os.chown(file, owner.st_uid, owner.st_gid)


def sql(statement: str) -> Callable[[Path], None]:
    def run(file: Path) -> None:
        conn = sqlite3.connect(file, isolation_level=None)
        conn.execute(statement)
        conn.close()
    return run


DAMAGE: dict[str, tuple[Callable[[Path], None], str]] = {
    "deleted": (Path.unlink, ""),  # a first start: the app says it once built (test_state_faults)
    "truncated to half": (lambda file: os.truncate(file, file.stat().st_size // 2), "truncated"),
    "garbage": (garble, "not an SQLite database"),
    "file 0444": (lambda file: file.chmod(0o444), "not writable"),
    "another schema": (sql("PRAGMA user_version = 7"), "schema 7, this code reads"),
    "another code": (sql("UPDATE meta SET value = 'c0de' WHERE name = 'code'"),
                     "written by other code (c0de)"),
    "another program's database": (foreign, "not a feedsvc store: 1 tables"),
}


@pytest.mark.parametrize("damage", DAMAGE)
def test_a_damaged_store_is_moved_aside_and_built_again(base: Path, damage: str) -> None:
    releases = len(load_dataset(base / "data").releases)
    first, _ = start(base)
    assert (first["rebuild"], first["state"], first["releases"]) == (True, "persistent", releases)
    again, logged = start(base)
    assert (again["rebuild"], again["releases"], logged) == (False, releases, [])
    store = Path(again["path"])
    assert store.parent == base / "state" and store.stat().st_mode & 0o777 == 0o600

    hurt, says = DAMAGE[damage]
    hurt(store)
    damaged = store.read_bytes() if store.exists() else None
    found, logged = start(base)
    assert (found["rebuild"], found["persistent"], found["releases"]) == (True, True, releases)
    if says:
        assert len(logged) == 1 and str(store) in logged[0] and says in logged[0], logged
    else:
        assert logged == [], logged
    bad = store.with_name(store.name + ".bad")
    assert (bad.read_bytes() if bad.exists() else None) == damaged
    after, logged = start(base)  # the new file is used from then on
    assert (after["rebuild"], after["releases"], logged) == (False, releases, [])


@pytest.mark.parametrize(("mode", "says"), [(0o555, "Permission denied"),
                                            (0o777, "not private to this user")])
def test_an_unusable_state_directory_gives_a_temporary_store_and_says_so(
        base: Path, mode: int, says: str) -> None:
    releases = len(load_dataset(base / "data").releases)
    start(base)
    store = Path(start(base)[0]["path"])
    kept = store.read_bytes()
    (base / "state").chmod(mode)
    for _ in range(2):  # and again at the next start: nothing persists
        found, logged = start(base)
        assert (found["rebuild"], found["persistent"], found["releases"]) == (True, False, releases)
        assert found["state"].startswith(NO_STATE) and str(base / "state") in found["state"]
        assert len(logged) == 1 and str(base / "state") in logged[0] and says in logged[0]
        assert not Path(found["path"]).exists()  # the process that made it removed it
    assert store.read_bytes() == kept


@pytest.mark.parametrize("other", ["own process group", "other parent", "same parent"])
def test_a_second_instance_on_the_directory_is_refused_until_the_first_ends(
        base: Path, other: str) -> None:
    state, data = str(base / "state"), str(base / "data")
    # Another service runs in a process group of its own; another gunicorn's workers have
    # another parent (`mates` forks one start below a process of its own); another program
    # started by the same parent (this test) shares its parent and process group, not its exec.
    holder = child("open", state, data, "--hold", start_new_session=other == "own process group")
    assert holder.stdout is not None and json.loads(holder.stdout.readline())["rebuild"]
    second = child("mates", state, data, "1") if other == "other parent" \
        else child("open", state, data)
    out, err = second.communicate(timeout=60)
    expected = (f"state directory {state} is in use by another feedsvc instance (pid "
                f"{holder.pid}); give each its own FEEDSVC_STATE_DIR")
    assert expected in err + out and "persistent" not in out
    holder.communicate("", timeout=60)
    assert json.loads(child("open", state, data).communicate(timeout=60)[0])["rebuild"]


def test_the_workers_of_one_gunicorn_share_the_directory(base: Path) -> None:
    state = base / "state"
    out, err = child("mates", str(state), str(base / "data"), "3").communicate(timeout=60)
    found = [json.loads(line) for line in out.splitlines()]
    assert len(found) == 3 and all(f.get("state") == "persistent" for f in found), err
    assert len({f["path"] for f in found}) == 1 and Path(found[0]["path"]).parent == state
    holder = int(state_file(state, base / "data", "lock").read_text().split()[0])
    assert holder in {f["pid"] for f in found}


def test_apps_of_one_process_and_its_forks_share_the_lock(tmp_path: Path) -> None:
    data = tmp_path / "data"
    assert open_state(tmp_path / "s", data).path == open_state(tmp_path / "s", data).path
    # gunicorn's master (preload) holds it; its workers inherit the lock, not its parent.
    worker = os.fork()
    if worker == 0:
        try:
            open_state(tmp_path / "s", data)
        except ConfigError:
            os._exit(4)
        os._exit(0)
    assert os.waitstatus_to_exitcode(os.waitpid(worker, 0)[1]) == 0


def test_the_guard_finds_its_files_in_the_state_directory(tmp_path: Path) -> None:
    """A held reload is noted, accepted and forgotten in the state directory's files."""
    data = tmp_path / "data"
    state = tmp_path / "s"
    open_state(state, data)
    guard.write_held(str(state), str(data), guard.Held("v-new", 9, 10))
    assert json.loads(state_file(state, data, "held").read_text())["version"] == "v-new"
    assert not guard.accepted(str(state), str(data), "v-new")
    guard.accept_removal(str(data), str(state))
    assert state_file(state, data, "accept").read_text() == "v-new\n"
    assert guard.accepted(str(state), str(data), "v-new")
    guard.forget(str(state), str(data))
    assert not state_file(state, data, "held").exists() and not guard.accepted(str(state), str(data), "v-new")
    assert state.stat().st_mode & 0o777 == 0o700


def test_a_killed_writers_wal_goes_with_the_file_moved_aside(base: Path) -> None:
    start(base)
    store = Path(start(base)[0]["path"])
    # A writer killed after committing to the WAL: its frames belong to that file alone, and
    # would be replayed into a new file of the same name.
    script = ("import os, sqlite3, sys; c = sqlite3.connect(sys.argv[1], isolation_level=None); "
              "c.execute(\"UPDATE meta SET value = 'c0de' WHERE name = 'code'\"); os._exit(0)")
    subprocess.run([sys.executable, "-c", script, str(store)], check=True)
    wal = store.with_name(store.name + "-wal")
    assert wal.stat().st_size > 0
    out, err = child("open", str(base / "state"), str(base / "data"),
                     "--as-nobody").communicate(timeout=60)
    assert json.loads(out)["rebuild"] and "written by other code (c0de)" in err
    assert not wal.exists() and store.stat().st_size == 0


def test_the_staging_left_by_a_dead_process_is_removed_at_the_next_start(tmp_path: Path) -> None:
    data, state = ROOT / "data", tmp_path / "state"
    store = open_state(state, data).path
    dead = int(Path("/proc/sys/kernel/pid_max").read_text())  # no process has this pid
    left = store.with_name(f"{store.name}.stage-{dead}-left")  # a full read killed midway
    mine = store.with_name(f"{store.name}.stage-{os.getpid()}-live")  # one under way
    for staging in (left, mine):
        staging.mkdir()
        (staging / "store.sqlite").write_bytes(b"half a store")
    assert open_state(state, data).path == store
    assert not left.exists() and (mine / "store.sqlite").exists()
