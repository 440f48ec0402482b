"""Issue 19, the store in SQLite: a prototype schema at 100,000 releases, every query shape the
feeds use, its EXPLAIN QUERY PLAN (a SCAN of a table or a TEMP B-TREE is flagged) and median time.

The prototype (what the switch would build, not used by the service):
- `releases`: one row per release, its validated fields and lifecycle columns. Its INTEGER
  PRIMARY KEY `key` is the feed order itself: (UTC second of `published`) << 20 | the release's
  rank among those published in the same second (by published, then id). Newest first is
  `ORDER BY key DESC` on the b-tree, a cursor (published, id) is one key, and the moment's
  visibility (scheduled releases) is `key <= :upto`. A write renumbers only the releases of one
  second (ties), never the archive.
- `release_countries(country, key)`, `release_topics(topic, key)`: WITHOUT ROWID, primary key
  (code, key): "newest N of X before C" is one range of that key. Drafts and withdrawn
  releases are not in them (they are never listed; tombstones are a query on `releases`).
- `release_words`: FTS5, contentless, detail=none, rowid = key, over the output of
  `feedsvc.dataset.words.words()` with the ascii tokenizer (see the tokenizer table: the
  built-in unicode61 splits and folds differently from `words()`).
- `files`: the catalog (path, size, mtime, inode, sha256), each release naming its file.
- The writer: one transaction per change on a WAL file (timed: add, edit, delete one release).
Run: python bench/sqlite_plans.py [RELEASES] [RUNS]   (default 100,000 and 21)
"""
from __future__ import annotations

import heapq
import itertools
import json
import os
import sqlite3
import statistics
import sys
import tempfile
import time
from collections.abc import Callable, Iterator, Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from archives import publish, table

from feedsvc.config import BUNDLED_DATA
from feedsvc.dataset import load_dataset
from feedsvc.dataset.fields import parse_when
from feedsvc.dataset.words import words
from feedsvc.operations.synth import releases as synth_releases

SHIFT = 1 << 20
SCHEMA = """
CREATE TABLE files(id INTEGER PRIMARY KEY, path TEXT NOT NULL UNIQUE, size INTEGER NOT NULL,
                   mtime_ns INTEGER NOT NULL, inode INTEGER NOT NULL, sha256 BLOB NOT NULL);
CREATE TABLE releases(
    key INTEGER PRIMARY KEY, id TEXT NOT NULL UNIQUE, file INTEGER NOT NULL REFERENCES files,
    published INTEGER NOT NULL, updated INTEGER, type TEXT NOT NULL, title TEXT NOT NULL,
    summary TEXT NOT NULL, body TEXT, url TEXT, language TEXT NOT NULL, dateline TEXT,
    draft INTEGER NOT NULL, withdrawn INTEGER, withdrawn_note TEXT, notice_until INTEGER,
    extra TEXT);  -- JSON: corrections, image, attachments (read only to render one release)
CREATE INDEX releases_file ON releases(file);
CREATE INDEX releases_notice ON releases(notice_until) WHERE withdrawn IS NOT NULL;
CREATE TABLE release_countries(country TEXT NOT NULL, key INTEGER NOT NULL,
                               PRIMARY KEY(country, key)) WITHOUT ROWID;
CREATE TABLE release_topics(topic TEXT NOT NULL, key INTEGER NOT NULL,
                            PRIMARY KEY(topic, key)) WITHOUT ROWID;
CREATE TABLE counts(scope TEXT PRIMARY KEY, releases INTEGER NOT NULL) WITHOUT ROWID;
CREATE VIRTUAL TABLE release_words USING fts5(words, content='', columnsize=0, detail=none,
                                              tokenize="ascii tokenchars '_'");
PRAGMA user_version = 1;
"""
COMMON = ("workers", "ilo", "organizations", "employers", "governments", "representatives",
          "together", "brings", "held", "new", "of", "on", "the", "and", "at", "in", "a", "talks")
