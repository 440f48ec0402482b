"""The store's file: one SQLite database per instance holding everything derived from the YAML.

It is a cache of the dataset folder (delete it and the next start rebuilds it). Its schema is
named by `PRAGMA user_version`: a file written by another schema or codec is never read, it is
reported (`Unusable`) so that the caller rebuilds it.

The feed order is the releases' INTEGER PRIMARY KEY `key`: the UTC second of `published`,
shifted left by RANK_BITS, plus the release's rank among those published in that second (by
published, then id). Newest first is `ORDER BY key DESC` on the b-tree, "newest N of a country
before a cursor" is one range of (country, key), and what is visible at a moment is
`key <= upto`. A write renumbers the releases of one second (ties), never the archive.

Drafts and withdrawn releases ("hidden": never listed) are kept in `releases` only, not in
the list tables, the word index or `release_updates`; tombstones are a query on `releases`.
"""
from __future__ import annotations

import hashlib
import sqlite3
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

# Bumped by hand when the meaning of a column or of the codec (rows.py) changes; a change of
# the DDL below changes SCHEMA_VERSION by itself.
FORMAT = 5
RANK_BITS = 20  # up to 1,048,576 releases published in one second

# FTS5's ascii tokenizer over words() joined by spaces gives words() back, for every code
# point (tests/test_store_words.py); "_" is a word character of words().
TOKENIZER = "ascii tokenchars '_'"
DDL = f"""
CREATE TABLE meta(name TEXT PRIMARY KEY, value TEXT NOT NULL) WITHOUT ROWID;
CREATE TABLE status(name TEXT PRIMARY KEY, value TEXT NOT NULL) WITHOUT ROWID;
CREATE TABLE counts(scope TEXT PRIMARY KEY, releases INTEGER NOT NULL) WITHOUT ROWID;
CREATE TABLE files(id INTEGER PRIMARY KEY, path TEXT NOT NULL UNIQUE, size INTEGER NOT NULL,
                   mtime_ns INTEGER NOT NULL, inode INTEGER NOT NULL, sha256 BLOB NOT NULL,
                   racy INTEGER NOT NULL DEFAULT 0, vocabulary INTEGER NOT NULL DEFAULT 0);
CREATE INDEX files_racy ON files(path) WHERE racy;
CREATE TABLE file_media(file INTEGER NOT NULL REFERENCES files(id), src TEXT NOT NULL,
                        size INTEGER NOT NULL, mtime_ns INTEGER NOT NULL, inode INTEGER NOT NULL,
                        sha256 TEXT NOT NULL, PRIMARY KEY(file, src)) WITHOUT ROWID;
CREATE INDEX file_media_src ON file_media(src);
CREATE TABLE releases(
    key INTEGER PRIMARY KEY,
    id TEXT NOT NULL UNIQUE,
    file INTEGER NOT NULL REFERENCES files(id),
    published_us INTEGER NOT NULL,
    modified_s INTEGER NOT NULL,
    hidden INTEGER NOT NULL,
    notice_until_us INTEGER,
    published TEXT NOT NULL,
    updated TEXT,
    type TEXT NOT NULL,
    title TEXT NOT NULL,
    summary TEXT NOT NULL,
    body TEXT,
    url TEXT,
    language TEXT NOT NULL,
    dateline TEXT,
    countries TEXT NOT NULL,
    topics TEXT NOT NULL,
    draft INTEGER NOT NULL,
    corrections TEXT NOT NULL,
    withdrawn TEXT,
    withdrawn_note TEXT,
    image TEXT,
    attachments TEXT NOT NULL,
    written INTEGER NOT NULL DEFAULT 0);
CREATE INDEX releases_file ON releases(file);
CREATE INDEX releases_notice ON releases(notice_until_us) WHERE notice_until_us IS NOT NULL;
CREATE INDEX releases_media ON releases(key) WHERE image IS NOT NULL OR attachments <> '[]';
CREATE INDEX releases_listed ON releases(key, modified_s, id) WHERE hidden = 0;
CREATE INDEX releases_written ON releases(written);
CREATE TABLE release_countries(country TEXT NOT NULL, key INTEGER NOT NULL,
                               PRIMARY KEY(country, key)) WITHOUT ROWID;
CREATE TABLE release_topics(topic TEXT NOT NULL, key INTEGER NOT NULL,
                            PRIMARY KEY(topic, key)) WITHOUT ROWID;
CREATE TABLE release_pairs(country TEXT NOT NULL, topic TEXT NOT NULL, key INTEGER NOT NULL,
                           PRIMARY KEY(country, topic, key)) WITHOUT ROWID;
CREATE TABLE release_updates(scope TEXT NOT NULL, modified_s INTEGER NOT NULL,
                             key INTEGER NOT NULL,
                             PRIMARY KEY(scope, modified_s, key)) WITHOUT ROWID;
CREATE VIRTUAL TABLE release_words USING fts5(words, content='', columnsize=0, detail=none,
                                              tokenize="{TOKENIZER}");
CREATE VIRTUAL TABLE release_words_docs USING fts5vocab(release_words, row);
"""
# What each table holds, beyond its columns' names:
# - meta: "version", "source", "site" (JSON), "topics" (JSON), see rows.py; and what the
#   catalog keeps (ingest: "fold", "linked", "root", and "releases", the store's count for the
#   mass-removal guard, kept by every commit).
#   "generation": changes with every full build (a reader of `written` starts again), and
#   "commit": a counter moved by every commit of data.
# - status: what the writer's last look said, for every worker's /readyz ("error",
#   "rejected_at", "loaded_at", "start_check"); written in its own small transaction, never
#   with the data (a rejected look writes nothing else).
# - files: the catalog, path below the dataset root; racy: its stat is too recent to trust
#   (hashed again at every look); vocabulary: it holds the site or topics. file_media: the
#   media files its releases name (src below media/, sha256 hex).
# - counts: listed (visible at some moment: not hidden) releases per scope: "" for all,
#   "countries/TH", "topics/slug"; "tombstones": withdrawn releases that are not drafts;
#   "named:TH": every release naming the country, hidden or not (View.countries).
# - releases: published_us and notice_until_us (withdrawal + TOMBSTONE_DAYS, for withdrawn
#   releases that are not drafts) are UTC microseconds, modified_s is rows.changed();
#   published, updated, withdrawn keep the date-time as written (wall time, zone): rows.py.
#   written: meta "commit" of the transaction that last wrote the row (what changed since N:
#   the fediverse's deliverer asks, by the releases_written index).
#   releases_listed: the sitemap's walk over the listed releases, a few bytes an entry.
# - release_pairs: (country, topic) of listed releases, so that a feed of a country and a
#   topic is one range, even when the two lists are long and rarely meet.
# - release_updates: listed releases with `updated`, per scope ("" and the names of counts),
#   by last change: the candidates of View.newest besides the newest published.
# - release_words: FTS5, rowid = key, over words() of title and summary, joined by spaces
#   (the built-in unicode61 tokenizer splits and folds differently from words()), and a tag
#   per country and topic (selecting.py), so that q within countries and topics is one MATCH.
#   release_words_docs: how many documents hold each token (FTS5's own count).

