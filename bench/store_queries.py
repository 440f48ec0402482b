"""Issue 19, the store: every query shape the reader answers, through its API (feedsvc/dataset/
visible.py), at N synthetic releases with every lifecycle field: median ms and CPU ms per call;
and the writer's one-file transactions (add, edit, delete a release).

Run: python bench/store_queries.py [--releases N] [--runs R]   (default 100,000 and 21)
"""
from __future__ import annotations

import argparse
import os
import sqlite3
import statistics
import tempfile
import time
from collections.abc import Callable
from dataclasses import replace
from datetime import date, datetime
from pathlib import Path

from archives import publish, table

from feedsvc.dataset import Dataset, load_dataset
from feedsvc.dataset.bulkload import rebuild
from feedsvc.dataset.db import connect
from feedsvc.dataset.selecting import MAX_WORDS
from feedsvc.dataset.served import Cursor, Filters, Meta
from feedsvc.dataset.visible import StoreView
from feedsvc.dataset.visible import view_at as store_view_at
from feedsvc.dataset.write import FileChange, apply
from feedsvc.operations.synth import write_archive

COMMON = ("workers", "ilo", "organizations", "employers", "governments", "representatives",
          "together", "brings", "held", "new", "of", "on", "the", "and", "at", "in", "a", "talks")
TH, KH, US = frozenset({"TH"}), frozenset({"TH", "KH"}), frozenset({"US"})
FIVE = frozenset({"TH", "KH", "LA", "VN", "MM"})
SOCIAL = frozenset({"social-security"})
THREE = frozenset({"social-security", "labour-migration", "gender-equality"})
SINCE = date(2024, 1, 1)


def w(count: int) -> frozenset[str]:
    return frozenset(COMMON[:count])


Call = Callable[[StoreView], object]


def shapes(cursor: Cursor, some_id: str, commonest: frozenset[str]) -> list[tuple[str, Call]]:
    """Each shape: a label, and the call that answers it on the store's view."""
    def select(filters: Filters, limit: int = 20, before: Cursor | None = None) -> Call:
        def call(view: StoreView) -> object:
            return view.select(filters, limit, before)
        return call
    return [
        ("all", select(Filters())),
        ("all, limit 100", select(Filters(), 100)),
        ("all, before a cursor in 2010", select(Filters(), 20, cursor)),
        ("all, since 2024-01-01", select(Filters(since=SINCE))),
        ("one country (TH)", select(Filters(TH))),
        ("one rare country (US)", select(Filters(US))),
        ("one country, before a cursor in 2010", select(Filters(TH), 20, cursor)),
        ("two countries (TH, KH)", select(Filters(KH))),
        ("five countries, limit 100", select(Filters(FIVE), 100)),
        ("one topic", select(Filters(topics=SOCIAL))),
        ("three topics", select(Filters(topics=THREE))),
        ("country + topic (TH, social-security)", select(Filters(TH, SOCIAL))),
        ("rare country + topic (US, gender-equality)",
         select(Filters(US, frozenset({"gender-equality"})))),
        ("5 countries x 3 topics, limit 100", select(Filters(FIVE, THREE), 100)),
        ("worst before: country + topic that never meet",
         select(Filters(TH, frozenset({"no-such-topic"})))),
        *[(f"q, {n} common word{'s' if n > 1 else ''}", select(Filters(words=w(n))))
          for n in (1, 2, 4, 8, MAX_WORDS)],
        (f"q, the {MAX_WORDS} commonest words (the bound)", select(Filters(words=commonest))),
        ("q, 1 rare word", select(Filters(words=frozenset({"tripartite"})))),
        ("q, 2 words, limit 100, since 2024", select(Filters(words=w(2), since=SINCE), 100)),
        ("q, 2 words within TH", select(Filters(TH, words=w(2)))),
        ("q, 2 words within US", select(Filters(US, words=w(2)))),
        ("worst before: q, 1 common word, in a country with no release",
         select(Filters(frozenset({"ZZ"}), words=w(1)))),
        (f"q, {MAX_WORDS} common words within 5 countries x 3 topics, limit 100",
         select(Filters(FIVE, THREE, w(MAX_WORDS)), 100)),
        ("q, 8 words within TH, KH + a topic", select(Filters(KH, SOCIAL, w(8)))),
        ("release page by id (status)", lambda view: view.status(some_id)),
        ("count, all", lambda view: view.count()),
        ("count, one country", lambda view: view.count("countries/TH")),
        ("newest, all", lambda view: view.newest()),
        ("newest, one topic", lambda view: view.newest("topics/social-security")),
        ("tombstones of a feed (TH)", lambda view: view.tombstones(Filters(TH))),
        ("next change", lambda view: view.next_change),
    ]


def median_ms(call: Callable[[], object], runs: int) -> tuple[float, float]:
    wall, cpu = [], []
    for _ in range(runs):
        began, spent = time.perf_counter(), time.process_time()
        call()
        wall.append((time.perf_counter() - began) * 1000)
        cpu.append((time.process_time() - spent) * 1000)
    return statistics.median(wall), statistics.median(cpu)


