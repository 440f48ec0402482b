"""Target 4: a cache-miss render of a 20-item filtered feed at 100,000 releases vs 1,000.

Each feed is requested through the app (test client) with no feed cache and no fast path,
so every timed request selects, builds, renders and compresses. The two
archives are measured in alternation, so a busy machine slows both alike.
Run: python bench/render_scale.py [RUNS]
"""
from __future__ import annotations

import statistics
import sys
import time

from archives import archive, publish, table, workdir
from flask import Flask
from flask.testing import FlaskClient

from feedsvc import create_app
from feedsvc.clock import view_of
from feedsvc.feeds.query import parse_query
from feedsvc.feeds.urls import Scope
from feedsvc.state import feed_cache, live

SMALL, LARGE = 1_000, 100_000
TARGET = 1.5
FEEDS = (  # (label, URL, scope of the URL, its query parameters): 20 items even at 1,000
    ("country + topic", "/feeds/countries/th.rss?topic=social-security",
     Scope("countries", "th"), {"topic": ["social-security"]}),
    ("topic + q", "/feeds/topics/labour-migration.atom?q=migrant",
     Scope("topics", "labour-migration"), {"q": ["migrant"]}),
    ("two topics + since", "/feeds/all.json?topic=gender-equality,social-dialogue&since=2015-06-01",
     Scope(), {"topic": ["gender-equality,social-dialogue"], "since": ["2015-06-01"]}),
    ("rare countries + topics", "/feeds/all.rss?country=mn,tl&topic=social-security,working-conditions",
     Scope(), {"country": ["mn,tl"], "topic": ["social-security,working-conditions"]}),
)


def miss_ns(app: Flask, client: FlaskClient, url: str) -> int:
    feeds = feed_cache(app)
    misses = feeds.misses
    start = time.perf_counter_ns()
    response = client.get(url)
    elapsed = time.perf_counter_ns() - start
    assert response.status_code == 200, (url, response.status_code)
    assert feeds.misses == misses + 1, "not a cache miss: the feed was not rendered"
    return elapsed


def select_ns(app: Flask, scope: Scope, args: dict[str, list[str]]) -> int:
    with live(app).reader.read() as snapshot:
        view = view_of(app, snapshot)
        query = parse_query(args, view.index.topics)
        start = time.perf_counter_ns()
        page = view.select(query.filters(scope), query.limit)
        elapsed = time.perf_counter_ns() - start
    assert len(page.releases) == 20
    return elapsed


def main(runs: int = 300) -> None:
    states = workdir() / "state"
    # No feed cache and no fast path in front of it: every request must render.
    apps = {n: create_app({"FEEDSVC_DATA": str(archive(n)),
                           "FEEDSVC_SNAPSHOT_DIR": str(states / str(n)),
                           "FEEDSVC_BASE_URL": "https://feeds.example.org/",
                           "FEEDSVC_CACHE_ENTRIES": 0, "FEEDSVC_FAST_PATH": False,
                           "FEEDSVC_LOG_LEVEL": "WARNING"})
            for n in (SMALL, LARGE)}
    clients = {n: app.test_client() for n, app in apps.items()}
    rows = []
    for label, url, scope, args in FEEDS:
        full: dict[int, list[int]] = {SMALL: [], LARGE: []}
        select: dict[int, list[int]] = {SMALL: [], LARGE: []}
        for _ in range(runs):
            for n in (SMALL, LARGE):
                full[n].append(miss_ns(apps[n], clients[n], url))
                select[n].append(select_ns(apps[n], scope, args))
        f = {n: statistics.median(v) / 1e6 for n, v in full.items()}
        s = {n: statistics.median(v) / 1e3 for n, v in select.items()}
        ratio = f[LARGE] / f[SMALL]
        rows.append((label, f"{f[SMALL]:.2f}", f"{f[LARGE]:.2f}", f"{ratio:.2f}×",
                     "met" if ratio <= TARGET else "MISSED",
                     f"{s[SMALL]:.0f}", f"{s[LARGE]:.0f}", f"{s[LARGE] / s[SMALL]:.2f}×"))
    text = (f"## Cache-miss render of a 20-item filtered feed, {LARGE:,} vs {SMALL:,} releases "
            f"(median of {runs}; target 4: ≤ {TARGET}×)\n\n"
            + table(("feed", "render 1k ms", "render 100k ms", "ratio", "target 4",
                     "select 1k µs", "select 100k µs", "select ratio"), rows))
    publish("render_scale", text)


if __name__ == "__main__":
    main(int(sys.argv[1]) if len(sys.argv) > 1 else 300)
