"""The store's ingest (catalog, ingest, coldstart, sync) against a full load, step by step.

Every step runs `sync.Looker`'s look and commit on a real SQLite store, and loads the whole
dataset again (`loader.load` + `assemble`: what `check-data` and a restart from the YAML
read). After each step they must agree on the problems (same text, same order), the version,
and, once committed, every release in the store; the files the look reports changed and
removed must be those whose hashes differ from what the store held. A rejected step must
leave the store's file as it was, byte for byte.
"""
from __future__ import annotations

import os
import shutil
import sqlite3
import subprocess
import sys
from collections.abc import Callable, Collection, Iterator
from pathlib import Path

import pytest
import yaml

from feedsvc.dataset import DatasetError, Release, db, load_dataset, loader, rows, sync, write
from feedsvc.dataset.coldstart import read_all
from feedsvc.dataset.ingest import Plan, held, stamp_of
from feedsvc.dataset.loader import assemble
from feedsvc.dataset.version import Names
from feedsvc.dataset.write import FileChange

from .conftest import release_yaml
from .test_media import GIF, PDF, illustrated, with_media

LIMIT = 64 << 20


def age(root: Path) -> None:
    """Date every file an hour back: no file is racy unless a test makes it so."""
    for path in root.rglob("*"):
        if path.is_file() and not path.is_symlink():
            status = path.stat()
            os.utime(path, ns=(status.st_atime_ns, status.st_mtime_ns - 3600 * 10**9))


def stored(conn: sqlite3.Connection) -> list[Release]:
    """Every release in the store, by id."""
    found = (rows.decode(row) for row in conn.execute(f"SELECT {rows.FIELDS} FROM releases"))
    return sorted(found, key=lambda r: r.id)


def dump(path: Path) -> tuple[list[object], bytes, bytes]:
    """Every row of every table of the store (the word index's own tables included), and
    its file's bytes and its write-ahead log's."""
    other = sqlite3.connect(f"{path.resolve().as_uri()}?mode=ro", uri=True)
    try:
        tables = [name for name, sql in other.execute(
            "SELECT name, sql FROM sqlite_schema WHERE type = 'table' ORDER BY name")
            if not sql.startswith("CREATE VIRTUAL")]
        found: list[object] = [other.execute("PRAGMA user_version").fetchone()]
        found += [(name, other.execute(f'SELECT * FROM "{name}"').fetchall()) for name in tables]
    finally:
        other.close()
    wal = path.with_name(path.name + "-wal")
    return found, path.read_bytes(), wal.read_bytes() if wal.exists() else b""


class Pair:
    """A dataset followed by the store, checked against a full load after every look."""

    def __init__(self, root: Path, store: Path) -> None:
        self.root, self.store = root, store
        self.rejected = False
        self.looker = sync.Looker(db.connect(store, write=True), root, LIMIT)
        found = self.looker.look()
        assert found.problems == loader.load(root, LIMIT).problems
        self.looker.commit(found)
        self.same_releases(loader.load(root, LIMIT))

    @property
    def conn(self) -> sqlite3.Connection:
        """The writer's connection (its first commit, a cold build, opens a new one)."""
        return self.looker.db

    def same_releases(self, full: Plan) -> None:
        dataset = assemble(full, str(self.root))
        assert stored(self.conn) == sorted(dataset.releases, key=lambda r: r.id)
        assert self._meta("version") == dataset.version
        # What the mass-removal guard weighs a removal against, kept without a count.
        assert held(self.conn) == len(dataset.releases)

    def _meta(self, name: str) -> str:
        return str(self.conn.execute("SELECT value FROM meta WHERE name = ?", (name,))
                   .fetchone()[0])

    def _differ(self, full: Plan) -> set[str]:
        """Return the files whose hashes (or problems) differ from what the store holds, and
        those it holds that are gone."""
        names = Names(self.root)
        found = {entry.name for entry in full.files
                 if entry.problems or stamp_of(self.conn, entry.below) != entry.stamp}
        return found | {names.full(below) for below, in self.conn.execute("SELECT path FROM files")
                        if names.full(below) not in {entry.name for entry in full.files}}

    def step(self, paths: Collection[str] | None = None, *, trust_stat: bool = True) -> Plan:
        """Look; assert the look agrees with a full load; commit if valid. Return the plan.

        Every edit since the last look must be one the look can see: named in `paths`, or
        (without) with a new stat key, or in a racy file. The files changed are compared
        unless every file was read, or the last step was rejected (the look then reads the
        files it found invalid again).
        """
        before = dump(self.store)
        full = loader.load(self.root, LIMIT)
        differ = self._differ(full)
        found = self.looker.look(paths, trust_stat=trust_stat)
        assert dump(self.store) == before  # a look writes nothing
        assert found.problems == full.problems
        assert found.linked == full.linked
        if not self.rejected and found.site is None:
            assert set(found.changed) == differ
        self.rejected = bool(found.problems)
        if found.problems:
            with pytest.raises(DatasetError):
                self.looker.commit(found)
            assert dump(self.store) == before  # a rejected change writes nothing
        else:
            assert found.version == assemble(full, str(self.root)).version
            self.looker.commit(found)
            self.same_releases(full)
        return found


