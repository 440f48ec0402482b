"""Production gunicorn settings for feedsvc: `gunicorn -c deploy/gunicorn.conf.py wsgi:app`.

Its settings (FEEDSVC_BIND, FEEDSVC_WORKERS, FEEDSVC_LOG_LEVEL, FEEDSVC_LOG_FORMAT) are read,
with every other FEEDSVC_* variable, by feedsvc/config.py: a bad value stops the start here
with one line on stderr and exit status 2. The master watches the dataset and commits each
change to the store (the state directory's SQLite file) once; every worker reads it at its
next request. `kill -HUP <master pid>` reloads the dataset now (invalid data is refused and
the old data keeps serving) and replaces the workers gracefully; code changes need a restart.
"""
# gevent workers (see worker_class): patch the standard library before anything else is
# imported, so that the app preload_app loads in the master, and every worker forked from it,
# use gevent's sockets, locks and sleeps throughout (gunicorn's own patch, in each worker after
# the fork, would come after the app's locks were made). Only when gunicorn reads this file
# (as module "__config__"), not when a test reads it.
if __name__ == "__config__":
    from gevent import monkey

    monkey.patch_all()

import atexit
import os
import shutil
import sys
import tempfile
from pathlib import Path
from typing import Any

# gunicorn's binary upgrade (USR2) execs a new master beside the old one, naming the old in
# GUNICORN_PID: a second instance, which the state directory's lock refuses while the old one
# lives, and which, given PROMETHEUS_MULTIPROC_DIR, would first empty the old one's metric
# files. Said here, before anything else, for what it is (docs/operations.md#signals).
if __name__ == "__config__" and os.environ.get("GUNICORN_PID"):
    print(f"feedsvc: not starting: gunicorn's binary upgrade (USR2) is not supported: master "
          f"{os.environ['GUNICORN_PID']} goes on serving; restart the service to run new code",
          file=sys.stderr)
    sys.exit(2)


def _remove_metrics_dir(owner: int | None = None) -> None:
    """Remove the metrics directory if this file created it (only in process `owner`, when
    given: a worker forked from it that runs the atexit handlers must leave it)."""
    own = os.environ.get("_FEEDSVC_METRICS_TMPDIR")
    if own and own == os.environ.get("PROMETHEUS_MULTIPROC_DIR") \
            and owner in (None, os.getpid()):
        shutil.rmtree(own, ignore_errors=True)


# prometheus_client picks its multi-process storage when first imported, and preload_app
# imports the app before any server hook runs: so the directory is set up here, when this file
# is first read (gunicorn reads it again on HUP: the directory and its values stay).
if not os.environ.get("_FEEDSVC_METRICS_DIR"):
    if not os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
        os.environ["PROMETHEUS_MULTIPROC_DIR"] = tempfile.mkdtemp(prefix="feedsvc-metrics-")
        os.environ["_FEEDSVC_METRICS_TMPDIR"] = os.environ["PROMETHEUS_MULTIPROC_DIR"]
        # gunicorn calls on_exit only once it serves: a start that fails (a bad setting,
        # invalid data, the port in use) exits without it, and must not leave the directory.
        atexit.register(_remove_metrics_dir, os.getpid())
    # Files of an earlier run in a given directory would be summed in: start from zero.
    for stale in Path(os.environ["PROMETHEUS_MULTIPROC_DIR"]).glob("*.db"):
        stale.unlink()
    os.environ["_FEEDSVC_METRICS_DIR"] = os.environ["PROMETHEUS_MULTIPROC_DIR"]

from gunicorn.http import wsgi as _gunicorn_wsgi  # noqa: E402 (after the gevent patch)

from feedsvc import config as _config  # noqa: E402
from feedsvc.operations.logs import gunicorn_logger  # noqa: E402

# The master runs the dataset watcher (when_ready): a restart serves the snapshot at once and
# the watcher's first look finds the files changed while the service was down
# (docs/operations.md#state). Only
# when gunicorn reads this file: a test that reads it must not change its own environment.
if __name__ == "__config__":
    os.environ.setdefault("FEEDSVC_START_CHECK", "background")
try:
    _settings = _config.from_env()
except _config.ConfigError as _error:
    print(f"feedsvc: not starting: {_error}", file=sys.stderr)
    sys.exit(2)

# Responses say "Server: feedsvc": which server (and version) runs the service is nobody's business.
_gunicorn_wsgi.SERVER = "feedsvc"

