"""Turn a feed request's path and query string into a canonical, hashable FeedQuery."""
from __future__ import annotations

import re
from collections.abc import Collection, Mapping, Sequence
from dataclasses import dataclass, replace
from datetime import UTC, date, datetime
from functools import lru_cache
from urllib.parse import urlencode

from ..dataset.fields import SLUG
from ..dataset.records import country_code
from ..dataset.selecting import MAX_WORDS
from ..dataset.served import Cursor, Filters
from ..dataset.words import words
from .urls import Scope

FORMATS = ("rss", "atom", "json")
DEFAULT_LIMIT, MAX_LIMIT = 20, 100
MAX_Q_LENGTH, MAX_VALUES = 200, 50
_DATE = re.compile(r"^\d{4}-\d{2}-\d{2}$")
# A paging cursor: the UTC time and id of the last release of the previous page.
_CURSOR = re.compile(r"^(\d{8}T\d{6}(?:\.\d{6})?Z)~(.{1,200})$")
_CURSOR_TIME = ("%Y%m%dT%H%M%SZ", "%Y%m%dT%H%M%S.%fZ")


class QueryError(ValueError):
    """A query parameter has a value that is not allowed; the message says what is."""

    def __init__(self, parameter: str, message: str) -> None:
        self.parameter = parameter
        super().__init__(f"parameter {parameter!r}: {message}")


@dataclass(frozen=True)
class FeedQuery:
    """What a feed shows, normalised so that equivalent requests are equal."""

    countries: tuple[str, ...] = ()
    topics: tuple[str, ...] = ()
    words: tuple[str, ...] = ()
    since: date | None = None
    limit: int = DEFAULT_LIMIT
    before: Cursor | None = None

    def filters(self, scope: Scope) -> Filters:
        """Return what to select: these parameters plus the country or topic of the path."""
        countries, topics = set(self.countries), set(self.topics)
        if scope.kind == "countries" and scope.key:
            countries.add(scope.key.upper())
        elif scope.kind == "topics" and scope.key:
            topics.add(scope.key)
        return Filters(frozenset(countries), frozenset(topics), frozenset(self.words), self.since)

    def _pairs(self, limit: bool, before: bool = True) -> list[tuple[str, str]]:
        cursor = cursor_text(self.before) if before and self.before else ""
        pairs = [("before", cursor),
                 ("country", ",".join(c.lower() for c in self.countries)),
                 ("limit", str(self.limit) if limit else ""),
                 ("q", " ".join(self.words)),
                 ("since", self.since.isoformat() if self.since else ""),
                 ("topic", ",".join(self.topics))]
        return [(k, v) for k, v in pairs if v]

    def canonical(self) -> str:
        """Return the query string that every equivalent request shares, defaults filled in."""
        return _canonical(self)

    def link_query(self, *, limit: bool = True, before: bool = True) -> str:
        """Return the normalised query string for links: default values left out."""
        return urlencode(self._pairs(limit and self.limit != DEFAULT_LIMIT, before), safe=",")

    def after(self, cursor: Cursor) -> FeedQuery:
        """Return this query for the page of releases older than the cursor."""
        return replace(self, before=cursor)


def cursor_text(cursor: Cursor) -> str:
    """Write a cursor as it appears in `before=`: 20041018T170000Z~pr-2004-001."""
    when = cursor.published.astimezone(UTC)
    return f"{when.strftime(_CURSOR_TIME[1] if when.microsecond else _CURSOR_TIME[0])}~{cursor.id}"


@lru_cache(maxsize=4096)
def _canonical(query: FeedQuery) -> str:
    # Computed per request to find the cache key: remember the few queries that recur.
    return urlencode(query._pairs(limit=True), safe=",")


def _values(args: Mapping[str, Sequence[str]], name: str) -> list[str]:
    """Return every value of a repeatable, comma-separated parameter."""
    values = [v.strip() for raw in args.get(name, ()) for v in raw.split(",") if v.strip()]
    if len(values) > MAX_VALUES:
        raise QueryError(name, f"at most {MAX_VALUES} values are allowed")
    return values