NOTICE_S = 30 * 86400


def micros(when: datetime) -> int:
    return int(when.timestamp()) * 1_000_000 + when.microsecond


def rows(count: int) -> Iterator[tuple[dict[str, Any], datetime, datetime | None]]:
    """Yield each synthetic release (lifecycle fields too) with its published and withdrawn."""
    bundled = load_dataset(BUNDLED_DATA)
    zone = bundled.site.zone
    for release in synth_releases(count, bundled.site, bundled.topics, lifecycle=True):
        gone = parse_when(release["withdrawn"], zone) if "withdrawn" in release else None
        yield release, parse_when(release["published"], zone), gone


def keys(found: list[tuple[datetime, str]]) -> dict[str, int]:
    """Return each release's key: its second, then its rank among that second's releases."""
    ordered, result, last, rank = sorted(found), {}, None, 0
    for published, rid in ordered:
        second = int(published.timestamp())
        rank = rank + 1 if second == last else 0
        result[rid], last = (second << 20) | rank, second
    return result


def build(db: sqlite3.Connection, count: int) -> dict[str, float]:
    """Fill the prototype with `count` releases; return the seconds each part took."""
    db.executescript(SCHEMA)
    loaded = list(rows(count))
    key = keys([(published, r["id"]) for r, published, _ in loaded])
    timings, began = {}, time.perf_counter()
    with db:
        db.executemany("INSERT INTO files VALUES (?, ?, ?, ?, ?, ?)",
                       ((n, f"releases/{r['id']}.yaml", 600, 0, n, b"\0" * 32)
                        for n, (r, _, _) in enumerate(loaded)))
        db.executemany("INSERT INTO releases VALUES (?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?)", (
            (key[r["id"]], r["id"], n, micros(published), None, r["type"], r["title"],
             r["summary"], r.get("body"), r.get("url"), "en", r.get("dateline"),
             int(r.get("draft", False)), micros(gone) if gone else None,
             r.get("withdrawn_note"), micros(gone) + NOTICE_S * 10**6 if gone else None,
             json.dumps({k: r[k] for k in ("corrections", "image", "attachments") if k in r}))
            for n, (r, published, gone) in enumerate(loaded)))
        listed = [(r, key[r["id"]]) for r, _, gone in loaded if not r.get("draft") and not gone]
        db.executemany("INSERT INTO release_countries VALUES (?, ?)",
                       ((c, k) for r, k in listed for c in r["countries"]))
        db.executemany("INSERT INTO release_topics VALUES (?, ?)",
                       ((t, k) for r, k in listed for t in r["topics"]))
        db.execute("INSERT INTO counts SELECT 'countries/' || country, count(*) "
                   "FROM release_countries GROUP BY country")
    timings["insert rows and keys"] = time.perf_counter() - began
    began = time.perf_counter()
    with db:
        db.executemany("INSERT INTO release_words(rowid, words) VALUES (?, ?)",
                       ((k, " ".join(words(f"{r['title']} {r['summary']}"))) for r, k in listed))
    timings["insert the FTS5 index"] = time.perf_counter() - began
    db.execute("ANALYZE")
    return timings


def match(query: str) -> str:
    """Return an FTS5 MATCH expression requiring every word of `query` as `words()` splits it."""
    return " ".join('"' + w.replace('"', '""') + '"' for w in words(query))


def upto(db: sqlite3.Connection, now: datetime) -> int:
    """Return the highest key visible at `now`: a range of one second's keys at most."""
    second, at = int(now.timestamp()), micros(now)
    found = db.execute("SELECT max(key) FROM releases WHERE key BETWEEN ? AND ? "
                       "AND published <= ?", (second << 20, (second << 20) | (SHIFT - 1), at))
    value = found.fetchone()[0]
    return int(value) if value is not None else (second << 20) - 1


