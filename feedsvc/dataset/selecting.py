"""Which keys a feed page selects, as SQL whose every plan is an index range (see db.py).

- No filter: the newest keys of `releases` below the bound, passing over the hidden (few).
- Countries, or topics, or both: one range of a list table per code (per country and topic
  pair, up to MAX_ARMS of them), each LIMITed, merged newest first here: the cost is the page
  times the codes asked for, whatever the archive, even for two long lists that never meet.
- Words (`q`): one FTS5 query. Each listed release's document holds its words and a tag per
  country and topic (write.py), so "these words, in any of these countries and any of these
  topics" is one MATCH, and FTS5 steps through the rarest doclist, seeking in the others.
"""
from __future__ import annotations

import heapq
import sqlite3
from collections.abc import Iterable, Sequence
from itertools import groupby, islice, product

from .served import Filters

# The most words `q` may hold: each is one more doclist for FTS5 to step through, the whole
# of it when the words never meet (the archive's commonest words are the worst case). The
# query parser (feeds/query.py) refuses more; bench/store_queries.py measures the worst case.
MAX_WORDS = 12
# The most (country, topic) ranges one page reads; more codes are checked row by row.
MAX_ARMS = 16


def country_tag(code: str) -> str:
    """Return the token the word index holds for a country: never a word of words()
    ("§" is no word character) and one token for FTS5's ascii tokenizer."""
    return f"§c{code.lower()}"


def topic_tag(slug: str) -> str:
    """Return the token the word index holds for a topic (hex: a slug's "-" splits tokens)."""
    return f"§t{slug.encode().hex()}"


def _quoted(term: str) -> str:
    return '"' + term.replace('"', '""') + '"'


def _any(tags: Iterable[str]) -> str:
    return "(" + " OR ".join(_quoted(tag) for tag in tags) + ")"


def _keys(conn: sqlite3.Connection, sql: str, values: dict[str, object]) -> list[int]:
    return [row[0] for row in conn.execute(sql, values)]


def choose(conn: sqlite3.Connection, filters: Filters, n: int, upper: int, lower: int
           ) -> list[int]:
    """Return the keys of up to `n` listed releases matching `filters` with a key in
    [lower, upper], newest first."""
    bounds: dict[str, object] = {"upper": upper, "lower": lower, "n": n}
    if filters.words:
        return _keys(conn, "SELECT rowid FROM release_words WHERE release_words MATCH :q "
                     "AND rowid <= :upper AND rowid >= :lower ORDER BY rowid DESC LIMIT :n",
                     {**bounds, "q": match(filters)})
    countries, topics = sorted(filters.countries), sorted(filters.topics)
    if not countries and not topics:
        return _keys(conn, "SELECT key FROM releases WHERE key <= :upper AND key >= :lower "
                     "AND hidden = 0 ORDER BY key DESC LIMIT :n", bounds)
    return _merged(conn, _arms(conn, countries, topics), bounds, n)


def match(filters: Filters) -> str:
    """Return the FTS5 query of a filter with words: every word, any country, any topic."""
    parts = [_quoted(word) for word in sorted(filters.words)]
    if filters.countries:
        parts.append(_any(country_tag(c) for c in sorted(filters.countries)))
    if filters.topics:
        parts.append(_any(topic_tag(t) for t in sorted(filters.topics)))
    return " AND ".join(parts)


Arm = tuple[str, dict[str, str]]  # SELECT key ... WHERE (one code) AND ...: and its values


def _arms(conn: sqlite3.Connection, countries: Sequence[str], topics: Sequence[str]
          ) -> list[Arm]:
    """Return one range per code, or per (country, topic) pair up to MAX_ARMS; above that,
    the ranges of the group with fewer releases, the other group checked per row."""
    if countries and topics and len(countries) * len(topics) <= MAX_ARMS:
        return [("SELECT key FROM release_pairs WHERE country = :c AND topic = :t",
                 {"c": c, "t": t}) for c, t in product(countries, topics)]
    kinds = [kind for kind in (("countries", "release_countries", "country", countries),
                               ("topics", "release_topics", "topic", topics)) if kind[3]]
    if len(kinds) == 2 and _listed(conn, "topics", topics) < _listed(conn, "countries",
                                                                     countries):
        kinds.reverse()
    (_, table, column, codes), *other = kinds
    sql = f"SELECT key FROM {table} x WHERE {column} = :c"
    return [(sql + "".join(_exists(*kind[1:]) for kind in other), {"c": code})
            for code in codes]


def _exists(table: str, column: str, codes: Sequence[str]) -> str:
    listed = ", ".join("'" + code.replace("'", "''") + "'" for code in codes)
    return (f" AND EXISTS (SELECT 1 FROM {table} o WHERE o.{column} IN ({listed}) "
            "AND o.key = x.key)")


def _listed(conn: sqlite3.Connection, kind: str, codes: Sequence[str]) -> int:
    """Return how many listed releases the codes' lists hold together (at most)."""
    scopes = [f"{kind}/{code}" for code in codes]
    found = conn.execute(f"SELECT sum(releases) FROM counts WHERE scope IN "
                         f"({', '.join('?' * len(scopes))})", scopes).fetchone()[0]
    return int(found or 0)


def _merged(conn: sqlite3.Connection, arms: list[Arm], bounds: dict[str, object], n: int
            ) -> list[int]:
    """Run each range, newest first and LIMITed, and merge them: each key once."""
    ranges = [_keys(conn, f"{sql} AND key <= :upper AND key >= :lower "
                    "ORDER BY key DESC LIMIT :n", {**values, **bounds})
              for sql, values in arms]
    merged = heapq.merge(*ranges, reverse=True)
    return list(islice((key for key, _ in groupby(merged)), n))

