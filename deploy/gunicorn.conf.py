"""Production gunicorn settings for feedsvc: `gunicorn -c deploy/gunicorn.conf.py wsgi:app`.

Every setting is read from the environment (FEEDSVC_BIND, FEEDSVC_WORKERS, FEEDSVC_LOG_LEVEL,
PROMETHEUS_MULTIPROC_DIR); the app's own FEEDSVC_* settings are in
feedsvc/config.py. The master watches the dataset, loads each change once and re-forks the
workers one at a time, so they share the new data copy-on-write. `kill -HUP <master pid>`
reloads the dataset now (invalid data is refused and the old data keeps serving) and replaces
the workers gracefully; code changes need a restart.
"""
import gc
import multiprocessing
import os
import shutil
import signal
import tempfile
import time
from pathlib import Path

# prometheus_client picks its multi-process storage when first imported, and preload_app
# imports the app before any server hook runs: so the directory is set up here, when this file
# is first read (gunicorn reads it again on HUP: the directory and its values stay).
if not os.environ.get("_FEEDSVC_METRICS_DIR"):
    if not os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
        os.environ["PROMETHEUS_MULTIPROC_DIR"] = tempfile.mkdtemp(prefix="feedsvc-metrics-")
        os.environ["_FEEDSVC_METRICS_TMPDIR"] = os.environ["PROMETHEUS_MULTIPROC_DIR"]
    # Files of an earlier run in a given directory would be summed in: start from zero.
    for stale in Path(os.environ["PROMETHEUS_MULTIPROC_DIR"]).glob("*.db"):
        stale.unlink()
    os.environ["_FEEDSVC_METRICS_DIR"] = os.environ["PROMETHEUS_MULTIPROC_DIR"]

from gunicorn.http import wsgi as _gunicorn_wsgi

# Responses say "Server: feedsvc": which server (and version) runs the service is nobody's business.
_gunicorn_wsgi.SERVER = "feedsvc"

bind = os.environ.get("FEEDSVC_BIND", "127.0.0.1:8000")
# Sync workers, one per core: a request is short and CPU-bound (a cached feed is sent from
# memory), so a worker per core keeps the cores busy and more workers only cost memory.
# Measured on a 2-core box, wrk -c32 on loopback, cached /feeds/all.rss, 1,000 releases, two
# rounds of 5 s on a busy machine (req/s, p99):
#   sync 2 workers      1,195 / 1,595 req/s   p99 100 / 52 ms
#   sync 3 workers      1,576 / 1,324         p99 102 / 64
#   sync 4 workers      1,191 / 1,627         p99  85 / 100
#   gthread 2x2 threads 1,449 / 2,136         p99 166 / 230
#   gthread 2x4 threads 2,067 / 1,787         p99 136 / 162
# gthread wins some req/s only by keeping wrk's connections alive, and pins each connection
# to one worker: p99 is 1.5-4x worse (as measured before, gevent likewise). Sync workers close
# every connection; behind nginx that costs a loopback connect per request that nginx's
# micro-cache did not answer.
worker_class = "sync"
workers = int(os.environ.get("FEEDSVC_WORKERS", multiprocessing.cpu_count()))
# Load the dataset once in the master; workers share its memory copy-on-write.
preload_app = True
timeout = 30
graceful_timeout = 30
keepalive = 5
max_requests = 0
# gunicorn >= 25 opens a control socket in $XDG_RUNTIME_DIR or $HOME by default: a sandboxed
# service may not write there, and two instances on one box would share its path.
control_socket_disable = True
# The app writes one access line per request itself (with the cache outcome and request id,
# as FEEDSVC_LOG_FORMAT says); gunicorn's own access log would only repeat it, less completely.
accesslog = None
errorlog = "-"
loglevel = (os.environ.get("FEEDSVC_LOG_LEVEL") or "info").lower()


def pre_fork(server, worker):
    """Freeze what the master has loaded just before each fork (also after a HUP reload).

    Frozen objects are left out of the workers' garbage collections: a full collection in a
    long-running worker would otherwise write to every page holding the dataset and unshare
    it (bench/soak.py measured +32% PSS per worker in 5 minutes at flat RSS without this;
    bench/startup.py runs too briefly for one: 1.13x -> 1.12x there).
    """
    gc.freeze()


def when_ready(server):
    """Start the instance's one dataset watcher, in the master: it loads each change once."""
    from feedsvc.reload import start_watching

    start_watching(server.app.wsgi(), lambda result: refork_workers(server, result))


def refork_workers(server, result):
    """Replace the workers one at a time, so each new one forks with the master's new data.

    One at a time (SIGTERM: each finishes its request), not HUP's all-new-then-all-old: the
    process tree never holds more than one worker above its size.
    """
    server.log.info("dataset %s: re-forking %d workers", result, len(server.WORKERS))
    for pid in list(server.WORKERS):
        try:
            os.kill(pid, signal.SIGTERM)
        except ProcessLookupError:
            continue
        deadline = time.monotonic() + server.cfg.graceful_timeout + 5
        # The arbiter reaps the worker and forks its replacement; wait for both.
        while (pid in server.WORKERS or len(server.WORKERS) < server.num_workers) \
                and time.monotonic() < deadline:
            time.sleep(0.02)


def on_reload(server):
    """On HUP, load and validate the dataset in the master, so that new workers fork with it."""
    from feedsvc.reload import reload_now

    result = reload_now(server.app.wsgi())
    server.log.info("HUP: dataset %s", result)


def child_exit(server, worker):
    """Drop a dead worker's live gauges; its counters stay in the sums."""
    from prometheus_client import multiprocess

    multiprocess.mark_process_dead(worker.pid)


def on_exit(server):
    """Remove the metrics directory if this file created it."""
    own = os.environ.get("_FEEDSVC_METRICS_TMPDIR")
    if own and own == os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
        shutil.rmtree(own, ignore_errors=True)
