"""The memory floor: a minimal Flask app, served as feedsvc is (bench/floor_gunicorn.conf.py).

What a gevent worker of this app costs beside the master is what no change of feedsvc can go
below: bench/startup.py prints it beside feedsvc's own figures.
"""
from __future__ import annotations

from flask import Flask

app = Flask(__name__)


@app.get("/", defaults={"path": ""})
@app.get("/<path:path>")
def hello(path: str) -> str:
    return "hello"
