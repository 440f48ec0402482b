"""The dataset's records and how each is read from one YAML mapping."""
from __future__ import annotations

import functools
import re
from collections.abc import Callable, Mapping
from dataclasses import MISSING, dataclass, fields
from datetime import datetime, timedelta, timezone, tzinfo
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import pycountry

from .fields import _LANGUAGE, SLUG, Fields
from .media import Media, read_attachments, read_image, read_picture
from .problems import Problem
from .yamlsource import LocatedMap

_TAG_AUTHORITY = re.compile(r"^[a-z0-9.-]+\.[a-z]{2,},\d{4}(?:-\d{2}(?:-\d{2})?)?$")
_OFFSET = re.compile(r"^([+-])(\d{2}):(\d{2})$")
COUNTRIES: frozenset[str] = frozenset(c.alpha_2 for c in pycountry.countries)


def country_code(value: object) -> str | None:
    """Return the uppercase ISO 3166-1 alpha-2 code `value` spells in any case, else None.

    ASCII only: `"ıt".upper()` is `"IT"` (a dotless i), and `"ſe".upper()` is `"SE"`.
    """
    if not isinstance(value, str) or not value.isascii():
        return None
    code = value.upper()
    return code if code in COUNTRIES else None


@dataclass(frozen=True, slots=True)
class Site:
    """Facts about the publishing office, from the site file."""

    title: str
    subtitle: str
    publisher: str
    language: str
    timezone: str
    tag_authority: str
    types: Mapping[str, str]
    icon: Media | None = None  # small and square: the favicon
    logo: Media | None = None  # the publisher's picture in feeds and pages

    @property
    def zone(self) -> tzinfo:
        return zone_named(self.timezone)


@dataclass(frozen=True, slots=True)
class Topic:
    """One entry of the topic vocabulary."""

    slug: str
    label: str
    description: str


@dataclass(frozen=True, slots=True)
class Correction:
    """A correction made to a published release: when, and what changed."""

    date: datetime
    note: str


@dataclass(frozen=True, slots=True)
class Release:
    """One press release, validated; dates are timezone-aware."""

    id: str
    type: str
    title: str
    published: datetime
    updated: datetime | None
    dateline: str | None
    countries: tuple[str, ...]
    topics: tuple[str, ...]
    summary: str
    body: str | None
    url: str | None
    language: str
    # The life of a release (see visible.py): never served, corrected, withdrawn.
    draft: bool = False
    corrections: tuple[Correction, ...] = ()
    withdrawn: datetime | None = None
    withdrawn_note: str | None = None
    image: Media | None = None
    attachments: tuple[Media, ...] = ()

    @property
    def modified(self) -> datetime:
        """Return when the release last changed: `updated`, else `published`."""
        return self.updated or self.published


@functools.lru_cache(maxsize=64)  # asked once per file: 100,000 times at a cold start
def zone_named(name: str) -> tzinfo:
    """Return the timezone for an IANA name (Asia/Bangkok) or a fixed offset (+07:00)."""
    fixed = _OFFSET.match(name)
    if fixed:
        sign, hours, minutes = fixed.groups()
        delta = timedelta(hours=int(hours), minutes=int(minutes))
        return timezone(-delta if sign == "-" else delta)
    return ZoneInfo(name)


_SITE_KEYS = frozenset(field.name for field in fields(Site))
_SITE_REQUIRED = tuple(field.name for field in fields(Site) if field.default is MISSING)


def read_site(file: str, mapping: LocatedMap, problems: list[Problem]) -> Site | None:
    """Read the site mapping; record each problem and return None if there is any."""
    before = len(problems)
    f = Fields(file, mapping, None, problems)
    f.check_keys(_SITE_KEYS, _SITE_REQUIRED)
    title, subtitle, publisher = f.text("title"), f.text("subtitle"), f.text("publisher")
    language = f.match("language", _LANGUAGE, "a language tag such as en or en-GB")
    zone = f.text("timezone", limit=64)
    if zone is not None:
        try:
            zone_named(zone)
        except (ZoneInfoNotFoundError, ValueError):
            f.problem("timezone", f"{zone!r} is not an IANA timezone (e.g. Asia/Bangkok) or "
                                  "an offset (e.g. +07:00)")
    authority = f.match("tag_authority", _TAG_AUTHORITY, "a tag: authority such as example.org,2004")
    types = _types(f)
    icon, logo = read_picture(f, "icon", title or ""), read_picture(f, "logo", title or "")
    if len(problems) > before:
        return None
    assert title and subtitle and publisher and language and zone and authority
    return Site(title, subtitle, publisher, language, zone, authority, types, icon, logo)


def _types(f: Fields) -> dict[str, str]:
    raw = f.mapping.get("types")
    if not isinstance(raw, dict) or not raw:
        if "types" in f.mapping:
            f.problem("types", "must be a mapping of type slug to label, e.g. press-release: Press release")
        return {}
    types = {}
    for slug, label in raw.items():
        if not SLUG.match(slug) or not isinstance(label, str) or not label.strip():
            f.problem("types", f"{slug!r}: needs a lowercase slug and a non-empty label")
        else:
            types[slug] = label.strip()
    return types


_TOPIC_KEYS = tuple(field.name for field in fields(Topic))


