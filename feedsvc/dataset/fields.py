"""Typed reading of one YAML mapping's fields, recording a located problem for each bad one."""
from __future__ import annotations

import re
from collections.abc import Callable, Iterable
from collections.abc import Set as AbstractSet
from datetime import date, datetime, time, tzinfo
from typing import Any, TypeVar
from urllib.parse import urlsplit

from .problems import Problem
from .yamlsource import LocatedMap

T = TypeVar("T")

# XML 1.0 allows tab, newline, carriage return and these ranges; anything else is removed.
_NOT_XML = re.compile("[^\t\n\r\u0020-\ud7ff\ue000-\ufffd\U00010000-\U0010ffff]")
_PARAGRAPHS = re.compile(r"\n\s*\n")
SLUG = re.compile(r"^[a-z0-9]+(?:[-_.][a-z0-9]+)*$")
_LANGUAGE = re.compile(r"^[A-Za-z]{2,3}(?:-[A-Za-z0-9]{2,8})*$")
_DATE = re.compile(r"^\d{4}-\d{2}-\d{2}$")
YEARS = (1900, 2999)
# An http(s) URL that urlsplit would accept, told by one match (urlsplit's cache is small and
# every release's URL is new): a host of letters, digits, dots and hyphens, then printable
# ASCII, no space.
_PLAIN_URL = re.compile(r"https?://[A-Za-z0-9.-]+(?::[0-9]*)?(?:[/?#][!-~]*)?\Z")
_MIDNIGHT = time()  # made once, not for every date


def clean_text(value: str, *, one_line: bool) -> str:
    """Remove characters XML 1.0 forbids; fold whitespace for one-line fields."""
    if not value.isprintable():  # each character XML forbids is a control, surrogate or
        value = _NOT_XML.sub("", value)  # non-character: none is in printable text
    # In printable text the only whitespace is " " (no newline: one paragraph): most text
    # is returned as it is, without splitting it into words.
    elif not one_line:
        return value.strip(" ")
    elif "  " not in value and value[:1] != " " and value[-1:] != " ":
        return value
    if one_line:
        return " ".join(value.split())  # what \s+ -> " " and strip() give, several times faster
    paragraphs = (p.strip() for p in _PARAGRAPHS.split(value.strip()))
    return "\n\n".join(p for p in paragraphs if p)


def parse_when(raw: str, zone: tzinfo) -> datetime:
    """Parse a date (midnight in `zone`) or a date-time with an explicit offset (cleaned text)."""
    if _DATE.match(raw):
        value = datetime.combine(date.fromisoformat(raw), _MIDNIGHT, zone)
    else:
        value = datetime.fromisoformat(raw)
        if value.tzinfo is None:
            raise ValueError("a date-time needs an explicit UTC offset, e.g. +07:00")
    if not YEARS[0] <= value.year <= YEARS[1]:
        raise ValueError(f"the year must be from {YEARS[0]} to {YEARS[1]}")
    return value


class Fields:
    """The fields of one mapping in one file, for one release (or the site, or a topic)."""

    def __init__(
        self, file: str, mapping: LocatedMap, owner: str | None, problems: list[Problem],
        prefix: str = "",
    ) -> None:
        self.file, self.mapping, self.owner, self.problems = file, mapping, owner, problems
        self.prefix = prefix  # names a nested mapping's fields: corrections[2].date

    def line(self, field: str | None = None) -> int:
        return self.mapping.key_lines.get(field or "", self.mapping.line)

    def problem(self, field: str | None, message: str) -> None:
        named = f"{self.prefix}{field}" if field else self.prefix.rstrip(".") or None
        self.problems.append(Problem(self.file, self.line(field), self.owner, named, message))

    def check_keys(self, allowed: AbstractSet[str], required: Iterable[str]) -> None:
        """Report unknown, duplicated and missing keys."""
        keys = self.mapping.keys()
        if not keys <= allowed:  # the loop only when some key is unknown: a set test is C
            for key in keys:
                if key not in allowed:
                    self.problem(key, f"unknown field (allowed: {', '.join(sorted(allowed))})")
        for key, line in self.mapping.duplicates:
            self.problems.append(Problem(self.file, line, self.owner, self.prefix + key,
                                         "given twice"))
        for key in required:
            if key not in keys:
                self.problem(None, f"missing required field {key!r}")

    def text(self, field: str, *, one_line: bool = True, limit: int = 1000) -> str | None:
        """Return a non-empty, cleaned string field, or None (absent or bad)."""
        raw = self.mapping.get(field)
        if raw is None:
            if field in self.mapping:
                self.problem(field, "is empty")
            return None
        if not isinstance(raw, str):
            self.problem(field, f"must be text, got {type(raw).__name__} {str(raw)[:40]!r}")
            return None
        value = clean_text(raw, one_line=one_line)
        if not value:
            self.problem(field, "is empty")
            return None
        if len(value) > limit:
            self.problem(field, f"is {len(value)} characters long; at most {limit} allowed")
            return None
        return value

    def match(self, field: str, pattern: re.Pattern[str], what: str) -> str | None:
        """Return a text field that matches `pattern`, or None."""
        value = self.text(field, limit=200)
        if value is not None and not pattern.match(value):
            self.problem(field, f"{value!r} is not {what}")
            return None
        return value

    def when(self, field: str, zone: tzinfo) -> datetime | None:
        """Return a timezone-aware date-time field, or None."""
        value = self.text(field, limit=64)
        if value is None:
            return None
        try:
            return parse_when(value, zone)
        except ValueError as exc:
            self.problem(field, f"{value!r} is not a valid date (YYYY-MM-DD) or date-time "
                                f"with offset (YYYY-MM-DDTHH:MM:SS+07:00): {exc}")
            return None

    def url(self, field: str) -> str | None:
        """Return an absolute http(s) URL field, or None."""
        value = self.text(field, limit=2000)
        if value is None or _PLAIN_URL.match(value):
            return value
        try:
            parts = urlsplit(value)
        except ValueError:  # "https://[::1" (an unclosed IPv6 host), "http://a／b" (NFKC)
            parts = None
        if parts is None or parts.scheme not in ("http", "https") or not parts.netloc \
                or " " in value:
            self.problem(field, f"{value!r} is not an absolute http(s) URL")
            return None
        return value

    def items(self, field: str, read: Callable[[Any], T], *, at_least: int = 0) -> tuple[T, ...]:
        """Return a list field, each item converted by `read` (which raises ValueError)."""
        raw = self.mapping.get(field)
        if not isinstance(raw, list):
            if field in self.mapping:
                self.problem(field, f"must be a list, e.g. [a, b], got {str(raw)[:40]!r}")
            return ()
        values: dict[T, None] = {}  # in the order listed
        for item in raw:
            try:
                value = read(item)
            except ValueError as exc:
                self.problem(field, str(exc))
                continue
            if value in values:
                self.problem(field, f"{item!r} is listed twice")
            values[value] = None
        if len(raw) < at_least:
            self.problem(field, f"needs at least {at_least} item{'s' if at_least > 1 else ''}")
        return tuple(values)

    def flag(self, field: str) -> bool:
        """Return a true/false field (False when absent)."""
        raw = self.mapping.get(field, False)
        if not isinstance(raw, bool):
            self.problem(field, f"must be true or false, got {str(raw)[:40]!r}")
            return False
        return raw
