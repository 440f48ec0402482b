"""Issue 12, the life of a release: what visibility at a moment costs at 100,000 releases.

Baseline in the same run: `Index.select` of the first page, as before scheduling existed.
Rows: the same page through `lifecycle.View` (its bisect for the first visible position,
and skipping hidden releases), with 100 releases scheduled in the future and 1% withdrawn;
working out the view per request (`view_at`); the catalogue of every feed for a new moment
(what a scheduled publication costs, instead of rebuilding the index); the per-version
facts (once per dataset version, off the request path) worked out afresh, as at a start; and
one release published: the index updated by it, and the facts worked out from the last
version's (issue 10: what a publish costs).
Run: python bench/lifecycle_cost.py [RUNS]
"""
from __future__ import annotations

import statistics
import sys
import time
from collections.abc import Callable
from dataclasses import replace
from datetime import UTC, datetime, timedelta

from archives import archive, publish, table

from feedsvc.dataset import Dataset, Release, load_dataset, newest_first
from feedsvc.dataset.facts import _facts, _facts_after
from feedsvc.dataset.index import Filters, Index, build_index
from feedsvc.dataset.lifecycle import view_at
from feedsvc.dataset.reindex import update_index
from feedsvc.feeds.catalogue import build_catalogue

SIZE = 100_000


def _with_lifecycle(index: Index) -> tuple[Index, datetime]:
    """Return the archive with its 100 newest releases scheduled after `now`, 1% withdrawn."""
    releases = list(index.releases)
    now = releases[100].published + timedelta(seconds=1) if releases else datetime.now(UTC)
    for i in range(0, len(releases), 100):
        releases[i] = replace(releases[i], withdrawn=releases[i].published + timedelta(days=1))
    dataset = replace(index.dataset, releases=tuple(releases), version="lifecycle")
    return build_index(dataset), now


def _one_more(index: Index) -> tuple[Dataset, Release]:
    """Return the dataset with one more release (corrected, in two countries), and it."""
    new = replace(index.releases[7], id="bench-published", title="Published by the benchmark",
                  updated=index.releases[0].published + timedelta(days=1), withdrawn=None,
                  countries=("TH", "KH"))
    return replace(index.dataset, releases=newest_first((*index.releases, new)),
                   version="lifecycle+1"), new


def _ms(fn: Callable[[], object]) -> float:
    start = time.perf_counter_ns()
    fn()
    return (time.perf_counter_ns() - start) / 1e6


def main(runs: int = 30) -> None:
    plain = build_index(load_dataset(archive(SIZE)))
    index, now = _with_lifecycle(plain)
    view = view_at(index, now)
    everything, thailand = Filters(), Filters(countries=frozenset({"TH"}))
    cases: dict[str, Callable[[], object]] = {
        "Index.select, first page (baseline)": lambda: plain.select(everything, 20),
        "View.select, first page": lambda: view.select(everything, 20),
        "View.select, one country, first page": lambda: view.select(thailand, 20),
        "view_at (per request)": lambda: view_at(index, now),
        "catalogue of a new moment": lambda: build_catalogue(view_at(index, now)),
    }
    timings: dict[str, list[float]] = {label: [] for label in cases}
    for _ in range(runs):  # interleaved, so a busy moment slows every case alike
        for label, fn in cases.items():
            timings[label].append(_ms(fn))
    facts_ms = statistics.median(_ms(lambda: _facts(index)) for _ in range(3))
    dataset, new = _one_more(index)
    update_ms = statistics.median(_ms(lambda: update_index(index, dataset, [], [new]))
                                  for _ in range(3))
    published, last = update_index(index, dataset, [], [new]), _facts(index)
    assert published.delta is not None
    delta = published.delta
    after_ms = statistics.median(_ms(lambda: _facts_after(last, delta)) for _ in range(3))
    build_ms = statistics.median(_ms(lambda: build_index(plain.dataset)) for _ in range(3))
    base = statistics.median(timings["Index.select, first page (baseline)"])
    rows = [(label, f"{statistics.median(t):.3f}", f"{max(t):.3f}",
             f"{statistics.median(t) / base:.1f}×") for label, t in timings.items()]
    rows.append(("facts of a version (once)", f"{facts_ms:.1f}", "", f"{facts_ms / base:.0f}×"))
    rows.append(("update_index by one release published", f"{update_ms:.2f}", "",
                 f"{update_ms / base:.0f}×"))
    rows.append(("facts of that version, from the last one's", f"{after_ms:.2f}", "",
                 f"{after_ms / base:.0f}×"))
    rows.append(("build_index of a version, for scale", f"{build_ms:.1f}", "",
                 f"{build_ms / base:.0f}×"))
    publish("lifecycle_cost", f"## Visibility at a moment, {SIZE:,} releases, 100 scheduled, "
                              f"1% withdrawn (median and max of {runs})\n\n"
            + table(("case", "median ms", "max ms", "vs baseline"), rows))


if __name__ == "__main__":
    main(int(sys.argv[1]) if len(sys.argv) > 1 else 30)