def read_topic(file: str, mapping: LocatedMap, problems: list[Problem]) -> Topic | None:
    """Read one topic of the vocabulary; None if it has a problem."""
    before = len(problems)
    f = Fields(file, mapping, None, problems)
    f.check_keys(frozenset(_TOPIC_KEYS), _TOPIC_KEYS)
    slug = f.match("slug", SLUG, "a lowercase slug such as social-security")
    label, description = f.text("label"), f.text("description", one_line=False)
    if len(problems) > before:
        return None
    assert slug and label and description
    return Topic(slug, label, description)


_RELEASE_KEYS = frozenset(field.name for field in fields(Release))
_RELEASE_REQUIRED = ("id", "type", "title", "published", "countries", "topics", "summary")
_CORRECTION_KEYS = frozenset(field.name for field in fields(Correction))


def _country(item: object) -> str:
    code = country_code(item)
    if code is None:
        raise ValueError(f"{item!r} is not an ISO 3166-1 alpha-2 country code (e.g. TH, KH)")
    return code


def _topic_reader(topics: Mapping[str, Topic]) -> Callable[[object], str]:
    def read(item: object) -> str:
        if not isinstance(item, str) or item not in topics:
            raise ValueError(f"{item!r} is not a topic of the vocabulary "
                             f"({_known(topics) or 'none defined'})")
        return item
    return read


def _known(topics: Mapping[str, Topic]) -> str:
    """Name the vocabulary in a problem: made only for a bad topic, not for every release."""
    # Listed once per bad item: a vocabulary of thousands would make each message huge.
    some = sorted(topics)[:20]
    return ", ".join(some) + (f", … ({len(topics)} in all)" if len(topics) > len(some) else "")


def _corrections(f: Fields, zone: tzinfo, published: datetime | None) -> tuple[Correction, ...]:
    """Return the `corrections` list ({date, note} items), oldest first."""
    raw = f.mapping["corrections"]
    if not isinstance(raw, list) or not all(isinstance(i, LocatedMap) for i in raw):
        f.problem("corrections", "must be a list of {date, note} mappings")
        return ()
    found: list[Correction] = []
    for number, item in enumerate(raw, 1):
        sub = Fields(f.file, item, f.owner, f.problems, f"corrections[{number}].")
        sub.check_keys(_CORRECTION_KEYS, ("date", "note"))
        when, note = sub.when("date", zone), sub.text("note", one_line=False, limit=5000)
        if when and published and when < published and len(sub.text("date") or "") == 10 \
                and when.date() == published.astimezone(zone).date():
            when = published  # dated the day it was published (a date is that day's midnight)
        if when and published and when < published:
            sub.problem("date", "a correction is earlier than published")
        elif when and note:
            found.append(Correction(when, note))
    return tuple(sorted(found, key=lambda c: c.date))


def _withdrawal(f: Fields, zone: tzinfo,
                published: datetime | None) -> tuple[datetime | None, str | None]:
    """Return when a release was withdrawn and why (both, or neither)."""
    withdrawn = f.when("withdrawn", zone) if "withdrawn" in f.mapping else None
    if withdrawn and published and withdrawn < published:
        f.problem("withdrawn", "is earlier than published")
    note = f.text("withdrawn_note", one_line=False, limit=5000) \
        if "withdrawn_note" in f.mapping else None
    if note is not None and "withdrawn" not in f.mapping:
        f.problem("withdrawn_note", "is given without withdrawn (the date-time of withdrawal)")
    return withdrawn, note


def read_release(file: str, mapping: LocatedMap, number: int, site: Site,
                 topics: Mapping[str, Topic], zone: tzinfo,
                 problems: list[Problem]) -> Release | None:
    """Read one release; record every problem with its line and return None if any."""
    raw_id = mapping.get("id")
    owner = raw_id if isinstance(raw_id, str) and raw_id else f"#{number} (no id)"
    before = len(problems)
    f = Fields(file, mapping, owner, problems)
    f.check_keys(_RELEASE_KEYS, _RELEASE_REQUIRED)
    rid = f.match("id", SLUG, "a lowercase slug (letters, digits, - _ .), e.g. pr-2005-001")
    kind = f.text("type", limit=100)
    if kind is not None and kind not in site.types:
        f.problem("type", f"{kind!r} is not a type of the site ({', '.join(sorted(site.types))})")
    published, updated = f.when("published", zone), None
    if "updated" in mapping:
        updated = f.when("updated", zone)
        if updated and published and updated < published:
            f.problem("updated", "is earlier than published")
    corrections = _corrections(f, zone, published) if "corrections" in mapping else ()
    if corrections:  # the newest correction is the release's last change
        updated = max(updated or corrections[-1].date, corrections[-1].date)
    withdrawn, note = _withdrawal(f, zone, published)
    release = Release(
        id=rid or "", type=kind or "", title=f.text("title", limit=500) or "",
        published=published or datetime.min, updated=updated,
        dateline=f.text("dateline", limit=100) if "dateline" in mapping else None,
        countries=f.items("countries", _country),
        topics=f.items("topics", _topic_reader(topics), at_least=1),
        summary=f.text("summary", limit=5000) or "",
        body=f.text("body", one_line=False, limit=1_000_000) if "body" in mapping else None,
        url=f.url("url") if "url" in mapping else None,
        language=(f.match("language", _LANGUAGE, "a language tag such as en or en-GB")
                  if "language" in mapping else None) or site.language,
        draft=f.flag("draft"), corrections=corrections, withdrawn=withdrawn, withdrawn_note=note,
        image=read_image(f), attachments=read_attachments(f),
    )
    return release if len(problems) == before else None
