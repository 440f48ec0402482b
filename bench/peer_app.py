"""Baseline "peer": the naive Flask + feedgen app, rendering the feed on every request.

It loads the same dataset with feedsvc's loader (so the data is identical), then does
what a straightforward feed app does per request: scan the releases, build a feedgen
FeedGenerator, write RSS. No cache, no index, no validators.
"""
from __future__ import annotations

import os

from feedgen.feed import FeedGenerator
from flask import Flask, Response, abort, request

from feedsvc.config import BUNDLED_DATA
from feedsvc.dataset import load_dataset
from feedsvc.dataset.records import Release

DATA = load_dataset(os.environ.get("FEEDSVC_DATA") or BUNDLED_DATA)
BASE = os.environ.get("FEEDSVC_BASE_URL", "http://127.0.0.1/").rstrip("/") + "/"
app = Flask(__name__)


def _rss(title: str, releases: list[Release]) -> bytes:
    fg = FeedGenerator()
    fg.id(f"{BASE}{request.full_path.lstrip('/')}")
    fg.title(title)
    fg.subtitle(DATA.site.subtitle)
    fg.language(DATA.site.language)
    fg.link(href=BASE, rel="alternate")
    fg.updated(max((r.modified for r in releases), default=None))
    for release in releases:
        fe = fg.add_entry(order="append")
        fe.id(f"{BASE}releases/{release.id}")
        fe.title(release.title)
        fe.link(href=release.url or f"{BASE}releases/{release.id}")
        fe.published(release.published)
        fe.updated(release.modified)
        fe.summary(release.summary)
        if release.body:
            fe.content(release.body, type="text")
        fe.category([{"term": t, "label": DATA.topics[t].label} for t in release.topics])
    return bytes(fg.rss_str(pretty=True))


def _serve(title: str, countries: set[str], topics: set[str]) -> Response:
    countries |= {c.upper() for c in request.args.get("country", "").split(",") if c}
    picked = [r for r in DATA.releases
              if (not countries or countries & set(r.countries))
              and (not topics or topics & set(r.topics))][:int(request.args.get("limit", 20))]
    return Response(_rss(title, picked), content_type="application/rss+xml; charset=utf-8")


@app.get("/feeds/all.rss")
def everything() -> Response:
    return _serve(DATA.site.title, set(), set())


@app.get("/feeds/countries/<code>.rss")
def country(code: str) -> Response:
    return _serve(f"{DATA.site.title}: {code.upper()}", {code.upper()}, set())


@app.get("/feeds/topics/<slug>.rss")
def topic(slug: str) -> Response:
    if slug not in DATA.topics:
        abort(404)
    return _serve(f"{DATA.site.title}: {DATA.topics[slug].label}", set(), {slug})