@pytest.fixture
def pair(dataset_dir: Path, tmp_path: Path) -> Iterator[Pair]:
    age(dataset_dir)
    made = Pair(dataset_dir, tmp_path / "store.db")
    yield made
    made.conn.close()


def edit(path: Path, old: str, new: str) -> None:
    text = path.read_text(encoding="utf-8")
    assert old in text
    path.write_text(text.replace(old, new, 1), encoding="utf-8")


def test_add_edit_edit_again_rename_delete(pair: Pair) -> None:
    releases = pair.root / "releases"
    new = releases / "pr-2006-001.yaml"
    new.write_text(yaml.safe_dump(release_yaml(1, "2006-01-02")), encoding="utf-8")
    assert pair.step().changed == (str(new),)
    edit(new, "Test release number 1", "A first title")
    assert pair.step().gone == 0
    edit(new, "A first title", "A second title")
    pair.step()
    new.rename(releases / "moved.yaml")
    assert pair.step().gone == 0
    (releases / "moved.yaml").unlink()
    assert pair.step().gone == 1
    assert pair.step().changed == ()  # nothing left to find
    assert len(stored(pair.conn)) == 10


def test_notified_paths_read_only_those_files(pair: Pair) -> None:
    target = pair.root / "releases" / "pr-2005-002.yaml"
    other = pair.root / "releases" / "pr-2004-001.yaml"
    edit(target, "title:", "title: Edited")
    edit(other, "title:", "title: Not notified")  # not named: looked at by the next walk
    found = pair.looker.look([str(target)])
    assert found.changed == (str(target),)
    pair.looker.commit(found)
    titles = {r.title for r in stored(pair.conn)}
    assert any(t.startswith("Edited") for t in titles)
    assert not any(t.startswith("Not notified") for t in titles)
    assert pair.step().changed == (str(other),)
    target.unlink()
    assert pair.step([str(target)]).removed == ("releases/pr-2005-002.yaml",)


def test_the_stat_is_not_trusted_for_a_racy_file(pair: Pair) -> None:
    path = pair.root / "releases" / "pr-2005-002.yaml"
    edit(path, "title:", "title: Fresh")  # written now: racy at the next look
    pair.step()
    status = path.stat()
    text = path.read_text(encoding="utf-8")
    edit(path, "title: Fresh", "title: Fres!")  # same size; the same stat key put back
    os.utime(path, ns=(status.st_atime_ns, status.st_mtime_ns))
    assert path.stat().st_size == status.st_size and path.read_text() != text
    assert pair.step().changed == (str(path),)
    assert any(r.title.startswith("Fres!") for r in stored(pair.conn))


