"""Index selection equals a brute-force filter of the whole archive, for many random queries."""
from __future__ import annotations

import random
import re
import unicodedata
from datetime import date, datetime, time
from pathlib import Path

import pytest

from feedsvc.dataset import Release, load_dataset
from feedsvc.dataset.index import Filters, Index, Page, build_index
from feedsvc.dataset.words import words

from .helpers import index_meaning

COUNTRY_POOL = ("TH", "KH", "CN", "IN", "VN", "PH", "MN", "CH", "FR", "BR")


@pytest.fixture(scope="module")
def index(archive_1k: Path) -> Index:
    return build_index(load_dataset(archive_1k))


_WORDS: dict[str, set[str]] = {}


def _words_of(r: Release) -> set[str]:
    if r.id not in _WORDS:
        _WORDS[r.id] = set(words(f"{r.title} {r.summary}"))
    return _WORDS[r.id]


def brute_force(index: Index, filters: Filters, limit: int, start: int) -> Page:
    """Select by reading every release: the meaning the index must reproduce."""
    zone = index.dataset.site.zone
    since = None if filters.since is None else datetime.combine(filters.since, time(), zone)
    matches = [
        r for position, r in enumerate(index.releases)
        if position >= start
        and (not filters.countries or not filters.countries.isdisjoint(r.countries))
        and (not filters.topics or not filters.topics.isdisjoint(r.topics))
        and filters.words <= _words_of(r)
        and (since is None or r.published >= since)
    ]
    return Page(matches[:limit], len(matches) > limit)


def random_filters(rng: random.Random, index: Index) -> Filters:
    vocabulary = sorted(index.by_word)
    topics = sorted(index.dataset.topics)
    since = None
    if rng.random() < 0.4:
        since = date(rng.randint(2003, 2025), rng.randint(1, 12), rng.randint(1, 28))
    return Filters(
        countries=frozenset(rng.sample(COUNTRY_POOL, rng.choice((0, 0, 1, 1, 2, 3)))),
        topics=frozenset(rng.sample(topics, rng.choice((0, 0, 1, 1, 2)))),
        words=frozenset(rng.sample(vocabulary + ["unheardof"], rng.choice((0, 0, 0, 1, 2, 3, 5)))),
        since=since,
    )


def test_select_equals_brute_force_for_random_filters(index: Index) -> None:
    rng = random.Random(7)
    nonempty = 0
    for _ in range(400):
        filters = random_filters(rng, index)
        limit, start = rng.choice((1, 5, 20, 100)), rng.choice((0, 0, 0, 1, 17, 400, 999, 1200))
        expected = brute_force(index, filters, limit, start)
        got = index.select(filters, limit, start)
        assert [r.id for r in got.releases] == [r.id for r in expected.releases], filters
        assert got.more == expected.more, (filters, limit, start)
        nonempty += bool(got.releases)
    assert nonempty > 150  # the random queries really select something


def test_pages_follow_each_other_without_gaps_or_repeats(index: Index) -> None:
    filters = Filters(countries=frozenset({"TH", "KH"}), topics=frozenset({"social-security"}))
    everything = brute_force(index, filters, 10_000, 0).releases
    positions = {r.id: p for p, r in enumerate(index.releases)}
    seen: list[Release] = []
    start = 0
    while True:
        page = index.select(filters, 7, start)
        seen += page.releases
        if not page.more:
            break
        start = positions[page.releases[-1].id] + 1
    assert [r.id for r in seen] == [r.id for r in everything]


def test_no_filters_and_since_are_newest_first(index: Index) -> None:
    page = index.select(Filters(since=date(2024, 1, 1)), 100)
    assert page.releases == list(index.releases[: len(page.releases)])
    assert all(r.published.year >= 2024 for r in page.releases)
    assert [r.published for r in page.releases] == sorted(
        (r.published for r in page.releases), reverse=True)


def _edited(release: Release, rng: random.Random, number: int) -> Release:
    from dataclasses import replace
    from datetime import timedelta

    moved = release.published + timedelta(days=rng.choice((-4000, -1, 0, 1, 4000)))
    return replace(release, title=f"{release.title} corrected twice {number}", published=moved,
                   countries=tuple(sorted(rng.sample(COUNTRY_POOL, 2))))