def arms(table_name: str, column: str, codes: Sequence[str], inner: str = "") -> list[str]:
    """One ordered range per code, each LIMITed: merged in Python, codes × limit rows at most."""
    return [f"SELECT key FROM {table_name} WHERE {column} = '{code}' "
            f"AND key <= :upper AND key >= :since {inner} ORDER BY key DESC LIMIT :n"
            for code in codes]


def several(table_name: str, column: str, codes: Sequence[str], inner: str = "") -> str:
    """The same ranges merged by SQLite: a UNION, each arm sorted again (n rows) to merge."""
    parts = [f"SELECT * FROM ({arm})" for arm in arms(table_name, column, codes, inner)]
    return " UNION ".join(parts) + " ORDER BY key DESC LIMIT :n"


def in_topics(topics: Sequence[str], alias: str) -> str:
    listed = ", ".join(f"'{t}'" for t in topics)
    return (f"AND EXISTS (SELECT 1 FROM release_topics t WHERE t.topic IN ({listed}) "
            f"AND t.key = {alias}.key)")


def in_countries(countries: Sequence[str], alias: str) -> str:
    listed = ", ".join(f"'{c}'" for c in countries)
    return (f"AND EXISTS (SELECT 1 FROM release_countries c WHERE c.country IN ({listed}) "
            f"AND c.key = {alias}.rowid)")


def fts(words_: str, extra: str = "") -> str:
    return (f"SELECT rowid FROM release_words w WHERE release_words MATCH '{match(words_)}' "
            f"AND rowid <= :upper AND rowid >= :since {extra} "
            "ORDER BY rowid DESC LIMIT :n")


ALL = ("SELECT key FROM releases WHERE key <= :upper AND key >= :since "
       "AND draft = 0 AND withdrawn IS NULL ORDER BY key DESC LIMIT :n")
ONE = ("SELECT key FROM release_countries WHERE country = 'TH' AND key <= :upper "
       "AND key >= :since ORDER BY key DESC LIMIT :n")
