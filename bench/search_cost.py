"""Issue 11, expensive requests: what one feed selection costs at 100,000 releases, worst shapes first.

Each query is parsed as a request would be and selected from the index (limit 100, the most a
request may ask). The baseline in the same run is the unfiltered page (`/feeds/all.rss?limit=100`),
so the ratio column says how many plain pages one worst-case request costs; the absolute column
is for the ≤ 20 ms budget per request.
Run: python bench/search_cost.py [RUNS]
"""
from __future__ import annotations

import statistics
import sys
import time

from archives import archive, publish, table

from feedsvc.dataset import load_dataset
from feedsvc.dataset.index import Index, build_index
from feedsvc.feeds.query import parse_query
from feedsvc.feeds.urls import Scope

SIZE = 100_000
BUDGET_MS = 20.0
WORST = ("a and at brings employers governments held in new of on opens organizations "
         "representatives the together workers talks")
QUERIES = (  # (label, scope, query parameters); the first is the baseline
    ("all, no filter (baseline)", Scope(), {}),
    ("18 common words, no match", Scope(), {"q": [WORST]}),
    ("two mid-frequency words", Scope(), {"q": ["brings talks"]}),
    ("one common word", Scope(), {"q": ["workers"]}),
    ("unknown word", Scope(), {"q": ["zzzz"]}),
    ("3 countries × 2 topics + word", Scope(),
     {"country": ["th,kh,vn"], "topic": ["social-security,working-conditions"], "q": ["brings"]}),
    ("country path + since + words", Scope("countries", "th"),
     {"since": ["2010-01-01"], "q": ["employers governments talks"]}),
)


def select_ms(index: Index, scope: Scope, args: dict[str, list[str]]) -> float:
    query = parse_query({**args, "limit": ["100"]}, index.dataset.topics)
    start = time.perf_counter_ns()
    index.select(query.filters(scope), query.limit)
    return (time.perf_counter_ns() - start) / 1e6


def main(runs: int = 30) -> None:
    index = build_index(load_dataset(archive(SIZE)))
    timings: dict[str, list[float]] = {label: [] for label, _, _ in QUERIES}
    for _ in range(runs):  # interleaved, so a busy moment slows every shape alike
        for label, scope, args in QUERIES:
            timings[label].append(select_ms(index, scope, args))
    base = statistics.median(timings[QUERIES[0][0]])
    rows = []
    for label, _, _ in QUERIES:
        median, worst = statistics.median(timings[label]), max(timings[label])
        rows.append((label, f"{median:.3f}", f"{worst:.3f}", f"{median / base:.1f}×",
                     "met" if worst <= BUDGET_MS else "MISSED"))
    publish("search_cost", f"## One feed selection at {SIZE:,} releases, limit=100 "
                           f"(median and max of {runs}; budget {BUDGET_MS:.0f} ms)\n\n"
            + table(("query", "median ms", "max ms", "vs baseline", "budget"), rows))


if __name__ == "__main__":
    main(int(sys.argv[1]) if len(sys.argv) > 1 else 30)
