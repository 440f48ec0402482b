"""The store answers exactly as today's in-memory index and view: every method, many moments,
filters, cursors and limits, over the seed data, a synthetic lifecycle archive and small
generated datasets (drafts, scheduled, withdrawn, corrections, same-second ties, zones)."""
from __future__ import annotations

import itertools
from collections.abc import Iterator, Sequence
from dataclasses import replace
from datetime import date, datetime, timedelta
from pathlib import Path
from tempfile import TemporaryDirectory

import pytest
from hypothesis import given

from feedsvc.config import BUNDLED_DATA
from feedsvc.dataset import Dataset, load_dataset, newest_first, served
from feedsvc.dataset.facts import TOMBSTONE_DAYS
from feedsvc.dataset.index import Cursor, Filters, build_index
from feedsvc.dataset.lifecycle import View, view_at
from feedsvc.dataset.reader import Reader
from feedsvc.dataset.served import Listed
from feedsvc.dataset.visible import StoreView
from feedsvc.dataset.words import words
from feedsvc.operations.synth import write_archive

from .storecheck import assert_same, build_store, exact
from .storedata import ZONES, datasets


def moments(dataset: Dataset, every: int = 1) -> list[datetime]:
    """Return instants where what is visible changes, and just before and after them."""
    marks: list[datetime] = []
    for release in dataset.releases[::every]:
        marks.append(release.published)
        if release.withdrawn is not None:
            marks.append(release.withdrawn + TOMBSTONE_DAYS)
    tick = timedelta(microseconds=1)
    found = {m + d for m in marks for d in (-tick, timedelta(0), tick)}
    zone = dataset.site.zone
    found |= {datetime(1990, 1, 1, tzinfo=zone), datetime(2999, 1, 1, tzinfo=zone)}
    return sorted(found)