Shape = tuple[str, "str | list[str]", dict[str, Any]]
SHAPES: list[Shape] = [
    ("all", ALL, {}),
    ("all, limit 100", ALL, {"n": 100}),
    ("all, before a cursor in 2010", ALL, {"before": "2010"}),
    ("all, since 2024-01-01", ALL, {"since": "2024"}),
    ("one country (TH)", ONE, {}),
    ("one rare country (US)", ONE.replace("'TH'", "'US'"), {}),
    ("one country, before a cursor in 2010", ONE, {"before": "2010"}),
    ("one country, since 2024-01-01", ONE, {"since": "2024"}),
    ("two countries (TH, KH), merged in Python", arms("release_countries", "country",
                                                      ("TH", "KH")), {}),
    ("two countries (TH, KH), merged by a UNION", several("release_countries", "country",
                                                         ("TH", "KH")), {}),
    ("five countries, limit 100, merged in Python",
     arms("release_countries", "country", ("TH", "KH", "LA", "VN", "MM")), {"n": 100}),
    ("naive: two countries through IN", "SELECT DISTINCT key FROM release_countries WHERE "
     "country IN ('TH', 'KH') AND key <= :upto ORDER BY key DESC LIMIT :n", {}),
    ("one topic", ONE.replace("release_countries", "release_topics")
     .replace("country = 'TH'", "topic = 'social-security'"), {}),
    ("three topics, merged in Python", arms("release_topics", "topic", (
        "social-security", "labour-migration", "gender-equality")), {}),
    ("country + topic (TH, social-security)",
     ONE.replace("ORDER BY", in_topics(["social-security"], "release_countries") + " ORDER BY"),
     {}),
    ("rare country + topic (US, gender-equality)",
     ONE.replace("'TH'", "'US'").replace("ORDER BY", in_topics(["gender-equality"],
                                                                "release_countries")
                                         + " ORDER BY"), {}),
    ("3 countries x 2 topics, limit 100, merged in Python",
     arms("release_countries", "country", ("TH", "KH", "LA"),
             in_topics(["social-security", "labour-migration"], "release_countries")),
     {"n": 100}),
    *[(f"q, {n} common word{'s' if n > 1 else ''}", fts(" ".join(COMMON[:n])), {})
      for n in (1, 2, 4, 8)],
    ("q, 18 common words (no release has all)", fts(" ".join(COMMON)), {}),
    ("q, 1 rare word", fts("tripartite"), {}),
    ("q, 2 words, limit 100, since 2024", fts("workers ilo"), {"n": 100, "since": "2024"}),
    ("q, 2 words within TH (FTS drives)", fts("workers ilo", in_countries(["TH"], "w")), {}),
    ("q, 2 words within US (FTS drives)", fts("workers ilo", in_countries(["US"], "w")), {}),
    ("q, 2 words within US (country drives)",
     "SELECT c.key FROM release_countries c JOIN release_words w ON w.rowid = c.key "
     f"WHERE c.country = 'US' AND release_words MATCH '{match('workers ilo')}' "
     "AND c.key <= :upto ORDER BY c.key DESC LIMIT :n", {}),
    ("q, 2 words within US (country drives, FTS asked per row)",
     ONE.replace("'TH'", "'US'").replace("ORDER BY", "AND EXISTS (SELECT 1 FROM release_words w "
                                         f"WHERE release_words MATCH '{match('workers ilo')}' "
                                         "AND w.rowid = release_countries.key) ORDER BY"), {}),
    ("worst: q, 1 common word, within a country with no release (FTS drives)",
     fts("workers", in_countries(["ZZ"], "w")), {}),
    ("worst: country + topic that never meet (TH, a topic no release has)",
     ONE.replace("ORDER BY", in_topics(["no-such-topic"], "release_countries") + " ORDER BY"),
     {}),
    ("q, 8 words within TH, KH + a topic (FTS drives)",
     fts(" ".join(COMMON[:8]), in_countries(["TH", "KH"], "w")
         + in_topics(["social-security"], "w").replace("t.key = w.key", "t.key = w.rowid")),
     {}),
    ("visibility bound at the request's clock", "SELECT max(key) FROM releases WHERE key "
     "BETWEEN :second AND :second + 1048575 AND published <= :now", {}),
    ("cursor (published, id) -> key", "SELECT max(key) FROM releases WHERE key BETWEEN "
     ":before AND :before + 1048575 AND (published < :at OR (published = :at AND id < 'pr-x'))",
     {"before": "2010"}),
    ("release page by id", "SELECT * FROM releases WHERE id = 'pr-2010-00001'", {}),
    ("tombstones whose notice runs at now", "SELECT key FROM releases WHERE withdrawn IS NOT "
     "NULL AND notice_until > :now ORDER BY notice_until", {}),
    ("drafts and scheduled (readyz, next change)", "SELECT min(key) FROM releases WHERE "
     "key > :upto AND draft = 0", {}),
    ("directory: visible count per country, counted", "SELECT country, count(*) FROM "
     "release_countries WHERE key <= :upto GROUP BY country", {}),
    ("directory: kept counts less the scheduled", "SELECT c.scope, c.releases - (SELECT count(*)"
     " FROM release_countries r WHERE r.country = substr(c.scope, 11) AND r.key > :upto) "
     "FROM counts c WHERE c.scope > 'countries/' AND c.scope < 'countries0'", {}),
    ("file catalog: releases of one file", "SELECT key FROM releases WHERE file = 4242", {}),
    ("sitemap part: 50,000 visible ids", "SELECT id FROM releases WHERE key <= :upto AND "
     "draft = 0 AND withdrawn IS NULL ORDER BY key DESC LIMIT 50000", {}),
]


