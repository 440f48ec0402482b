"""gunicorn settings of the memory floor (bench/floor_hello.py): the shipped ones
(deploy/gunicorn.conf.py: gevent workers, preload, the same patches and logger), without the
hooks that run feedsvc's watcher, schedule and metrics, which a minimal app has not; with the
full collection before the fork that feedsvc's master makes (when_ready)."""
import importlib.util
from pathlib import Path

_spec = importlib.util.find_spec("feedsvc")
assert _spec is not None and _spec.origin is not None
_settings_file = Path(_spec.origin).parent / "serving" / "gunicorn_conf.py"
exec(compile(_settings_file.read_bytes(), str(_settings_file), "exec"))
del when_ready, post_fork, on_reload, child_exit  # type: ignore[name-defined]  # noqa: F821


def when_ready(server: object) -> None:
    """Collect every generation before the fork, as feedsvc's master does (serving/prefork.py):
    without it a worker's first full collection copies the master's heap, a cost of the app's
    own start, not of a worker."""
    import gc

    gc.collect()