bind = _settings["FEEDSVC_BIND"]
# gevent workers, one per core. A request is short and CPU-bound (a cached feed is sent from
# memory), so a worker per core keeps the cores busy; gevent lets each worker hold many
# connections at once, so a client that sends its request slowly (or never finishes it) costs a
# greenlet, not a whole worker: with sync workers two such "slowloris" connections made the
# service unavailable. bench/slowclients.py measures both, and cached-hit throughput.
# The dataset watcher runs in the master (when_ready), not in the workers: they only serve.
worker_class = "gevent"
# Connections one worker holds at once (slow, kept alive or being answered); more wait in the
# listen backlog. Keep the open-files limit (`ulimit -n`) above this.
worker_connections = 1000
workers = _settings["FEEDSVC_WORKERS"]
# Open (or build) the store once in the master, which writes it; workers only read it.
preload_app = True
timeout = 30
graceful_timeout = 30
keepalive = 5
max_requests = 0
# No peer is a trusted proxy to gunicorn itself: by default it believes X-Forwarded-Proto/-Ssl/
# -Protocol (the scheme of every link) and a SCRIPT_NAME header from 127.0.0.1, whatever the app
# is told. FEEDSVC_TRUST_PROXY (feedsvc/http/proxy.py) is the one switch for proxy headers; a
# SCRIPT_NAME header is then dropped (header_map "drop") instead of failing the request.
forwarded_allow_ips = ""
# gunicorn >= 25 opens a control socket in $XDG_RUNTIME_DIR or $HOME by default: a sandboxed
# service may not write there, and two instances on one box would share its path.
control_socket_disable = True
# The app writes one access line per request itself (with the cache outcome and request id,
# as FEEDSVC_LOG_FORMAT says); gunicorn's own access log would only repeat it, less completely.
accesslog = None
errorlog = "-"
loglevel = _settings["FEEDSVC_LOG_LEVEL"].lower()
# gunicorn's own lines in feedsvc's format (FEEDSVC_LOG_FORMAT: text or JSON).
logger_class = gunicorn_logger(_settings)


def when_ready(server: Any) -> None:
    """Start the instance's one dataset watcher, in the master: the store's one writer, it
    commits each change once; every worker reads it at its next request. Then prepare what
    the workers share."""
    from feedsvc.operations.reload import start_watching

    # Nothing here waits for the archive: the watch of every folder is set up in the
    # watcher's own thread, and the first look at the files (after it) waits for the
    # workers, which serve the committed store meanwhile (this hook runs before the
    # arbiter forks them).
    start_watching(server.app.wsgi(), None, lambda: len(server.WORKERS) >= server.num_workers)
    # The fediverse's deliverer: a process of its own (never a thread here), which starts it
    # again if it dies and ends with this master (feedsvc/activitypub/supervise.py).
    from feedsvc.activitypub.supervise import start_with_master

    pid = start_with_master(_settings)
    if pid is not None:
        server.log.info("fediverse deliverer started (pid %d)", pid)
    # Last before the arbiter forks the workers: what each would build on its first requests
    # is built here once, and shared (feedsvc/serving/prefork.py).
    from feedsvc.serving.prefork import prepare

    prepare(server.app.wsgi())


def post_fork(server: Any, worker: Any) -> None:
    """Start the worker's timer for the next scheduled publication (it tells the WebSub hub,
    once per box; timers do not survive the fork)."""
    from feedsvc.operations.websub import start_schedule

    start_schedule(worker.app.wsgi())


def on_reload(server: Any) -> None:
    """On HUP, look at every file of the dataset in the master, and commit what changed."""
    from feedsvc.operations.reload import reload_now

    # An exception out of this hook ends the master (gunicorn's main loop): the service would
    # be down. reload_now reports its own failures; this is the last line of defence.
    try:
        result = reload_now(server.app.wsgi())
    except Exception:
        server.log.exception("HUP: dataset reload failed; still serving the last good data")
        return
    if result == "busy":  # the watcher's check: it reads every file again when done
        server.log.info("HUP: a dataset check is running; it reloads again once done")
    else:
        server.log.info("HUP: dataset %s", result)


def child_exit(server: Any, worker: Any) -> None:
    """Fold a dead worker's metric files into the archive: its counts stay in the sums, and a
    scrape reads the same number of files after 100 worker deaths as after none."""
    from feedsvc.operations.metrics import retire_process

    retire_process(worker.pid)


def on_exit(server: Any) -> None:
    """Stop the fediverse's deliverer; remove the metrics directory if this file created it
    (also when gunicorn daemonized, in another process than the one that read this file)."""
    from feedsvc.activitypub.supervise import stop_with_master

    stop_with_master()
    _remove_metrics_dir()