def parameters(db: sqlite3.Connection, now: datetime, given: dict[str, Any]) -> dict[str, Any]:
    def key_at(year: str) -> int:
        return int(datetime(int(year), 1, 1, tzinfo=UTC).timestamp()) << 20
    # One upper bound, the lower of the moment's and the cursor's: given both, SQLite seeks
    # by one and filters by the other (a cursor in 2010 then reads every release since).
    bound = upto(db, now)
    before = key_at(given["before"]) if "before" in given else 1 << 62
    return {"upto": bound, "upper": min(bound, before - 1), "n": given.get("n", 20),
            "now": micros(now), "second": int(now.timestamp()) << 20, "before": before,
            "at": micros(datetime(2010, 1, 1, tzinfo=UTC)),
            "since": key_at(given["since"]) if "since" in given else -(1 << 62)}


def plan(db: sqlite3.Connection, sql: str | list[str], values: dict[str, Any]
         ) -> tuple[str, bool]:
    if isinstance(sql, list):  # the same plan for each arm but its key: show the first
        shown, flagged = plan(db, sql[0], values)
        return f"{len(sql)} × ({shown})", flagged
    steps = [row[3] for row in db.execute("EXPLAIN QUERY PLAN " + sql, values)]
    flagged = any(s.startswith("SCAN ") and "VIRTUAL TABLE" not in s or "TEMP B-TREE" in s
                  for s in steps)
    return "; ".join(steps), flagged


def run(db: sqlite3.Connection, sql: str | list[str], values: dict[str, Any]) -> list[int]:
    """Return the keys a shape selects; the arms of a list merged newest first, once each."""
    if isinstance(sql, str):
        return [row[0] for row in db.execute(sql, values)]
    ranges = [[row[0] for row in db.execute(arm, values)] for arm in sql]
    merged = (key for key, _ in itertools.groupby(heapq.merge(*ranges, reverse=True)))
    return list(itertools.islice(merged, values["n"]))


def median_ms(run: Callable[[], object], runs: int) -> float:
    spent = []
    for _ in range(runs):
        began = time.perf_counter()
        run()
        spent.append((time.perf_counter() - began) * 1000)
    return statistics.median(spent)


def publish_one(db: sqlite3.Connection, rid: str, published: datetime, title: str,
                countries: Sequence[str]) -> int:
    """Add or replace one release in one transaction, as the writer would; return its key.

    Its key is its rank among the releases of its second: those after it move up by one
    (the worst case is a date-only release, at midnight with the day's others)."""
    text = f"{title} Summary of a release published during the benchmark."
    with db:
        delete_one(db, rid)
        second, at = int(published.timestamp()), micros(published)
        ties = db.execute("SELECT key, published, id FROM releases WHERE key BETWEEN ? AND ? "
                          "ORDER BY key DESC", (second << 20, (second << 20) | (SHIFT - 1)))
        after = [(k, i) for k, p, i in ties.fetchall() if (p, i) > (at, rid)]
        for old, _ in after:  # newest first: each moves to a key now free
            move(db, old, old + 1)
        last = db.execute("SELECT max(key) FROM releases WHERE key BETWEEN ? AND ?",
                          (second << 20, (second << 20) | (SHIFT - 1))).fetchone()[0]
        key = after[-1][0] if after else (second << 20 if last is None else last + 1)
        db.execute("INSERT INTO releases(key, id, file, published, type, title, summary, "
                   "language, draft) VALUES (?, ?, 0, ?, 'press-release', ?, ?, 'en', 0)",
                   (key, rid, at, title, text))
        db.executemany("INSERT INTO release_countries VALUES (?, ?)",
                       ((c, key) for c in countries))
        db.execute("INSERT INTO release_topics VALUES ('social-security', ?)", (key,))
        db.execute("INSERT INTO release_words(rowid, words) VALUES (?, ?)",
                   (key, " ".join(words(f"{title} {text}"))))
    return key