def test_sighup_reads_every_file_and_parses_only_the_changed(pair: Pair) -> None:
    path = pair.root / "releases" / "pr-2005-002.yaml"
    status = path.stat()
    edit(path, "title:", "title:")  # the same bytes, a new mtime
    os.utime(path, ns=(status.st_atime_ns, status.st_mtime_ns))
    found = pair.step(trust_stat=False)
    assert found.changed == () and len(found.files) == 12  # all read, none changed


def test_after_a_rejection_a_look_at_another_file_still_finds_the_invalid_one(pair: Pair
                                                                              ) -> None:
    broken = pair.root / "releases" / "pr-2005-002.yaml"
    original = broken.read_text(encoding="utf-8")
    broken.write_text("id: [broken\n", encoding="utf-8")
    assert pair.step([str(broken)]).problems
    other = pair.root / "releases" / "pr-2004-001.yaml"
    edit(other, "title:", "title: Meanwhile")
    assert pair.step([str(other)]).problems[0].file == str(broken)  # still refused
    broken.write_text(original, encoding="utf-8")
    assert not pair.step([str(broken)]).problems  # both files written now
    assert any(r.title.startswith("Meanwhile") for r in stored(pair.conn))


def test_invalid_then_fixed_and_a_duplicate_id(pair: Pair) -> None:
    path = pair.root / "releases" / "pr-2005-002.yaml"
    original = path.read_text(encoding="utf-8")
    path.write_text("id: [broken\n", encoding="utf-8")
    assert pair.step().problems
    assert pair.step().problems  # rejected: still reported at the next look
    path.write_text(original, encoding="utf-8")
    pair.step()
    copy = pair.root / "releases" / "zz-copy.yaml"
    copy.write_text(original, encoding="utf-8")
    found = pair.step()
    assert [p.field for p in found.problems] == ["id"]
    assert "first used at" in found.problems[0].message
    early = pair.root / "releases" / "aa-copy.yaml"  # before the stored file in path order
    copy.rename(early)
    assert "first used at" in pair.step().problems[0].message


def test_a_vocabulary_change_checks_every_release_again(pair: Pair) -> None:
    topics = pair.root / "topics.yaml"
    text = topics.read_text(encoding="utf-8")
    used = stored(pair.conn)[0].topics[0]
    lines = text.splitlines(keepends=True)
    start = next(n for n, line in enumerate(lines) if f"slug: {used}" in line)
    # Drop the topic's entry (its slug line and the indented lines after it).
    end = next((n for n in range(start + 1, len(lines)) if lines[n].lstrip().startswith("- ")),
               len(lines))
    topics.write_text("".join(lines[:start] + lines[end:]), encoding="utf-8")
    found = pair.step()
    assert found.problems and all(p.field == "topics" for p in found.problems
                                  if p.release is not None)
    topics.write_text(text.replace("label:", "label: Renamed", 1), encoding="utf-8")
    assert pair.step().site is not None  # read in full, committed by rebuild
    more = pair.root / "releases" / "more-topics.yaml"  # a new file of the vocabulary
    more.write_text("topics:\n  - {slug: extra, label: Extra, description: More.}\n",
                    encoding="utf-8")
    assert pair.step().site is not None
    more.write_text(yaml.safe_dump(release_yaml(9, "2006-03-03")), encoding="utf-8")
    assert pair.step().site is not None  # no longer the vocabulary's
    assert len(stored(pair.conn)) == 11


def test_links_inside_are_followed_and_outside_refused(pair: Pair, tmp_path: Path) -> None:
    extra = tmp_path / "extra"
    extra.mkdir()
    (extra / "x.yaml").write_text(yaml.safe_dump(release_yaml(7, "2006-02-02")),
                                  encoding="utf-8")
    (pair.root / "outside.yaml").symlink_to(extra / "x.yaml")
    found = pair.step()
    assert "outside the dataset folder" in found.problems[0].message
    (pair.root / "outside.yaml").unlink()
    shutil.copytree(extra, pair.root / "more")
    (pair.root / "linked").symlink_to("more")
    pair.step()
    assert pair.step().linked  # walked: a change behind a link comes without notification
    (pair.root / "more" / "x.yaml").unlink()
    pair.step([str(pair.root / "more" / "x.yaml")])  # a linked dataset is walked anyway
    (pair.root / "linked").unlink()
    assert not pair.step([str(pair.root / "linked")]).linked  # walked: no link left