def files_of(dataset: Dataset) -> list[FileChange]:
    return [FileChange(f"releases/{r.id}.yaml", 600, n, n, n.to_bytes(16, "big"), (r,))
            for n, r in enumerate(dataset.releases)]


def writes(conn: sqlite3.Connection, dataset: Dataset, runs: int) -> list[tuple[str, str, str]]:
    """Time one-file transactions: a release added among the busiest second's, edited, deleted."""
    busiest = max(dataset.releases[:5000], key=lambda r: sum(
        1 for o in dataset.releases[:5000] if o.published == r.published))
    added = replace(busiest, id="aaa-bench", title="Added during the benchmark")
    edited = replace(added, title="Edited", countries=("TH", "KH"))
    path = "releases/aaa-bench.yaml"
    steps = [("add one release, tied with its second's others",
              lambda: apply(conn, [FileChange(path, 1, 1, 1, b"\1" * 16, (added,))], [],
                            version="a")),
             ("edit it (its file again)",
              lambda: apply(conn, [FileChange(path, 2, 2, 1, b"\2" * 16, (edited,))], [],
                            version="b")),
             ("delete its file", lambda: apply(conn, [], [path], version="c"))]
    spent: dict[str, list[tuple[float, float]]] = {label: [] for label, _ in steps}
    for _ in range(runs):
        for label, step in steps:
            spent[label].append(median_ms(step, 1))
    return [(label, f"{statistics.median(t[0] for t in found):.2f}",
             f"{statistics.median(t[1] for t in found):.2f}") for label, found in spent.items()]


def main(count: int, runs: int) -> None:
    load = os.getloadavg()[0]
    scratch = tempfile.TemporaryDirectory(prefix="feedsvc-store-")
    began = time.perf_counter()
    dataset = load_dataset(write_archive(count, Path(scratch.name) / "archive.yaml",
                                         lifecycle=True))
    loaded = time.perf_counter() - began
    path = Path(scratch.name) / "store.sqlite3"
    conn = connect(path, write=True)
    began = time.perf_counter()
    rebuild(conn, dataset, files_of(dataset))
    built = time.perf_counter() - began
    zone = dataset.site.zone
    now = datetime(2024, 6, 1, 3, tzinfo=zone)  # the last four months are scheduled
    reader = connect(path, write=False)
    reader.execute("BEGIN")
    handle = Meta(dataset.version, dataset.site, dataset.topics, dataset.source)
    new = store_view_at(reader, handle, now)
    cursor = Cursor(datetime(2010, 1, 1, tzinfo=zone), "pr-2010-00001")
    rows = [("view at a moment (upto, scheduled, expired)",
             *(f"{v:.3f}" for v in median_ms(lambda: store_view_at(reader, handle, now),
                                             runs)))]
    commonest = frozenset(term for (term,) in reader.execute(
        "SELECT term FROM release_words_docs WHERE term NOT LIKE '§%' ORDER BY doc DESC "
        "LIMIT ?", (MAX_WORDS,)))
    some_id = dataset.releases[len(dataset.releases) // 2].id
    for label, call in shapes(cursor, some_id, commonest):
        wall, cpu = median_ms(lambda call=call: call(new), runs)
        rows.append((label, f"{wall:.3f}", f"{cpu:.3f}"))
    cut = new.runs([5000] * -(-new.count() // 5000))
    rows.append(("sitemap: the visible releases cut into runs of 5,000 (each one's first key)",
                 *(f"{v:.3f}" for v in median_ms(lambda: new.runs([r.size for r in cut]), 5))))
    rows.append(("sitemap index: the last change of each run of 5,000",
                 *(f"{v:.3f}" for v in median_ms(lambda: [new.lastmod(r) for r in cut], 5))))
    rows.append(("sitemap part: the last run of 5,000, an index range from its first key",
                 *(f"{v:.3f}" for v in median_ms(lambda: new.listed(cut[-1]), 5))))
    rows.append(("media files of the visible releases",
                 *(f"{v:.3f}" for v in median_ms(new.media_files, 5))))
    reader.execute("ROLLBACK")
    written = writes(conn, dataset, runs)
    size = path.stat().st_size + Path(f"{path}-wal").stat().st_size
    text = "\n\n".join([
        f"## The store: {count:,} synthetic releases with lifecycle fields (SQLite "
        f"{sqlite3.sqlite_version}; load average {load:.1f} at the start, "
        f"{os.getloadavg()[0]:.1f} at the end, on {os.cpu_count()} CPUs)",
        table(("step", "s"), [("load the YAML (load_dataset)", f"{loaded:.2f}"),
                              ("rebuild the store (bulkload.rebuild)", f"{built:.2f}"),
                              ("database and WAL size, MB", f"{size / 1e6:.0f}")]),
        f"Each call at {now.isoformat()} (limit 20 unless said), median of {runs} runs: "
        "the store's view (ms, CPU ms)",
        table(("shape", "store ms", "store CPU ms"), rows),
        f"The writer (write.apply), one transaction each, median of {runs}:",
        table(("write", "median ms", "CPU ms"), written),
    ])
    publish(f"store-queries-{count}", text)


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--releases", type=int, default=100_000)
    parser.add_argument("--runs", type=int, default=21)
    options = parser.parse_args()
    main(options.releases, options.runs)