def move(db: sqlite3.Connection, old: int, new: int) -> None:
    """Give a release another key, in every table that holds it."""
    title, summary = db.execute("SELECT title, summary FROM releases WHERE key = ?",
                                (old,)).fetchone()
    indexed = " ".join(words(f"{title} {summary}"))
    db.execute("UPDATE releases SET key = ? WHERE key = ?", (new, old))
    for name in ("release_countries", "release_topics"):
        db.execute(f"UPDATE {name} SET key = ? WHERE key = ?", (new, old))
    db.execute("INSERT INTO release_words(release_words, rowid, words) VALUES ('delete', ?, ?)",
               (old, indexed))
    db.execute("INSERT INTO release_words(rowid, words) VALUES (?, ?)", (new, indexed))


def delete_one(db: sqlite3.Connection, rid: str) -> None:
    """Remove a release from every table (its key left free: later ones need not move)."""
    found = db.execute("SELECT key, title, summary FROM releases WHERE id = ?", (rid,)).fetchone()
    if found is None:
        return
    key, title, summary = found
    db.execute("DELETE FROM releases WHERE key = ?", (key,))
    for name in ("release_countries", "release_topics"):
        db.execute(f"DELETE FROM {name} WHERE key = ?", (key,))
    db.execute("INSERT INTO release_words(release_words, rowid, words) VALUES ('delete', ?, ?)",
               (key, " ".join(words(f"{title} {summary}"))))


def writes(db: sqlite3.Connection, runs: int) -> list[tuple[str, str, str]]:
    """Time the writer's transactions on the file: add, edit and delete one release."""
    busiest = db.execute("SELECT key >> 20, count(*) AS n FROM releases GROUP BY key >> 20 "
                         "ORDER BY n DESC LIMIT 1").fetchone()
    midnight = datetime.fromtimestamp(busiest[0], UTC)
    cases: list[tuple[str, Callable[[], object]]] = [
        (f"add one release first among its second's {busiest[1]} (all move up)",
         lambda: publish_one(db, "aaa-bench", midnight, "Added", ["TH"])),
        ("edit it (taken out and put back)",
         lambda: publish_one(db, "aaa-bench", midnight, "Edited", ["TH", "KH"])),
        ("delete it", lambda: delete_one_committed(db, "aaa-bench")),
    ]
    wall: dict[str, list[float]] = {label: [] for label, _ in cases}
    cpu: dict[str, list[float]] = {label: [] for label, _ in cases}
    for _ in range(runs):
        for label, step in cases:
            began, spent = time.perf_counter(), time.process_time()
            step()
            wall[label].append((time.perf_counter() - began) * 1000)
            cpu[label].append((time.process_time() - spent) * 1000)
    return [(label, f"{statistics.median(wall[label]):.2f}", f"{statistics.median(cpu[label]):.2f}")
            for label, _ in cases]


def delete_one_committed(db: sqlite3.Connection, rid: str) -> None:
    with db:
        delete_one(db, rid)