@pytest.mark.parametrize("seed", range(12))
def test_an_updated_index_equals_one_built_afresh(index: Index, seed: int) -> None:
    from dataclasses import replace

    from feedsvc.dataset import newest_first
    from feedsvc.dataset.reindex import update_index

    rng = random.Random(seed)
    old = list(index.releases)
    removed = rng.sample(old, rng.choice((0, 1, 2, 5)))
    edited = [_edited(r, rng, n) for n, r in enumerate(rng.sample(old, rng.choice((0, 1, 3))))]
    fresh = [replace(rng.choice(old), id=f"new-{seed}-{n}", title=f"Brand new zyzzyva {n}")
             for n in range(rng.choice((0, 1, 4)))]
    edited_ids = {r.id for r in edited}
    gone = removed + [r for r in old if r.id in edited_ids and r not in removed]
    kept = [r for r in old if r not in gone]
    added = edited + fresh
    added = [r for r in added if r.id not in {g.id for g in removed}]
    dataset = replace(index.dataset, releases=newest_first(kept + added), version=f"v{seed}")
    updated = update_index(index, dataset, gone, added)
    built = build_index(dataset)
    assert index_meaning(updated) == index_meaning(built)
    for _ in range(40):  # its labels are spaced unevenly now: selecting must not care
        filters, start = random_filters(rng, built), rng.choice((0, 1, 17, 400))
        assert updated.select(filters, 20, start) == built.select(filters, 20, start)


def test_releases_added_again_and_again_at_one_place_are_indexed_as_afresh(index: Index) -> None:
    """Each new release halves the room between two neighbours' labels, until none is left."""
    from dataclasses import replace

    from feedsvc.dataset import newest_first
    from feedsvc.dataset.reindex import update_index

    current, middle = index, index.releases[len(index.releases) // 2]
    for n in range(80):
        new = replace(middle, id=f"{middle.id}-{n:03d}", title=f"Squeezed in {n}")
        dataset = replace(current.dataset, releases=newest_first((*current.releases, new)),
                          version=f"v{n}")
        current = update_index(current, dataset, [], [new])
        assert current.delta is not None  # its neighbours were labelled again, not the archive
        assert index_meaning(current) == index_meaning(build_index(dataset))


# Default_Ignorable_Code_Point, as Unicode 14's DerivedCoreProperties.txt lists it: the spec,
# written out here apart from the code's own table.
IGNORABLE = {*range(0x00AD, 0x00AE), 0x034F, 0x061C, 0x115F, 0x1160, 0x17B4, 0x17B5,
             *range(0x180B, 0x1810), *range(0x200B, 0x2010), *range(0x202A, 0x202F),
             *range(0x2060, 0x2070), 0x3164, *range(0xFE00, 0xFE10), 0xFEFF, 0xFFA0,
             *range(0xFFF0, 0xFFF9), *range(0x1BCA0, 0x1BCA4), *range(0x1D173, 0x1D17B),
             *range(0xE0000, 0xE1000)}


_REMOVED = dict.fromkeys(IGNORABLE)  # str.translate's table: each ignorable maps to nothing


def reference_words(text: str) -> list[str]:
    """Unicode's NFKC_Casefold (ignorables removed, NFKC, case folded), then re's \\w+."""
    kept = text.translate(_REMOVED)
    folded = unicodedata.normalize("NFKC", unicodedata.normalize("NFKC", kept).casefold())
    return re.findall(r"\w+", folded)


def test_words_are_the_runs_of_word_characters_in_every_script() -> None:
    """`q` and the index split text as re's \\w+ does after NFKC_Casefold: every character
    is tried, alone, inside a word and after one ("ß" is "ss", "Ａ" is "a", "ﬁ" is "fi")."""
    texts = {code: f"a{chr(code)}b {chr(code)} x{chr(code)}Straße" for code in range(0x110000)
             if not 0xD800 <= code < 0xE000}  # surrogates are not text
    codes = list(texts)
    # 256 texts a call, apart by a space: each begins and ends with a letter that nothing
    # across a space composes with, and folding, translating and \w+ go character by
    # character, so a chunk's words are its texts' words one after the other. The cost is the
    # characters', not a million calls'; a chunk that differs is tried text by text.
    for start in range(0, len(codes), 256):
        chunk = codes[start:start + 256]
        text = " ".join(texts[code] for code in chunk)
        if words(text) != reference_words(text):
            for code in chunk:
                assert words(texts[code]) == reference_words(texts[code]), hex(code)
            pytest.fail(f"the texts of {hex(chunk[0])}..{hex(chunk[-1])} agree alone, not together")


@pytest.mark.parametrize(("text", "query"), [
    ("Employment", "ＥＭＰＬＯＹＭＥＮＴ"), ("employment", "em\u00adploy\u200bment"),
    ("Straße", "STRASSE"), ("ﬁre", "fire"), ("Ⅻ", "xii"), ("café", "cafe\u0301")])
def test_the_index_and_a_query_fold_alike(text: str, query: str) -> None:
    assert words(query) == words(text) and len(words(text)) == 1 + text.count(" ")
