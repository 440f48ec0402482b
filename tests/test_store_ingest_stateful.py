"""Random sequences of edits followed by the store and checked against a full load (see
test_store_ingest.Pair): after every look both agree on the files changed, the problems, the
version and every release, and a rejected look leaves the store's file as it was.

Release files are written, broken, touched, rewritten in place with their stat put back,
renamed and removed; ids are drawn from a small pool (so they clash); the topic vocabulary
gains and loses a topic some releases use. CI runs 60 sequences (the feedsvc profile);
`--hypothesis-profile=feedsvc-5000` runs many more.
"""
from __future__ import annotations

import os
import shutil
import tempfile
from pathlib import Path

import yaml
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, rule

from feedsvc.config import BUNDLED_DATA

from .conftest import release_yaml
from .storedata import bundled_skeleton
from .test_store_ingest import Pair, age, stored

SLOTS = 5
TOPIC = "  - slug: extra\n    label: Extra\n    description: A topic that comes and goes.\n"


class IngestMachine(RuleBasedStateMachine):
    """The files on disk, followed by both."""

    def __init__(self) -> None:
        super().__init__()
        self.tmp = Path(tempfile.mkdtemp(prefix="feedsvc-ingest-machine-"))
        self.root = bundled_skeleton(self.tmp / "data")
        shutil.copy(BUNDLED_DATA / "releases" / "pr-2004-001.yaml", self.root / "releases")
        age(self.root)
        self.pair = Pair(self.root, self.tmp / "store.db")

    def teardown(self) -> None:
        self.pair.conn.close()
        shutil.rmtree(self.tmp, ignore_errors=True)

    def slot(self, n: int) -> Path:
        return self.root / "releases" / f"r{n}.yaml"

    @rule(n=st.integers(0, SLOTS - 1), rid=st.integers(1, 4), day=st.integers(1, 3),
          extra=st.booleans(), title=st.sampled_from(["One", "Two", "Three"]))
    def write(self, n: int, rid: int, day: int, extra: bool, title: str) -> None:
        topics = ("extra",) if extra else ("social-security",)
        release = release_yaml(rid, f"2006-01-0{day}T10:00:00+07:00", topics=topics,
                               title=title)
        self.slot(n).write_text(yaml.safe_dump(release), encoding="utf-8")
        self.pair.step()

    @rule(n=st.integers(0, SLOTS - 1))
    def break_file(self, n: int) -> None:
        self.slot(n).write_text("id: [unclosed\n", encoding="utf-8")
        self.pair.step()

    @rule(n=st.integers(0, SLOTS - 1))
    def remove(self, n: int) -> None:
        self.slot(n).unlink(missing_ok=True)
        self.pair.step()

    @rule(n=st.integers(0, SLOTS - 1), to=st.integers(0, SLOTS - 1))
    def rename(self, n: int, to: int) -> None:
        if self.slot(n).exists():
            self.slot(n).rename(self.slot(to))
        self.pair.step()

    @rule(n=st.integers(0, SLOTS - 1), notified=st.booleans())
    def rewrite_in_place(self, n: int, notified: bool) -> None:
        """New bytes of the same size, the stat put back: seen only if the file was racy
        when the store read it; else not seen until a SIGHUP reads every file."""
        path = self.slot(n)
        row = self.pair.conn.execute("SELECT racy FROM files WHERE path = ?",
                                     (f"releases/{path.name}",)).fetchone()
        if not path.exists() or row is None or row[0]:
            if path.exists():
                self._rewrite(path)
            self.pair.step([str(path)] if notified else None)
            return
        before = stored(self.pair.conn)
        self._rewrite(path)
        found = self.pair.looker.look([str(path)] if notified else None)
        assert str(path) not in found.changed
        if not found.problems:  # (files found invalid before are read again, still invalid)
            self.pair.looker.commit(found)
            assert stored(self.pair.conn) == before
        self.pair.step(trust_stat=False)

    @staticmethod
    def _rewrite(path: Path) -> None:
        status = path.stat()
        text = path.read_text(encoding="utf-8")
        path.write_text(text.replace("One", "Uno").replace("Two", "Dos"), encoding="utf-8")
        os.utime(path, ns=(status.st_atime_ns, status.st_mtime_ns))

    @rule(n=st.integers(0, SLOTS - 1))
    def touch(self, n: int) -> None:
        if self.slot(n).exists():
            os.utime(self.slot(n))
        self.pair.step([str(self.slot(n))])

    @rule(add=st.booleans())
    def vocabulary(self, add: bool) -> None:
        path = self.root / "topics.yaml"
        text = path.read_text(encoding="utf-8")
        if add and TOPIC not in text:
            path.write_text(text + TOPIC, encoding="utf-8")
        elif not add:
            path.write_text(text.replace(TOPIC, ""), encoding="utf-8")
        self.pair.step()

    @rule()
    def sighup(self) -> None:
        self.pair.step(trust_stat=False)


TestIngestMachine = IngestMachine.TestCase
