"""lifecycle.View against the obvious definition: every release, checked one by one."""
from __future__ import annotations

from dataclasses import replace
from datetime import timedelta
from pathlib import Path

import pytest

from feedsvc.catalogue import build_catalogue
from feedsvc.dataset import load_dataset
from feedsvc.feed import NEVER
from feedsvc.index import Filters, Index, build_index
from feedsvc.lifecycle import hidden, view_at


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