@pytest.mark.parametrize("notified", [False, True], ids=["walked", "notified"])
def test_a_media_file_replaced_reads_the_files_naming_it(
        make_dataset: Callable[..., Path], tmp_path: Path, notified: bool) -> None:
    root = with_media(make_dataset([illustrated(), release_yaml(2, "2004-12-01")]))
    age(root)
    pair = Pair(root, tmp_path / "media.db")
    report = root / "media" / "report.pdf"
    with report.open("r+b") as stream:  # the same inode, new bytes: no YAML file changed
        stream.write(PDF + b"% more\n")
    found = pair.step([str(report)] if notified else None)
    assert found.changed == (str(root / "releases" / "t-001.yaml"),)
    (root / "media" / "photos" / "dot.gif").unlink()
    assert "is not a file" in pair.step([str(root / "media" / "photos" / "dot.gif")]
                                        if notified else None).problems[0].message
    (root / "media" / "photos" / "dot.gif").write_bytes(GIF)
    pair.step()
    assert pair.step().changed == ()


def test_a_mass_removal_is_counted_from_the_store(pair: Pair) -> None:
    for path in sorted((pair.root / "releases").glob("*.yaml"))[:6]:
        path.unlink()
    found = pair.step()
    assert (found.gone, found.served) == (6, 10)


def test_cold_start_equals_a_load_in_one_process_and_in_children(tmp_path: Path) -> None:
    root = tmp_path / "synth"
    subprocess.run([sys.executable, "-m", "feedsvc", "synth", "2500", str(root), "--split",
                    "--lifecycle"], check=True, stdout=subprocess.DEVNULL)
    expected = load_dataset(root)
    for over, name in ((LIMIT, "one.db"), (0, "children.db")):
        conn = db.connect(tmp_path / name, write=True)
        found = sync.full(conn, root, LIMIT, over=over)
        assert sync.commit(conn, root, found)
        assert stored(conn) == sorted(expected.releases, key=lambda r: r.id)
        assert found.version == expected.version
        conn.close()


def test_cold_start_problems_come_in_the_order_of_one_process(tmp_path: Path) -> None:
    root = tmp_path / "synth"
    subprocess.run([sys.executable, "-m", "feedsvc", "synth", "2100", str(root), "--split"],
                   check=True, stdout=subprocess.DEVNULL)
    files = sorted((root / "releases").rglob("*.yaml"))
    for path in (files[3], files[1500], files[-1]):
        edit(path, "countries:", "countries: [XX]\nwas_countries:")
    shutil.copy(files[10], root / "releases" / "zz-duplicate.yaml")
    (root / "releases" / "bad.yaml").write_text("title: [unclosed\n", encoding="utf-8")
    expected = list(loader.load(root, LIMIT).problems)
    assert len(expected) > 5
    for found in (read_all(root, LIMIT, tmp_path / "store", processes=3, over=0),
                  read_all(root, LIMIT, tmp_path / "store", over=LIMIT)):
        assert list(found.problems) == expected and found.staged is None
    assert list(tmp_path.glob("store*")) == []  # nothing staged


def test_a_cold_start_whose_only_problem_is_an_id_in_two_runs_stages_nothing(
        tmp_path: Path) -> None:
    root = tmp_path / "synth"
    subprocess.run([sys.executable, "-m", "feedsvc", "synth", "2100", str(root), "--split"],
                   check=True, stdout=subprocess.DEVNULL)
    files = sorted((root / "releases").rglob("*.yaml"))
    # Files 1 and 2,100 of the dataset: dealt to the two runs (file n to run n % 2).
    shutil.copy(files[1], root / "releases" / "zz-duplicate.yaml")  # valid, its id twice
    expected = list(loader.load(root, LIMIT).problems)
    assert expected and all("duplicate" in p.message for p in expected)
    found = read_all(root, LIMIT, tmp_path / "store", processes=2, over=0, fresh=True)
    assert list(found.problems) == expected and found.staged is None
    assert list(tmp_path.glob("store*")) == []  # nothing staged


