"""The store's file and its codec: every release comes back exactly as it was loaded."""
from __future__ import annotations

import sqlite3
from dataclasses import replace
from datetime import UTC, datetime, timedelta, timezone
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest

from feedsvc.config import BUNDLED_DATA
from feedsvc.dataset import Dataset, Release, load_dataset
from feedsvc.dataset.db import SCHEMA_VERSION, Unusable, connect
from feedsvc.dataset.media import Media
from feedsvc.dataset.records import Correction
from feedsvc.dataset.rows import (
    FIELDS,
    INSERT,
    decode,
    encode,
    site_from,
    site_json,
    topics_from,
    topics_json,
)
from feedsvc.operations.synth import write_archive

from .storecheck import assert_same, exact


@pytest.fixture(scope="module")
def lifecycle_2k(tmp_path_factory: pytest.TempPathFactory) -> Dataset:
    folder = tmp_path_factory.mktemp("life")
    return load_dataset(write_archive(2000, folder / "archive.yaml", lifecycle=True))


def _round_trip(db: sqlite3.Connection, dataset: Dataset) -> list[Release]:
    db.execute("INSERT INTO files(id, path, size, mtime_ns, inode, sha256) "
               "VALUES (1, 'x.yaml', 0, 0, 0, x'00')")
    db.executemany(INSERT, (encode(r, n, 1) for n, r in enumerate(dataset.releases)))
    return [decode(row) for row in db.execute(f"SELECT {FIELDS} FROM releases ORDER BY key")]


def _odd_zones(dataset: Dataset) -> Dataset:
    """The seed data with date-times in every kind of zone a file can give."""
    bangkok, london = ZoneInfo("Asia/Bangkok"), ZoneInfo("Europe/London")
    first, *rest = dataset.releases
    when = [datetime(2024, 3, 31, 1, 30, tzinfo=london),  # in the spring gap
            datetime(2024, 10, 27, 1, 30, tzinfo=london, fold=1),  # the second 01:30
            datetime(2005, 1, 17, 9, 0, 0, 123456, tzinfo=timezone(timedelta(hours=-3, minutes=-30))),
            datetime(2005, 1, 17, tzinfo=UTC),
            datetime(1999, 12, 31, 23, 59, 59, tzinfo=timezone(timedelta(seconds=25230)))]
    odd = [replace(first, published=w, updated=w + timedelta(days=1),
                             withdrawn=w + timedelta(days=2), withdrawn_note="Gone.",
                             corrections=(Correction(w, "a"), Correction(w.astimezone(bangkok), "b")),
                             image=Media("photos/x.jpg", "Alt", "image/jpeg", 12, "ab" * 32,
                                         "x.yaml", 4, first.id, "image"),
                             attachments=(Media("https://example.org/a.pdf", "Annex", "application/pdf", 9),),
                             id=f"{first.id}-{n}", draft=n % 2 == 0)
           for n, w in enumerate(when)]
    return replace(dataset, releases=(*odd, first, *rest))


def test_every_release_comes_back_exactly(tmp_path: Path, lifecycle_2k: Dataset) -> None:
    db = connect(tmp_path / "store.sqlite3", write=True)
    seed = _odd_zones(load_dataset(BUNDLED_DATA))
    for dataset in (seed, lifecycle_2k):
        with db:
            db.execute("BEGIN")
            found = _round_trip(db, dataset)
            db.execute("ROLLBACK")
        assert len(found) == len(dataset.releases)
        for got, release in zip(found, dataset.releases, strict=True):
            assert_same(got, release)
            assert got.published.utcoffset() == release.published.utcoffset()
    lifecycle = [r for r in lifecycle_2k.releases]
    # The synthetic archive has every lifecycle field: the round trip above saw each.
    assert any(r.draft for r in lifecycle) and any(r.withdrawn_note for r in lifecycle)
    assert any(r.corrections for r in lifecycle) and any(r.image for r in lifecycle)
    assert any(r.attachments for r in lifecycle) and any(r.dateline for r in lifecycle)


def test_site_and_topics_come_back_exactly(lifecycle_2k: Dataset) -> None:
    seed = load_dataset(BUNDLED_DATA)
    pictured = replace(seed.site, icon=Media("icon.png", "Icon", "image/png", 3, "cd" * 32),
                                 logo=Media("https://example.org/logo.svg", "Logo",
                                            "image/svg+xml", 7, None, "site.yaml", 9, None, "logo"))
    for site in (seed.site, pictured, lifecycle_2k.site):
        assert exact(site_from(site_json(site))) == exact(site)
    for dataset in (seed, lifecycle_2k):
        assert exact(topics_from(topics_json(dataset.topics))) == exact(dict(dataset.topics))


def test_another_schema_or_not_a_database_is_reported(tmp_path: Path) -> None:
    path = tmp_path / "store.sqlite3"
    connect(path, write=True).close()
    reader = connect(path, write=False)
    assert reader.execute("PRAGMA user_version").fetchone()[0] == SCHEMA_VERSION
    reader.close()
    old = sqlite3.connect(path)
    old.execute(f"PRAGMA user_version = {SCHEMA_VERSION - 1}")
    old.close()
    for write in (True, False):
        with pytest.raises(Unusable, match="another version"):
            connect(path, write=write)
    path.write_bytes(b"not a database, but some bytes " * 200)
    for write in (True, False):
        with pytest.raises(Unusable, match="not a feedsvc store"):
            connect(path, write=write)
    with pytest.raises(Unusable, match="cannot be opened"):
        connect(tmp_path / "missing.sqlite3", write=False)
    path.unlink()  # what a caller does with an Unusable file (statedir.py): a new one is made
    assert connect(path, write=True).execute("PRAGMA user_version").fetchone()[0] \
        == SCHEMA_VERSION


def test_a_read_only_connection_cannot_write(tmp_path: Path) -> None:
    path = tmp_path / "store.sqlite3"
    connect(path, write=True).close()
    reader = connect(path, write=False)
    with pytest.raises(sqlite3.OperationalError, match="readonly"):
        reader.execute("INSERT INTO meta VALUES ('version', 'x')")
    assert reader.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
