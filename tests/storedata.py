"""Small generated datasets for the store's tests: every lifecycle field, ties, several zones."""
from __future__ import annotations

import functools
import hashlib
import shutil
from datetime import UTC, datetime, timedelta, timezone
from pathlib import Path
from zoneinfo import ZoneInfo

from hypothesis import strategies as st

from feedsvc.config import BUNDLED_DATA
from feedsvc.dataset import Dataset, Release, load_dataset, newest_first
from feedsvc.dataset.records import Correction


def bundled_skeleton(root: Path) -> Path:
    """Make `root` a dataset of the bundled site and topics with no release yet; return it."""
    (root / "releases").mkdir(parents=True)
    for name in ("site.yaml", "topics.yaml"):
        shutil.copy(BUNDLED_DATA / name, root / name)
    return root


ZONES = (ZoneInfo("Asia/Bangkok"), ZoneInfo("Europe/London"), ZoneInfo("America/Sao_Paulo"),
         UTC, timezone(timedelta(hours=7)), timezone(timedelta(hours=-3, minutes=-30)))
# Few instants, so that releases share seconds and instants (ties); midnights of days with a
# clock change among them.
BASES = (datetime(2005, 1, 17, 0, 0), datetime(2005, 1, 17, 9, 30), datetime(2024, 3, 31, 1, 30),
         datetime(2024, 10, 27, 1, 30), datetime(2018, 11, 4, 0, 0), datetime(2026, 6, 1, 12, 0))
WORDS = ("ilo", "workers", "Straße", "STRASSE", "safety", "ǰob", "migrant_workers", "ﬁsh")
COUNTRIES = ("TH", "KH", "LA", "US")
OFFSET = timezone(timedelta(hours=7))


@functools.cache
def bundled() -> Dataset:
    return load_dataset(BUNDLED_DATA)


@st.composite
def _when(draw: st.DrawFn) -> datetime:
    """A date-time as the loader makes them: a date is its midnight in a named zone (the
    site's), a date-time has a fixed offset. (Two times of one named zone compare by wall
    time, fold ignored, not by instant: the loader never makes any but midnights there.)"""
    base = draw(st.sampled_from(BASES)) + timedelta(
        days=draw(st.integers(0, 2)), seconds=draw(st.sampled_from((0, 0, 1, 59))),
        microseconds=draw(st.sampled_from((0, 0, 0, 1, 500_000))))
    zone = draw(st.sampled_from(ZONES))
    if isinstance(zone, ZoneInfo):
        return datetime.combine(base.date(), datetime.min.time(), zone)
    return base.replace(tzinfo=zone)


@st.composite
def release(draw: st.DrawFn, number: int) -> Release:
    published = draw(_when())
    later = st.integers(0, 90 * 86400).map(lambda s: (published + timedelta(seconds=s))
                                           .astimezone(OFFSET))
    text = st.lists(st.sampled_from(WORDS), min_size=1, max_size=3).map(" ".join)
    corrections = tuple(sorted((Correction(draw(later), "Fixed.")
                                for _ in range(draw(st.integers(0, 2)))), key=lambda c: c.date))
    updated = draw(st.none() | later)
    if corrections:
        updated = max(updated or corrections[-1].date, corrections[-1].date)
    withdrawn = draw(st.none() | later)
    return Release(
        id=f"r-{number:02d}{draw(st.sampled_from(('', 'a', 'b')))}", type="press-release",
        title=draw(text), published=published, updated=updated, dateline=None,
        countries=tuple(draw(st.lists(st.sampled_from(COUNTRIES), max_size=2, unique=True))),
        topics=tuple(draw(st.lists(st.sampled_from(sorted(bundled().topics)[:3]), min_size=1,
                                   max_size=2, unique=True))),
        summary=draw(text), body=None, url=None, language="en",
        draft=draw(st.booleans().filter(lambda _: True) if number % 3 == 0 else st.just(False)),
        corrections=corrections, withdrawn=withdrawn,
        withdrawn_note=draw(st.none() | st.just("Gone.")) if withdrawn else None)


@st.composite
def datasets(draw: st.DrawFn, most: int = 14) -> Dataset:
    """Draw a valid dataset of up to `most` releases, sorted as a loaded one is."""
    count = draw(st.integers(0, most))
    releases = newest_first(draw(release(n)) for n in range(count))
    version = hashlib.sha256(repr([r.id for r in releases]).encode()).hexdigest()[:16]
    return Dataset(bundled().site, bundled().topics, releases, version, "generated")