def tables(conn: sqlite3.Connection) -> dict[str, list[object]]:
    """Every row of the store's tables; the word index as its words and their releases (its
    own tables' bytes depend on the order it was written in)."""
    names = [name for name, sql in conn.execute(
        "SELECT name, sql FROM sqlite_schema WHERE type = 'table' ORDER BY name")
        if not sql.startswith("CREATE VIRTUAL") and not name.startswith("release_words")]
    found: dict[str, list[object]] = {
        name: conn.execute(f'SELECT * FROM "{name}" ORDER BY 1, 2').fetchall() for name in names}
    # A full build's generation is new each time, and the commit counter and the commit that
    # wrote each release count history (db.py): not what the store holds.
    found["meta"] = conn.execute("SELECT * FROM meta WHERE name NOT IN ('generation', 'commit') "
                                 "ORDER BY 1, 2").fetchall()
    columns = [row[1] for row in conn.execute("PRAGMA table_info(releases)") if row[1] != "written"]
    found["releases"] = conn.execute(f"SELECT {', '.join(columns)} FROM releases "  # noqa: S608
                                     "ORDER BY 1, 2").fetchall()
    terms = conn.execute("SELECT term, doc FROM release_words_docs ORDER BY term").fetchall()
    found["words"] = terms
    found["matches"] = [conn.execute("SELECT rowid FROM release_words WHERE release_words "
                                     "MATCH ? ORDER BY rowid", (f'"{term}"',)).fetchall()
                        for term, _ in terms[::97]]
    return found


@pytest.mark.parametrize("fresh", [False, True], ids=["filled", "new file"])
def test_a_bulk_cold_start_writes_what_the_writer_would(tmp_path: Path, fresh: bool) -> None:
    root = tmp_path / "synth"
    subprocess.run([sys.executable, "-m", "feedsvc", "synth", "2500", str(root), "--split",
                    "--lifecycle"], check=True, stdout=subprocess.DEVNULL)
    (root / "releases" / "ties.yaml").write_text(yaml.safe_dump({"releases": [
        release_yaml(n, "2004-03-01T10:00:00+07:00") for n in range(3)]}), encoding="utf-8")
    # Ties across the two children's runs (the first two files, dealt one to each), ranked by
    # published then id in turn from each: the writer numbers them over both runs.
    for name, numbers in (("aa-ties.yaml", (10, 13)), ("ab-ties.yaml", (11, 12))):
        (root / "releases" / name).write_text(yaml.safe_dump({"releases": [
            {**release_yaml(n, f"2005-06-01T10:00:00.{n % 2}+07:00", countries=("TH", "KH")),
             "updated": "2005-06-02T10:00:00+07:00"} for n in numbers]}), encoding="utf-8")
    store = tmp_path / "bulk.db"
    bulk = db.connect(store, write=True)
    found = read_all(root, LIMIT, store, processes=2, over=0, fresh=fresh)
    if fresh:  # a new file, its chunks copied while the children wrote the next ones
        assert found.staged is not None and found.staged.built == found.staged.chunks > 1
        bulk.close()
        sync.build(store, root, found)
        bulk = db.connect(store, write=True)
    else:
        sync.commit(bulk, root, found)
    catalog = loader.load(root, LIMIT)
    applied = db.connect(tmp_path / "applied.db", write=True)
    # The files as the full read found them (racy then), with the loader's releases, put in
    # an empty store by the writer of changes.
    files = [FileChange(row.below, *row.key, row.digest, entry.releases, row.racy,
                        row.vocabulary, tuple((src, *at, sha) for src, at, sha in row.media))
             for entry, row in zip(catalog.files, found.files, strict=True)]
    meta = {"fold": f"{found.fold:032x}", "linked": "0", "root": str(root)}
    dataset = assemble(catalog, str(root))
    write.apply(applied, files, [], version=dataset.version, meta={
        **meta, "source": dataset.source, "releases": str(len(dataset.releases)),
        "site": rows.site_json(dataset.site),
        "topics": rows.topics_json(dataset.topics)})
    assert tables(bulk) == tables(applied)
    assert len(tables(bulk)["releases"]) == 2507 and tables(bulk)["release_updates"]