def tokenizers() -> list[tuple[str, str]]:
    """Compare FTS5 tokenizers with `words()` over every code point (as tests/test_words.py)."""
    db = sqlite3.connect(":memory:")
    db.execute("CREATE VIRTUAL TABLE u USING fts5(t, tokenize='unicode61 remove_diacritics 0')")
    db.execute("CREATE VIRTUAL TABLE a USING fts5(t, tokenize=\"ascii tokenchars '_'\")")
    db.execute("CREATE VIRTUAL TABLE uv USING fts5vocab(u, instance)")
    db.execute("CREATE VIRTUAL TABLE av USING fts5vocab(a, instance)")
    points = [c for c in range(0x110000) if not 0xD800 <= c < 0xE000]
    # As tests/test_words.py; without "Straße" for unicode61, which differs on it alone
    # (words() folds ß to ss, unicode61 keeps ß), to show where its splitting differs.
    texts = {c: f"a{chr(c)}b {chr(c)} x{chr(c)}Straße" for c in points}
    plain = {c: f"a{chr(c)}b {chr(c)}" for c in points}
    with db:
        db.executemany("INSERT INTO u(rowid, t) VALUES (?, ?)", plain.items())
        db.executemany("INSERT INTO a(rowid, t) VALUES (?, ?)",
                       ((c, " ".join(words(t))) for c, t in texts.items()))
    results = []
    for name, vocab, given in (
            ("unicode61 remove_diacritics 0, over the text", "uv", plain),
            ("ascii tokenchars '_', over words() joined by spaces", "av", texts)):
        found: dict[int, list[str]] = {}
        for term, doc in db.execute(f"SELECT term, doc FROM {vocab} ORDER BY doc, offset"):
            found.setdefault(doc, []).append(term)
        differ = [c for c in points if found.get(c, []) != words(given[c])]
        shown = ", ".join(f"U+{c:04X}" for c in differ[:4])
        results.append((name, f"{len(differ):,} of {len(points):,}" + (f" ({shown}…)" if differ
                                                                         else "")))
    return results


def main(count: int, runs: int) -> None:
    load = os.getloadavg()[0]
    scratch = tempfile.TemporaryDirectory(prefix="feedsvc-sqlite-")
    db = sqlite3.connect(Path(scratch.name) / "state.sqlite3", isolation_level=None)
    db.execute("PRAGMA journal_mode = WAL")
    db.execute("PRAGMA synchronous = NORMAL")  # WAL: a commit is durable at the checkpoint
    db.isolation_level = ""  # `with db:` makes one transaction of each write
    timings = build(db, count)
    now = datetime(2024, 6, 1, 3, tzinfo=UTC)  # the last four months are scheduled
    result_rows, flagged_any = [], []
    for label, sql, given in SHAPES:
        values = parameters(db, now, given)
        steps, flagged = plan(db, sql, values)
        found = len(run(db, sql, values))
        spent = median_ms(lambda sql=sql, values=values: run(db, sql, values), runs)
        if flagged:
            flagged_any.append(label)
        result_rows.append((label, found, f"{spent:.3f}", ("**FLAG** " if flagged else "") + steps))
    written = writes(db, runs)
    began = time.perf_counter()
    tokens = tokenizers()
    tokens_s = time.perf_counter() - began
    size = db.execute("SELECT page_count * page_size FROM pragma_page_count, pragma_page_size")
    text = "\n\n".join([
        f"## SQLite prototype: {count:,} releases (SQLite {sqlite3.sqlite_version}; load average "
        f"{load:.1f} at the start, {os.getloadavg()[0]:.1f} at the end, on {os.cpu_count()} CPUs)",
        table(("build step", "s"), [(k, f"{v:.2f}") for k, v in timings.items()]
              + [("database size, MB", f"{size.fetchone()[0] / 1e6:.0f}")]),
        f"Query shapes at {now.isoformat()} (limit 20 unless said; median of {runs} runs, rows "
        "fetched in Python; **FLAG**: a SCAN of a table or a TEMP B-TREE in the plan)",
        table(("shape", "rows", "median ms", "EXPLAIN QUERY PLAN"), result_rows),
        f"Flagged: {', '.join(flagged_any) or 'none'}",
        (f"The writer, one transaction each on the WAL file (synchronous=NORMAL), median of {runs}:"),
        table(("write", "median ms", "CPU ms"), written),
        f"FTS5 tokenizers against `words()`, every code point ({tokens_s:.0f} s): code points "
        "where the tokens differ",
        table(("tokenizer", "differs at"), tokens),
    ])
    publish(f"sqlite-plans-{count}", text)


if __name__ == "__main__":
    main(int(sys.argv[1]) if len(sys.argv) > 1 else 100_000,
         int(sys.argv[2]) if len(sys.argv) > 2 else 21)
