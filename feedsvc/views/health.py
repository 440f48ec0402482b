"""/healthz (the process answers) and /readyz (what it serves, and whether it can): never cached."""
from __future__ import annotations

import os
import time
from importlib.metadata import version
from ipaddress import ip_address
from typing import Any

from flask import Blueprint, Response, jsonify, request

from ..clock import current_view
from ..feeds.catalogue import catalogue
from ..state import Served, current_snapshot, feed_cache, live

bp = Blueprint("health", __name__)
STARTED = time.monotonic()
VERSION = version("feedsvc")  # read from the installed package's metadata once, not per poll


def _no_store(body: dict[str, Any], status: int = 200) -> Response:
    response = jsonify(body)
    response.status_code = status
    response.headers["Cache-Control"] = "no-store"
    return response


@bp.get("/healthz")
def healthz() -> Response:
    return _no_store({"status": "ok"})


def _dataset(store: Served) -> dict[str, Any]:
    view, index = current_view(), current_view().index
    status = store.status_of(current_snapshot())  # the same transaction as the view
    loaded_at, error, rejected_at = status.loaded_at, status.last_error, status.rejected_at
    scheduled, served = view.next_publication, view.count()
    # What readers are served now: no drafts, releases not yet published or withdrawn ones,
    # and only the countries with a feed in the catalogue (/feeds/, OPML).
    return {
        "version": index.version, "releases": served, "visible": served,
        "next_scheduled": None if scheduled is None else scheduled.isoformat(),
        "countries": len(catalogue(view).countries), "topics": len(index.topics),
        "source": index.source,
        "loaded_at": None if loaded_at is None else loaded_at.isoformat(),
        "last_reload_error": error,
        "rejected_at": None if rejected_at is None else rejected_at.isoformat(),
        # "pending": restarted from the snapshot, not yet compared with the files on disk.
        "start_check": "pending" if status.start_pending else "done",
        # "persistent", or why a restart will read every file again.
        "state": store.state,
    }


def _service() -> dict[str, Any]:
    return {"version": VERSION, "uptime_seconds": round(time.monotonic() - STARTED, 3),
            "pid": os.getpid()}


# What /readyz tells a client that is not on this host: enough for a probe or a load balancer.
# Paths, pids, the cache backend and the rejected data's problem report are for operators (on
# the host, e.g. `curl localhost:8000/readyz` or kubectl port-forward) and the logs.
PUBLIC: dict[str, set[str] | None] = {
    "status": None,
    "dataset": {"version", "releases", "loaded_at", "rejected_at", "start_check"},
    "cache": {"reachable"}}


def _for_public(body: dict[str, Any]) -> dict[str, Any]:
    return {key: body[key] if fields is None or body[key] is None
            else {k: v for k, v in body[key].items() if k in fields}
            for key, fields in PUBLIC.items()}


def _from_this_host() -> bool:
    """Whether the client is on loopback (behind a trusted proxy: the client the proxy names)."""
    try:
        return ip_address(request.remote_addr or "").is_loopback
    except ValueError:
        return False


def _activitypub() -> dict[str, Any]:
    """Say what this instance does on the fediverse, and why not when it cannot (not a failure
    of readiness: feeds are served either way)."""
    from .activitypub import federation_of

    found = federation_of()
    return {"mode": found.mode, "federating": found.owner, "off_because": found.reason}


@bp.get("/readyz")
def readyz() -> Response:
    """ok, or degraded: still serving, but the cache is down or new data was rejected.

    (An app without a valid dataset never starts: create_app refuses it.)
    """
    cache = feed_cache()
    reachable = cache.reachable()
    dataset = _dataset(live())
    healthy = reachable and dataset["last_reload_error"] is None
    body = {"status": "ok" if healthy else "degraded", "dataset": dataset,
            "cache": {"backend": cache.backend, "reachable": reachable}, "service": _service(),
            "activitypub": _activitypub()}
    return _no_store(body if _from_this_host() else _for_public(body))
