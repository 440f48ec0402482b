"""Prometheus metrics: one set of counters per process, summed across gunicorn workers.

prometheus_client chooses its storage when first imported: with PROMETHEUS_MULTIPROC_DIR set
(deploy/gunicorn.conf.py sets it before the app loads) every process writes its values to
files there and a scrape reads them all (the app's config says so, read by config.py);
without it (tests, `flask run`) values live in memory.
The dataset gauges describe the process that answers the scrape, read from its `Live` state.
"""
from __future__ import annotations

import os
from collections.abc import Iterator
from datetime import datetime
from functools import lru_cache

from prometheus_client import (
    CONTENT_TYPE_LATEST,
    CollectorRegistry,
    Counter,
    Histogram,
    disable_created_metrics,
    generate_latest,
    multiprocess,
)
from prometheus_client.core import GaugeMetricFamily, InfoMetricFamily
from prometheus_client.mmap_dict import MmapedDict
from prometheus_client.registry import Collector

from ..state import Served

# The *_created series double the output and multi-process mode has none: the same text either way.
disable_created_metrics()  # type: ignore[no-untyped-call]
LOCAL = CollectorRegistry()
SECONDS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)

REQUESTS = Counter("feedsvc_http_requests", "HTTP requests answered, by URL rule, method and status.",
                   ["route", "method", "status"], registry=LOCAL)
DURATION = Histogram("feedsvc_http_request_duration_seconds",
                     "Time to answer a request, by URL rule.", ["route"], buckets=SECONDS,
                     registry=LOCAL)
NOT_MODIFIED = Counter("feedsvc_http_not_modified", "304 Not Modified responses sent.",
                       registry=LOCAL)
CACHE = Counter("feedsvc_feed_cache_events", "Feed cache lookups: hit, miss, or backend error.",
                ["event"], registry=LOCAL)
RENDER = Histogram("feedsvc_feed_render_duration_seconds",
                   "Time to build, render and compress a feed on a cache miss.", buckets=SECONDS,
                   registry=LOCAL)
RELOADS = Counter("feedsvc_dataset_reloads",
                  "Dataset reloads: reloaded, rejected as invalid, held (mass removal), "
                  "failed (an unexpected error, or a write the state file could not take).",
                  ["result"], registry=LOCAL)


@lru_cache(maxsize=1024)  # every request asks: look each series up once, not per request
def _request_series(route: str, method: str, status: int) -> tuple[Counter, Histogram]:
    return (REQUESTS.labels(route=route, method=method, status=str(status)),
            DURATION.labels(route=route))


@lru_cache(maxsize=16)
def _cache_series(event: str) -> Counter:
    return CACHE.labels(event=event)


# What a dead process counted is folded into these files (one per kind), so that the totals stay
# and a scrape reads a bounded number of files however many workers have died.
ARCHIVED_KINDS = ("counter", "histogram", "summary")
ARCHIVE = "archive"


def retire_process(pid: int, directory: str | None = None) -> None:
    """Account for a dead process's metric files: drop its live gauges (prometheus_client's
    mark_process_dead), add its counters and histograms into the archive files, delete its own.

    Call it from the one process that reaps workers (gunicorn's master, child_exit): the archive
    files have that one writer.
    """
    path = directory or os.environ.get("PROMETHEUS_MULTIPROC_DIR")
    if not path:
        return
    multiprocess.mark_process_dead(pid, path)  # type: ignore[no-untyped-call]
    for kind in ARCHIVED_KINDS:
        dead = os.path.join(path, f"{kind}_{pid}.db")
        if not os.path.exists(dead):
            continue
        archive = MmapedDict(os.path.join(path, f"{kind}_{ARCHIVE}.db"))
        try:
            for key, value, timestamp, _ in MmapedDict.read_all_values_from_file(dead):
                total, _ = archive.read_value(key)
                archive.write_value(key, total + value, timestamp)
        finally:
            archive.close()
        os.remove(dead)


def observe_request(route: str, method: str, status: int, seconds: float) -> None:
    count, duration = _request_series(route, method, status)
    count.inc()
    duration.observe(seconds)
    if status == 304:
        NOT_MODIFIED.inc()


def cache_event(event: str) -> None:
    _cache_series(event).inc()


class DatasetCollector(Collector):
    """The dataset this process serves: version, size, load time, and a rejected reload."""

    def __init__(self, served: Served, at: datetime) -> None:
        self.served, self.at = served, at

    def collect(self) -> Iterator[GaugeMetricFamily | InfoMetricFamily]:
        with self.served.reader.read() as snapshot:
            status = self.served.status_of(snapshot)
            # What /readyz says: the store's kept counts, less the scheduled releases.
            releases = snapshot.view_at(self.at).count()
        yield InfoMetricFamily("feedsvc_dataset", "The dataset served (content hash version).",
                               value={"version": snapshot.meta.version})
        yield GaugeMetricFamily("feedsvc_dataset_releases", "Releases in the dataset served.",
                                value=releases)
        yield GaugeMetricFamily("feedsvc_dataset_loaded_timestamp_seconds",
                                "When the dataset served was loaded (Unix time).",
                                value=0 if status.loaded_at is None
                                else status.loaded_at.timestamp())
        yield GaugeMetricFamily("feedsvc_dataset_reload_rejected",
                                "1 while the newest data on disk was rejected as invalid.",
                                value=0 if status.last_error is None else 1)


def exposition(live: Served, multiprocess_dir: str | None, at: datetime) -> tuple[bytes, str]:
    """Return the metrics text of every process, and its content type (the dataset as
    readers see it at `at`)."""
    registry = CollectorRegistry()
    if multiprocess_dir:
        multiprocess.MultiProcessCollector(registry, multiprocess_dir)  # type: ignore[no-untyped-call]
    else:
        registry.register(LOCAL)
    registry.register(DatasetCollector(live, at))
    return generate_latest(registry), CONTENT_TYPE_LATEST
