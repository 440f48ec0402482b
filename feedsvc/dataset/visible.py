"""What readers see of the store at one moment, from SQL.

Releases published after `now` are the keys above `upto` (db.py: the key is the feed order);
drafts and withdrawn releases are never in the list tables or the word index, and are skipped
in `releases` by their `hidden` column (tests/test_golden_feeds.py and the reload state
machine hold the answers); how a page is selected is in selecting.py.
"""
from __future__ import annotations

import json
import sqlite3
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, time

from . import Release
from .db import key_of
from .rows import FIELDS, decode, micros, when_from
from .selecting import choose
from .served import Cursor, Filters, Meta, Page, Run
from .words import words

LOWEST_KEY = -(1 << 62)  # below every key: nothing is visible


def _one(conn: sqlite3.Connection, sql: str, *values: object) -> int | None:
    found = conn.execute(sql, values).fetchone()
    return None if found is None or found[0] is None else int(found[0])


def _upto(conn: sqlite3.Connection, at: int, rid: str | None = None) -> int:
    """Return the highest key published before `at` (UTC microseconds) or at it, with an id
    below `rid` if given (only that second's and the next's releases are passed over)."""
    found = _one(conn, "SELECT key FROM releases WHERE key < ? AND (published_us < ? OR "
                 "(published_us = ? AND (? IS NULL OR id < ?))) ORDER BY key DESC LIMIT 1",
                 key_of(at // 1_000_000 + 1, 0), at, at, rid, rid)
    return LOWEST_KEY if found is None else found


@dataclass(frozen=True)
class StoreView:
    """The store as readers see it at `now`, within one read transaction (reader.py)."""

    conn: sqlite3.Connection
    index: Meta  # the version read
    now: datetime
    upto: int  # the highest key published at or before now
    scheduled: int  # how many releases (of any kind) are published after now
    expired: int  # how many tombstones have ended their notice

    @property
    def token(self) -> str:
        """Name what is visible: the bytes of every response depend on it and the version."""
        return f"{self.scheduled}.{self.expired}"

    @property
    def _now_us(self) -> int:
        return micros(self.now)

    def _releases(self, keys: Sequence[int]) -> list[Release]:
        """Return the releases of these keys, in the order given."""
        if not keys:
            return []
        rows = self.conn.execute(f"SELECT key, {FIELDS} FROM releases WHERE key IN "
                                 f"({', '.join('?' * len(keys))})", keys)
        found = {row[0]: decode(row[1:]) for row in rows}
        return [found[key] for key in keys]

    def _lowest(self, filters: Filters) -> int:
        if filters.since is None:
            return LOWEST_KEY
        midnight = micros(datetime.combine(filters.since, time(), self.index.site.zone))
        return key_of(-(-midnight // 1_000_000), 0)

    def select(self, filters: Filters, limit: int, before: Cursor | None = None) -> Page:
        """Return up to `limit` visible releases matching `filters`, newest first, older than
        the cursor `before` (None: from the newest)."""
        upper = self.upto if before is None else \
            min(self.upto, _upto(self.conn, micros(before.published), before.id))
        keys = choose(self.conn, filters, limit + 1, upper, self._lowest(filters))
        return Page(self._releases(keys[:limit]), len(keys) > limit)

    def status(self, release_id: str) -> tuple[str, Release | None]:
        """Say what `/releases/{id}` answers: ("ok", release), ("gone", release) or
        ("missing", None) for an unknown, draft or not yet published release."""
        row = self.conn.execute(f"SELECT key, draft, {FIELDS} FROM releases WHERE id = ?",
                                (release_id,)).fetchone()
        if row is None or row[0] > self.upto or row[1]:
            return "missing", None
        release = decode(row[2:])
        return ("gone" if release.withdrawn is not None else "ok"), release

    def _scope(self, name: str | None) -> tuple[str, tuple[str, ...]]:
        """Return the list table and its condition for a name (every listed release: None),
        with the condition's value."""
        if name is None:
            return "releases WHERE hidden = 0", ()
        kind, code = name.split("/", 1)
        if kind == "countries":
            return "release_countries WHERE country = ?", (code,)
        return "release_topics WHERE topic = ?", (code,)

    def count(self, name: str | None = None) -> int:
        """Return how many releases are visible, in all or in one list ("countries/TH",
        "topics/slug"): the kept count less the scheduled ones (few)."""
        kept = _one(self.conn, "SELECT releases FROM counts WHERE scope = ?", name or "") or 0
        scope, values = self._scope(name)
        later = _one(self.conn, f"SELECT count(*) FROM {scope} AND key > ?",  # noqa: S608
                     *values, self.upto) or 0
        return kept - later

    def newest(self, name: str | None = None) -> Release | None:
        """Return the visible release changed last, in all or in one list: the newest
        published, or an updated one changed later."""
        scope, values = self._scope(name)
        found = [*self.conn.execute(  # noqa: S608 (a table's name)
            f"SELECT modified_s, key FROM releases WHERE key = (SELECT key FROM {scope} "
            "AND key <= ? ORDER BY key DESC LIMIT 1)", (*values, self.upto)), *self.conn.execute(
            "SELECT modified_s, key FROM release_updates WHERE scope = ? AND key <= ? "
            "ORDER BY modified_s DESC, key DESC LIMIT 1", (name or "", self.upto))]
        return self._releases([max(found)[1]])[0] if found else None

    def tombstones(self, filters: Filters) -> list[Release]:
        """Return the withdrawn releases whose notice still runs, of a feed's selection."""
        rows = self.conn.execute(f"SELECT {FIELDS} FROM releases WHERE notice_until_us > ? "
                                 "AND key <= ?", (self._now_us, self.upto))
        live = [decode(row) for row in rows]
        return sorted((r for r in live if self._matches(r, filters)),
                      key=lambda r: (r.withdrawn, r.id), reverse=True)

    def _matches(self, release: Release, filters: Filters) -> bool:
        if filters.countries and not filters.countries.intersection(release.countries):
            return False
        if filters.topics and not filters.topics.intersection(release.topics):
            return False
        if filters.words and not filters.words <= set(words(f"{release.title} "
                                                             f"{release.summary}")):
            return False
        return filters.since is None or release.published >= datetime.combine(
            filters.since, time(), self.index.site.zone)

    @property
    def next_publication(self) -> datetime | None:
        """Return when the next scheduled release goes live (drafts are never), or None."""
        found = self.conn.execute("SELECT published FROM releases WHERE key > ? AND hidden = 0 "
                                  "ORDER BY key LIMIT 1", (self.upto,)).fetchone()
        return None if found is None else when_from(found[0])

    def _at(self, sql: str, value: int) -> datetime | None:
        found = _one(self.conn, sql, value)
        return None if found is None else datetime.fromtimestamp(found / 10**6, self.now.tzinfo)

    @property
    def next_change(self) -> datetime | None:
        """Return the next instant at which what is visible changes, or None: a release goes
        live, or a withdrawn one is published (its notice appears: drafts alone change
        nothing), or a notice ends."""
        live = self._at("SELECT published_us FROM releases WHERE key > ? AND draft = 0 "
                        "ORDER BY key LIMIT 1", self.upto)
        expiry = self._at("SELECT min(notice_until_us) FROM releases WHERE notice_until_us > ?",
                          self._now_us)
        return min((c for c in (live, expiry) if c is not None), default=None)

    @property
    def token_until(self) -> datetime | None:
        """Return when `token` next changes (a release of any kind passes now: `scheduled`
        counts drafts too; or a notice ends), or None: the fast path keeps it until then."""
        later = self._at("SELECT published_us FROM releases WHERE key > ? ORDER BY key LIMIT 1",
                         self.upto)
        return min((c for c in (later, self.next_change) if c is not None), default=None)

    def seconds_to_change(self) -> float | None:
        """Return how long the current responses stay true, or None (until the data changes)."""
        change = self.next_change
        return None if change is None else max(0.0, (change - self.now).total_seconds())

    def countries(self) -> list[str]:
        """Return the countries some release of this version names (visible now or not, hidden
        or not: WebSub compares two versions country by country), in code order."""
        return [scope[6:] for (scope,) in self.conn.execute(
            "SELECT scope FROM counts WHERE scope > 'named:' AND scope < 'named;'")]

    def runs(self, sizes: Sequence[int]) -> list[Run]:
        """Cut the visible releases, newest first, into runs of these sizes one after the
        other (the sitemap's parts): the key each starts at, found by stepping over the
        listed releases' index to each run's last entry (no row read; a walk over them all,
        once for every run)."""
        found: list[Run] = []
        upper = self.upto
        for size in sizes:
            found.append(Run(upper, size))
            if size:
                last = _one(self.conn, "SELECT key FROM releases WHERE key <= ? AND hidden = 0 "
                            "ORDER BY key DESC LIMIT 1 OFFSET ?", upper, size - 1)
                upper = LOWEST_KEY if last is None else last - 1
        return found

    def lastmod(self, run: Run) -> int | None:
        """Return the last change (UTC second) of a run's releases (None: no release), from
        its own entries of the listed releases' index."""
        return _one(self.conn, "SELECT max(modified_s) FROM (SELECT modified_s FROM releases "
                    "WHERE key <= ? AND hidden = 0 ORDER BY key DESC LIMIT ?)",
                    min(run.upper, self.upto), run.size)

    def listed(self, run: Run) -> list[tuple[str, int]]:
        """Return the id and last change (UTC second) of a run's releases, newest first: an
        index range from its first key (SQLite steps over no earlier entry), no row an object."""
        return self.conn.execute("SELECT id, modified_s FROM releases WHERE key <= ? AND "
                                 "hidden = 0 ORDER BY key DESC LIMIT ?",
                                 (min(run.upper, self.upto), run.size)).fetchall()

    def media_files(self) -> frozenset[str]:
        """Return the src of every file below media/ the site or a visible release names (the
        releases with media, by a partial index: the caller keeps it per version and moment)."""
        site = self.index.site
        found = {m.src for m in (site.icon, site.logo) if m is not None and not m.remote}
        rows = self.conn.execute("SELECT image, attachments FROM releases WHERE key <= ? AND "
                                 "hidden = 0 AND (image IS NOT NULL OR attachments <> '[]')",
                                 (self.upto,))
        for image, attachments in rows:
            listed = json.loads(attachments) + ([json.loads(image)] if image else [])
            found.update(m["src"] for m in listed if not m["src"].startswith("https://"))
        return frozenset(found)


def view_at(conn: sqlite3.Connection, index: Meta, now: datetime) -> StoreView:
    """Return what readers see of the store at `now` (three index lookups)."""
    now_us = micros(now)
    upto = _upto(conn, now_us)
    scheduled = _one(conn, "SELECT count(*) FROM releases WHERE key > ?", upto) or 0
    tombstones = _one(conn, "SELECT releases FROM counts WHERE scope = 'tombstones'") or 0
    live = _one(conn, "SELECT count(*) FROM releases WHERE notice_until_us > ?", now_us) or 0
    return StoreView(conn, index, now, upto, scheduled, tombstones - live)
