"""lifecycle.View against the obvious definition: every release, checked one by one."""
from __future__ import annotations

from collections.abc import Sequence
from dataclasses import replace
from datetime import timedelta
from pathlib import Path

import pytest

from feedsvc.dataset import Release, load_dataset, newest_first
from feedsvc.dataset.facts import Facts, _facts, facts, hidden
from feedsvc.dataset.index import Cursor, Filters, Index, build_index
from feedsvc.dataset.lifecycle import view_at
from feedsvc.dataset.media import local_files
from feedsvc.dataset.reindex import update_index
from feedsvc.feeds.catalogue import build_catalogue
from feedsvc.feeds.feed import NEVER


@pytest.fixture(scope="module")
def archive(archive_1k: Path) -> Index:
    """The 1,000-release archive, every 7th a draft, every 11th withdrawn, every 13th corrected
    (its `updated` a year later)."""
    releases = list(load_dataset(archive_1k).releases)
    for i, r in enumerate(releases):
        if i % 7 == 3:
            r = replace(r, draft=True)
        if i % 11 == 5:
            r = replace(r, withdrawn=r.published + timedelta(days=2), withdrawn_note="Why.")
        if i % 13 == 0:
            r = replace(r, updated=r.published + timedelta(days=365))
        releases[i] = r
    dataset = load_dataset(archive_1k)
    return build_index(replace(dataset, releases=tuple(releases), version="lifecycle-test"))


@pytest.mark.parametrize("k", [0, 1, 37, 500, 999])
def test_view_counts_selects_and_dates_like_a_scan(archive: Index, k: int) -> None:
    like_a_scan(archive, k)


def like_a_scan(archive: Index, k: int) -> None:
    """Check the view at the k-th release's publication against every release, one by one."""
    now = archive.releases[k].published  # positions before k (and ties) are scheduled
    view = view_at(archive, now)
    shown = [r for r in archive.releases if r.published <= now and not hidden(r)]
    assert view.count() == len(shown)
    assert list(view.select(Filters(), 1000).releases) == shown
    catalogue = build_catalogue(view)
    assert catalogue.everything.releases == len(shown)
    assert catalogue.everything.updated == max((r.modified for r in shown), default=NEVER)
    for listing in catalogue.topics:
        mine = [r for r in shown if listing.scope.key in r.topics]
        assert (listing.releases, listing.updated) == (
            len(mine), max((r.modified for r in mine), default=NEVER))
    assert {listing.scope.key for listing in catalogue.countries} == {
        c.lower() for r in shown for c in r.countries}
    for listing in catalogue.countries:
        mine = [r for r in shown if (listing.scope.key or "").upper() in r.countries]
        assert listing.releases == len(mine) > 0
        assert listing.updated == max(r.modified for r in mine)
    page = view.select(Filters(countries=frozenset({"TH"})), 5)
    assert list(page.releases) == [r for r in shown if "TH" in r.countries][:5]


@pytest.mark.parametrize("k", [0, 37, 500])
def test_view_pages_by_cursor_and_slices_by_rank_like_a_scan(archive: Index, k: int) -> None:
    """A page after a cursor, and the visible releases ranked start to stop (the sitemap's
    slices), are those of the scan: hidden releases skipped wherever they fall."""
    now = archive.releases[k].published
    view = view_at(archive, now)
    shown = [r for r in archive.releases if r.published <= now and not hidden(r)]
    for at in (0, 1, 5, len(shown) // 2, len(shown) - 1):
        if at < len(shown):
            after = view.select(Filters(), 9, Cursor.of(shown[at]))
            assert list(after.releases) == shown[at + 1:at + 10]
            assert after.more == (len(shown) > at + 10)
    thai = [r for r in shown if "TH" in r.countries]
    assert list(view.select(Filters(countries=frozenset({"TH"})), 4, Cursor.of(thai[2])).releases) \
        == thai[3:7]
    for start, stop in ((0, 0), (0, 1), (3, 40), (len(shown) - 2, len(shown) + 5), (5, 2)):
        assert list(view.visible_slice(start, stop)) == shown[start:stop]
    assert view.media_files() == set(local_files(archive.dataset.site, shown))


def _changes(archive: Index) -> list[tuple[list[Release], list[Release]]]:
    """Edits that each touch a lifecycle fact: (releases removed, releases added)."""
    r = archive.releases
    new = replace(r[3], id="zz-new-1", updated=r[3].published + timedelta(days=900))
    return [
        ([r[5]], []),  # a withdrawn release deleted
        ([], [replace(r[10], id="zz-gone", withdrawn=r[10].published + timedelta(days=1))]),
        ([r[20]], [replace(r[20], draft=True)]),  # a release made a draft
        ([r[0]], [replace(r[0], updated=r[0].published + timedelta(days=3000))]),  # corrected
        ([r[13]], []),  # a corrected release deleted
        ([], [new]),  # a corrected release added
        ([new], [replace(new, updated=None, title="Uncorrected")]),
        ([r[3]], [replace(r[3], draft=False, withdrawn=None)]),  # a draft published
    ]


@pytest.mark.parametrize("k", [0, 37, 500])
def test_facts_worked_out_from_the_last_version_equal_facts_afresh(archive: Index,
                                                                    k: int) -> None:
    current = archive
    for n, (removed, added) in enumerate(_changes(archive)):
        gone = {r.id for r in removed}
        dataset = replace(current.dataset, version=f"step-{n}",
                          releases=newest_first([*(r for r in current.releases
                                                   if r.id not in gone), *added]))
        facts(current)  # the served version's facts: the next are worked out from them
        current, before = update_index(current, dataset, removed, added), current
        assert current.delta is not None
        assert _meaning(current, facts(current, before)) == _meaning(current, _facts(current))
        like_a_scan(current, k)


def _meaning(index: Index, found: Facts) -> dict[str, object]:
    """Facts by position (their labels are the index's own)."""
    def at(labels: Sequence[int]) -> list[int]:
        return [index.position(label) for label in labels]
    return {"hidden": at(found.hidden_all),
            "hidden_by": {name: at(v) for name, v in found.hidden_by.items()},
            "updated_by": {name: (list(keys), at([-n for n in negated]))
                           for name, (keys, negated) in found.updated_by.items() if keys},
            "tombstones": list(found.tombstones), "expiries": list(found.expiries)}


def test_facts_follow_releases_labelled_again_to_make_room(archive: Index) -> None:
    """Releases published one after another at one place run out of room between two
    labels: their neighbours (drafts, withdrawn and corrected ones among them) get new ones."""
    current, middle, moved = archive, archive.releases[500], 0
    for n in range(40):
        new = replace(middle, id=f"{middle.id}-{n:03d}", title=f"Squeezed in {n}",
                      updated=middle.published + timedelta(days=n))
        dataset = replace(current.dataset, version=f"squeeze-{n}",
                          releases=newest_first((*current.releases, new)))
        facts(current)
        current, before = update_index(current, dataset, [], [new]), current
        assert current.delta is not None
        moved = max(moved, len(current.delta.added) - 1)
        assert _meaning(current, facts(current, before)) == _meaning(current, _facts(current))
    assert moved > 0  # some of them moved their neighbours
    like_a_scan(current, 37)