def test_a_cold_start_whose_children_cannot_start_reads_in_one_process(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture) -> None:
    root = tmp_path / "synth"
    subprocess.run([sys.executable, "-m", "feedsvc", "synth", "1500", str(root), "--split"],
                   check=True, stdout=subprocess.DEVNULL)
    age(root)  # both reads find the same files racy (none), however far apart they run
    one = db.connect(tmp_path / "one.db", write=True)
    expected = read_all(root, LIMIT, tmp_path / "one.db", over=LIMIT)  # the reference
    sync.commit(one, root, expected)

    def refuse(*args: object, **kwargs: object) -> None:
        raise OSError(11, "Resource temporarily unavailable")
    monkeypatch.setattr(subprocess, "Popen", refuse)
    conn = db.connect(tmp_path / "children.db", write=True)
    found = read_all(root, LIMIT, tmp_path / "children.db", processes=2, over=0)
    assert "parallel load failed" in caplog.text
    assert found.version == expected.version and found.problems == expected.problems
    sync.commit(conn, root, found)
    assert tables(conn) == tables(one)


def test_a_full_read_is_staged_beside_the_store_and_leaves_nothing(tmp_path: Path) -> None:
    root = tmp_path / "synth"
    subprocess.run([sys.executable, "-m", "feedsvc", "synth", "1500", str(root), "--split"],
                   check=True, stdout=subprocess.DEVNULL)
    conn = db.connect(tmp_path / "store.db", write=True)
    found = sync.full(conn, root, LIMIT, over=0)
    assert found.staged is not None
    assert [p.name for p in tmp_path.glob("store.db.stage-*")] == [found.staged.directory.name]
    assert sync.commit(conn, root, found)
    assert len(stored(conn)) == 1500 and not list(tmp_path.glob("store.db.stage-*"))
    found = sync.full(conn, root, LIMIT, over=0)  # a plan that is not committed
    assert list(tmp_path.glob("store.db.stage-*"))
    del found
    assert not list(tmp_path.glob("store.db.stage-*"))


def test_a_notified_look_lists_no_folder(pair: Pair, monkeypatch: pytest.MonkeyPatch) -> None:
    """A publish under inotify costs the files named, not the archive: nothing is walked."""
    from feedsvc.dataset import catalog

    def walk(*args: object, **kwargs: object) -> list[str]:
        raise AssertionError("the dataset was walked")
    target = pair.root / "releases" / "pr-2005-002.yaml"
    edit(target, "title:", "title: Notified")
    monkeypatch.setattr(catalog, "find_files", walk)
    found = pair.looker.look([str(target)])
    assert found.changed == (str(target),)
    pair.looker.commit(found)
    assert any(r.title.startswith("Notified") for r in stored(pair.conn))


def test_a_cold_build_that_fails_leaves_the_writer_on_the_store_it_had(
        dataset_dir: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from feedsvc.dataset import bulkload

    def full_disk(*args: object, **kwargs: object) -> None:
        raise sqlite3.OperationalError("database or disk is full")
    looker = sync.Looker(db.connect(tmp_path / "store.db", write=True), dataset_dir, LIMIT)
    found = looker.look()
    monkeypatch.setattr(bulkload, "build", full_disk)
    with pytest.raises(sqlite3.OperationalError):
        looker.commit(found)
    assert not list(tmp_path.glob("store.db.stage-*"))
    monkeypatch.undo()
    assert stored(looker.db) == []  # the writer's connection still works: a later look builds
    looker.commit(looker.look())
    assert len(stored(looker.db)) == 10