def filters_of(dataset: Dataset) -> list[Filters]:
    """Return filters of every shape: lists present and absent, words common and rare."""
    releases = dataset.releases
    countries = sorted({c for r in releases for c in r.countries})[:3] + ["ZZ"]
    topics = sorted({t for r in releases for t in r.topics})[:3] + ["no-such-topic"]
    known = [w for r in releases[:5] for w in words(f"{r.title} {r.summary}")]
    chosen = sorted(set(known))[:4] + ["nowhere"]
    since = [None, *(r.published.astimezone(dataset.site.zone).date() for r in releases[:: max(
        1, len(releases) // 2)])]
    found = [Filters()]
    for c, t in itertools.product([(), *([x] for x in countries), countries[:2]],
                                  [(), *([x] for x in topics), topics[:2]]):
        found.append(Filters(frozenset(c), frozenset(t)))
    for w in [[x] for x in chosen] + [chosen[:2], chosen[:3]]:
        found.append(Filters(words=frozenset(w)))
        found.append(Filters(frozenset(countries[:1]), frozenset(topics[:2]), frozenset(w)))
    found += [Filters(frozenset(countries[:2]), since=s) for s in since]
    found += [Filters(words=frozenset(chosen[:1]), since=s) for s in since]
    return found


def same_pages(old: View, new: StoreView, filters: Filters, limit: int,
               pages: int) -> None:
    """Walk up to `pages` pages of a feed with both, from the newest, by cursor; also from
    cursors that name no release (a tick later, an id beside)."""
    cursor: Cursor | None = None
    for _ in range(pages):
        expected = old.select(filters, limit, cursor)
        found = new.select(filters, limit, cursor)
        assert [exact(r) for r in found.releases] == [exact(r) for r in expected.releases]
        assert found.more == expected.more, (filters, limit, cursor)
        if not expected.releases or not expected.more:
            break
        last = expected.releases[-1]
        for odd in (Cursor(last.published + timedelta(microseconds=1), last.id),
                    Cursor(last.published, last.id + "-"), Cursor(last.published, "")):
            assert [r.id for r in new.select(filters, limit, odd).releases] == \
                [r.id for r in old.select(filters, limit, odd).releases]
        cursor = Cursor.of(last)


def names_of(dataset: Dataset) -> list[str | None]:
    return [None, "countries/ZZ", "topics/none",
            *sorted({f"countries/{c}" for r in dataset.releases for c in r.countries}),
            *(f"topics/{t}" for t in dataset.topics)]


def same_moment(old: View, new: StoreView, dataset: Dataset, ids: Sequence[str]) -> None:
    """Compare what does not depend on a feed's filters."""
    assert new.token == old.token
    assert exact(new.next_publication) == exact(old.next_publication)
    assert exact(new.next_change) == exact(old.next_change)
    assert new.seconds_to_change() == old.seconds_to_change()
    for name in names_of(dataset):
        assert new.count(name) == old.count(name), name
        assert_same(new.newest(name), old.newest(name))
    for rid in [*ids, "no-such-release"]:
        status, release = new.status(rid)
        expected_status, expected = old.status(rid)
        assert status == expected_status, rid
        assert_same(release, expected)
    assert sorted(new.countries()) == sorted(old.countries())
    assert new.media_files() == old.media_files()
    same_visible(old, new)


def same_visible(old: View, new: StoreView, size: int = 7) -> None:
    """The sitemap's slices, by key, give what View.visible gives."""
    def listed(found: Sequence[Listed]) -> list[tuple[str, int]]:
        return [(r.id, int(r.modified.timestamp())) for r in found]

    expected = listed(old.visible_slice(0, old.count()))
    found: list[tuple[str, int]] = []
    after = None
    while chunk := new.visible(after, size):
        assert all(v.modified.utcoffset() == timedelta(0) for v in chunk)
        found += listed(chunk)
        after = chunk[-1].key
    assert found == expected
    total = len(expected)
    for start, stop in ((0, size), (size, 2 * size), (total - 1, total + 5), (3, 2), (-1, 4)):
        assert listed(new.visible_slice(start, stop)) == listed(old.visible_slice(start, stop))


def compare(dataset: Dataset, reader: Reader, at: Sequence[datetime], limits: Sequence[int],
            every_id: bool = True, pages: int = 1000, spread: int = 1) -> None:
    """Compare both at each moment; each filter at one moment in `spread` (in turn)."""
    index = build_index(dataset)
    ids = [r.id for r in dataset.releases] if every_id else \
        [r.id for r in dataset.releases if r.draft or r.withdrawn or r.updated][:50]
    with reader.read() as snapshot:
        assert (snapshot.version, snapshot.source) == (dataset.version, dataset.source)
        assert exact(snapshot.site) == exact(dataset.site)
        assert exact(dict(snapshot.topics)) == exact(dict(dataset.topics))
        every = filters_of(dataset)
        for turn, now in enumerate(at):
            old = view_at(index, now)
            new: served.View = snapshot.view_at(now)  # the interface consumers read
            assert isinstance(new, StoreView)
            same_moment(old, new, dataset, ids)
            for filters in every[turn % spread::spread]:
                found = new.tombstones(filters)
                assert [exact(r) for r in found] == [exact(r) for r in old.tombstones(filters)]
                for limit in limits:
                    same_pages(old, new, filters, limit, pages)


def test_the_seed_data(tmp_path: Path) -> None:
    dataset = load_dataset(BUNDLED_DATA)
    reader = build_store(dataset, tmp_path / "store.sqlite3")
    compare(dataset, reader, moments(dataset), (1, 3, 20))


@pytest.fixture(scope="module")
def lifecycle_2k(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Dataset, Reader]]:
    folder = tmp_path_factory.mktemp("life")
    dataset = load_dataset(write_archive(2000, folder / "archive.yaml", lifecycle=True))
    yield dataset, build_store(dataset, folder / "store.sqlite3", per_file=7)


def test_a_synthetic_lifecycle_archive(lifecycle_2k: tuple[Dataset, Reader]) -> None:
    dataset, reader = lifecycle_2k
    assert sum(r.draft for r in dataset.releases) > 5
    assert sum(r.withdrawn is not None for r in dataset.releases) > 20
    zone = dataset.site.zone
    at = [*moments(dataset, every=197)[::7],
          *(datetime(y, 6, 1, tzinfo=zone) for y in (2005, 2020, 2025))]
    compare(dataset, reader, at, (20, 100), every_id=False, pages=3)


@given(datasets())
def test_generated_datasets(dataset: Dataset) -> None:
    with TemporaryDirectory() as folder:
        reader = build_store(dataset, Path(folder) / "store.sqlite3", per_file=2)
        try:
            compare(dataset, reader, moments(dataset), (1, 5), spread=4)
        finally:
            reader.close()


def test_since_is_a_day_in_the_site_zone(tmp_path: Path) -> None:
    """A release just before the site's midnight is not of a feed since that day."""
    dataset = load_dataset(BUNDLED_DATA)
    first = dataset.releases[0]
    midnight = datetime.combine(date(2005, 1, 17), datetime.min.time(), dataset.site.zone)
    moved = replace(dataset, releases=(replace(first, published=midnight), replace(
        dataset.releases[1], published=midnight - timedelta(microseconds=1)),
        *dataset.releases[2:]))
    reader = build_store(moved, tmp_path / "store.sqlite3")
    with reader.read() as snapshot:
        view = snapshot.view_at(datetime(2030, 1, 1, tzinfo=dataset.site.zone))
        page = view.select(Filters(since=date(2005, 1, 17)), 20)
    assert [r.id for r in page.releases] == [first.id]


def test_ties_within_a_second_are_ordered_by_instant_then_id(tmp_path: Path) -> None:
    """Releases of one second: the later instant first, then the greater id, in every zone."""
    dataset = load_dataset(BUNDLED_DATA)
    second = datetime(2005, 1, 17, 9, 30, tzinfo=dataset.site.zone)
    offsets = [(0, "pr-2005-002"), (500_000, "pr-2005-001"), (1, "pr-2004-008"),
               (500_000, "pr-2004-007"), (0, "pr-2004-006")]
    releases = {r.id: r for r in dataset.releases}
    tied = [replace(releases[rid], published=(second + timedelta(microseconds=us)).astimezone(
        ZONES[n % len(ZONES)])) for n, (us, rid) in enumerate(offsets)]
    rest = [r for r in dataset.releases if r.id not in dict((i, 0) for _, i in offsets)]
    moved = replace(dataset, releases=newest_first([*tied, *rest]))
    assert [r.id for r in moved.releases[:5]] == ["pr-2005-001", "pr-2004-007", "pr-2004-008",
                                                   "pr-2005-002", "pr-2004-006"]
    reader = build_store(moved, tmp_path / "store.sqlite3")
    compare(moved, reader, moments(moved), (1, 2, 20))
