"""The memory floor: a minimal Flask app, served as feedsvc is (bench/floor_gunicorn.conf.py).

What a gevent worker of this app costs beside the master is what no change of feedsvc can go
below: bench/startup.py prints it beside feedsvc's own figures.
"""
from __future__ import annotations

import os

from flask import Flask, Response, jsonify

app = Flask(__name__)


@app.get("/readyz")
def readyz() -> Response:
    """What bench/startup.py asks of feedsvc's /readyz: the start check, and which worker."""
    return jsonify(dataset={"start_check": "done"}, service={"pid": os.getpid()})


@app.get("/", defaults={"path": ""})
@app.get("/<path:path>")
def hello(path: str) -> str:
    return "hello"