def _single(args: Mapping[str, Sequence[str]], name: str) -> str | None:
    given = [v for v in args.get(name, ()) if v.strip()]
    if len(given) > 1:
        raise QueryError(name, "may be given only once")
    return given[0].strip() if given else None


def _countries(values: list[str]) -> tuple[str, ...]:
    codes = {v.upper() for v in values}
    for value in values:
        if country_code(value) is None:
            raise QueryError("country", f"{value[:20]!r} is not an ISO 3166-1 alpha-2 country "
                                        "code; use two letters such as th or kh")
    return tuple(sorted(codes))


def _topics(values: list[str], known: Collection[str]) -> tuple[str, ...]:
    for value in values:
        if value not in known:
            raise QueryError("topic", f"{value[:40]!r} is not a topic; allowed: "
                                      f"{', '.join(sorted(known))}")
    return tuple(sorted(set(values)))


def _since(raw: str | None) -> date | None:
    if raw is None:
        return None
    try:
        if not _DATE.match(raw):
            raise ValueError("expected YYYY-MM-DD")
        return date.fromisoformat(raw)
    except ValueError:
        raise QueryError("since", f"{raw[:20]!r} is not a date; use YYYY-MM-DD") from None


def parse_cursor(raw: str | None) -> Cursor | None:
    """Read a paging cursor as `cursor_text` writes it (None: none given)."""
    if raw is None:
        return None
    match = _CURSOR.match(raw)
    if match and SLUG.match(match[2]):
        fmt = _CURSOR_TIME[1] if "." in match[1] else _CURSOR_TIME[0]
        try:
            when = datetime.strptime(match[1], fmt).replace(tzinfo=UTC)
        except ValueError:
            pass
        else:
            return Cursor(when, match[2])
    raise QueryError("before", f"{raw[:40]!r} is not a paging cursor; follow the feed's "
                               "rel=\"next\" link (or next_url) instead of writing one")


def _limit(raw: str | None) -> int:
    if raw is None:
        return DEFAULT_LIMIT
    if not raw.isascii() or not raw.isdigit() or not 1 <= int(raw) <= MAX_LIMIT:
        raise QueryError("limit", f"{raw[:20]!r} is not allowed; use a whole number "
                                  f"from 1 to {MAX_LIMIT}")
    return int(raw)


def _words(raw: str | None) -> tuple[str, ...]:
    if raw is None:
        return ()
    if len(raw) > MAX_Q_LENGTH:
        raise QueryError("q", f"is {len(raw)} characters long; at most {MAX_Q_LENGTH} allowed")
    found = tuple(sorted(set(words(raw))))
    if len(found) > MAX_WORDS:
        raise QueryError("q", f"has {len(found)} different words; at most {MAX_WORDS} allowed")
    return found


def parse_choice(args: Mapping[str, Sequence[str]], name: str, choices: Sequence[str]) -> str:
    """Return the value of a parameter that must be one of `choices` (the first is the default)."""
    raw = _single(args, name)
    if raw is None:
        return choices[0]
    if raw not in choices:
        raise QueryError(name, f"{raw[:20]!r} is not allowed; use {' or '.join(choices)}")
    return raw


def parse_country(args: Mapping[str, Sequence[str]]) -> str | None:
    """Return the one country a page was asked about, lowercase, or None."""
    raw = _single(args, "country")
    return None if raw is None else _countries([raw])[0].lower()


def parse_query(args: Mapping[str, Sequence[str]], known_topics: Collection[str]) -> FeedQuery:
    """Parse a feed's query parameters, ignoring unknown ones; raise QueryError."""
    return FeedQuery(
        countries=_countries(_values(args, "country")),
        topics=_topics(_values(args, "topic"), known_topics),
        words=_words(_single(args, "q")),
        since=_since(_single(args, "since")),
        limit=_limit(_single(args, "limit")),
        before=parse_cursor(_single(args, "before")),
    )


# What a request without parameters asks for.
DEFAULT_QUERY = parse_query({}, ())
