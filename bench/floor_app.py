"""Baseline "floor": a Flask handler returning precomputed feed bytes from a dict.

The bytes are feedsvc's own answers to the benchmarked URLs, fetched once at import,
so the floor serves exactly what feedsvc serves with the least Flask can do per request.
"""
from __future__ import annotations

from flask import Flask, Response, abort, request

from bench.paths import FEEDS
from feedsvc import create_app


def _precompute() -> dict[str, tuple[bytes, str]]:
    client = create_app().test_client()
    answers = {path: client.get(path) for path in FEEDS}
    return {path: (r.data, r.content_type) for path, r in answers.items()}


BODIES = _precompute()
app = Flask(__name__)


@app.get("/feeds/<path:_feed>")
def feed(_feed: str) -> Response:
    found = BODIES.get(request.full_path.rstrip("?"))
    if found is None:
        abort(404)
    return Response(found[0], content_type=found[1])