SCHEMA_VERSION = ((FORMAT << 24) | int(hashlib.sha256(DDL.encode()).hexdigest()[:6], 16)) \
    & 0x7FFFFFFF


class Unusable(Exception):
    """The file is not a store this code can read (another schema, not a database, missing):
    the caller rebuilds it from the YAML."""


def connect(path: str | Path, write: bool) -> sqlite3.Connection:
    """Open the store: the writer's connection (creating the schema in a new or empty file),
    or a read-only one. Raise Unusable for a file of another schema or not a database."""
    try:
        if write:
            conn = sqlite3.connect(path, isolation_level=None, check_same_thread=False)
        else:
            uri = f"{Path(path).resolve().as_uri()}?mode=ro"
            conn = sqlite3.connect(uri, uri=True, isolation_level=None,
                                   check_same_thread=False)
    except sqlite3.Error as exc:
        raise Unusable(f"{path}: cannot be opened ({exc})") from exc
    try:
        _check(conn, path, write)
    except BaseException:
        conn.close()
        raise
    return conn


def create(conn: sqlite3.Connection) -> None:
    """Create the store's tables and schema version in an empty database."""
    conn.executescript(f"BEGIN; {DDL} PRAGMA user_version = {SCHEMA_VERSION}; COMMIT;")


def _check(conn: sqlite3.Connection, path: str | Path, write: bool) -> None:
    try:
        found = conn.execute("PRAGMA user_version").fetchone()[0]
        if found == 0 and write and conn.execute("SELECT count(*) FROM sqlite_schema")\
                .fetchone()[0] == 0:
            conn.execute("PRAGMA journal_mode = WAL")
            create(conn)
            found = SCHEMA_VERSION
        if write:
            conn.execute("PRAGMA journal_mode = WAL")
            conn.execute("PRAGMA synchronous = NORMAL")  # WAL: durable at the checkpoint
    except sqlite3.DatabaseError as exc:
        raise Unusable(f"{path}: not a feedsvc store ({exc})") from exc
    if found != SCHEMA_VERSION:
        raise Unusable(f"{path}: written by another version of feedsvc (schema {found}, "
                       f"this code reads {SCHEMA_VERSION})")


def second_of(key: int) -> int:
    """Return the UTC second a key's release was published in."""
    return key >> RANK_BITS


def key_of(second: int, rank: int) -> int:
    """Return the key of the release of a second with this rank (0 for the oldest)."""
    if not 0 <= rank < 1 << RANK_BITS:
        raise ValueError(f"{rank + 1} releases published in one second: at most "
                         f"{1 << RANK_BITS}")
    return (second << RANK_BITS) + rank


@contextmanager
def transaction(conn: sqlite3.Connection, begin: str = "BEGIN IMMEDIATE") -> Iterator[None]:
    """Run the block in one transaction: committed at its end, rolled back on any error (unless
    SQLite already rolled it back itself, as on a full disk: a second ROLLBACK would raise and
    hide the error)."""
    conn.execute(begin)
    try:
        yield
        conn.execute("COMMIT")
    except BaseException:
        if conn.in_transaction:
            conn.execute("ROLLBACK")
        raise
