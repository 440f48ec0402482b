"""Release <-> row of the store's `releases` table, and Site and topics <-> `meta` (JSON).

Countries and topics are kept as codes and slugs apart by spaces (neither holds one), the
rest of the lists as JSON: decoding a page of releases is most of what selecting it costs.
The round trip is exact: every field, a date-time as written (its wall time, its zone: a
named zone comes back as the same ZoneInfo, a fixed offset as the same offset, and `fold`),
corrections, pictures and attachments with every field of Media.
"""
from __future__ import annotations

import functools
import json
from collections.abc import Mapping, Sequence
from dataclasses import asdict, astuple, fields
from datetime import UTC, datetime, timedelta, timezone, tzinfo
from typing import Any
from zoneinfo import ZoneInfo

from . import Release, Site, Topic
from .media import Media
from .records import Correction

# How long a withdrawn release's Atom tombstone (RFC 6721) stays in the feeds it was in.
TOMBSTONE_DAYS = timedelta(days=30)


def hidden(release: Release) -> bool:
    """Tell whether a release is never served: a draft, or withdrawn."""
    return release.draft or release.withdrawn is not None


def changed(release: Release) -> int:
    """Return a release's last change in whole seconds: what the store sorts updates by."""
    return int(release.modified.timestamp())


_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_MICRO = timedelta(microseconds=1)

# The columns of `releases`, in the order of db.DDL and of encode()'s tuple.
COLUMNS = ("key", "id", "file", "published_us", "modified_s", "hidden", "notice_until_us",
           "published", "updated", "type", "title", "summary", "body", "url", "language",
           "dateline", "countries", "topics", "draft", "corrections", "withdrawn",
           "withdrawn_note", "image", "attachments")
# What decode() reads: the release's fields (SELECT {FIELDS} FROM releases ...).
FIELDS = ", ".join(("id", *COLUMNS[7:]))
INSERT = f"INSERT INTO releases({', '.join(COLUMNS)}) VALUES ({', '.join('?' * len(COLUMNS))})"


def micros(when: datetime) -> int:
    """Return an aware date-time as whole microseconds since the Unix epoch (exact)."""
    return (when - _EPOCH) // _MICRO


def when_text(when: datetime) -> str:
    """Return a date-time as its wall time, its zone and its fold: what when_from reads."""
    zone = when.tzinfo
    if isinstance(zone, ZoneInfo) and zone.key is not None:
        name: str | None = zone.key
    elif isinstance(zone, timezone):
        name = _offset_name(zone, zone.tzname(None))
    else:
        name = None
    if name is None:
        raise ValueError(f"{when!r}: only IANA zones and unnamed fixed offsets are stored")
    # The wall time as replace(tzinfo=None).isoformat() writes it, without a new datetime.
    return f"{when.date().isoformat()}T{when.time().isoformat()} {name}" + \
        (" 1" if when.fold else "")


@functools.lru_cache(maxsize=256)  # keyed by the name too: timezones of one offset are equal
def _offset_name(zone: timezone, label: str) -> str | None:
    """Return how a fixed offset is stored ("@" and microseconds), or None if it has a name."""
    offset = zone.utcoffset(None)
    plain = timezone(offset)
    return f"@{offset // _MICRO}" if zone == plain and label == plain.tzname(None) else None


def when_from(text: str) -> datetime:
    """Return the date-time when_text wrote."""
    wall, name, *fold = text.split(" ")
    zone: tzinfo = timezone(int(name[1:]) * _MICRO) if name.startswith("@") else ZoneInfo(name)
    return datetime.fromisoformat(wall).replace(tzinfo=zone, fold=1 if fold else 0)


_MEDIA_FIELDS = tuple(field.name for field in fields(Media))


def _media(media: Media) -> dict[str, Any]:
    """Return a Media's fields (asdict's deep copy costs 30 times as much)."""
    return {name: getattr(media, name) for name in _MEDIA_FIELDS}


def encode(release: Release, key: int, file: int) -> tuple[object, ...]:
    """Return the row of `releases` for a release (the order of COLUMNS)."""
    published, updated, withdrawn = release.published, release.updated, release.withdrawn
    notice = None if withdrawn is None or release.draft else micros(withdrawn + TOMBSTONE_DAYS)
    # Most releases have no corrections, attachments, update or withdrawal: nothing is built.
    return (key, release.id, file, micros(published), changed(release),
            int(hidden(release)), notice, when_text(published),
            None if updated is None else when_text(updated),
            release.type, release.title, release.summary, release.body, release.url,
            release.language, release.dateline, " ".join(release.countries),
            " ".join(release.topics), int(release.draft),
            json.dumps([(when_text(c.date), c.note) for c in release.corrections])
            if release.corrections else "[]",
            None if withdrawn is None else when_text(withdrawn), release.withdrawn_note,
            None if release.image is None else json.dumps(_media(release.image)),
            json.dumps([_media(m) for m in release.attachments]) if release.attachments else "[]")


def decode(row: Sequence[Any]) -> Release:
    """Return the release of a row selected as FIELDS."""
    (rid, published, updated, kind, title, summary, body, url, language, dateline, countries,
     topics, draft, corrections, withdrawn, note, image, attachments) = row
    return Release(
        id=rid, type=kind, title=title, published=when_from(published),
        updated=None if updated is None else when_from(updated), dateline=dateline,
        countries=tuple(countries.split()), topics=tuple(topics.split()),
        summary=summary, body=body, url=url, language=language, draft=bool(draft),
        corrections=() if corrections == "[]" else tuple(
            Correction(when_from(when), text) for when, text in json.loads(corrections)),
        withdrawn=None if withdrawn is None else when_from(withdrawn), withdrawn_note=note,
        image=None if image is None else Media(**json.loads(image)),
        attachments=() if attachments == "[]" else tuple(
            Media(**found) for found in json.loads(attachments)))


def site_json(site: Site) -> str:
    """Return the site as the JSON kept in meta."""
    return json.dumps(asdict(site))


def site_from(text: str) -> Site:
    """Return the site site_json wrote."""
    found = json.loads(text)
    return Site(**{**found, **{name: Media(**found[name]) for name in ("icon", "logo")
                               if found[name] is not None}})


def topics_json(topics: Mapping[str, Topic]) -> str:
    """Return the topic vocabulary, in its order, as the JSON kept in meta."""
    return json.dumps([astuple(t) for t in topics.values()])


def topics_from(text: str) -> dict[str, Topic]:
    """Return the vocabulary topics_json wrote."""
    return {slug: Topic(slug, label, description)
            for slug, label, description in json.loads(text)}
