"""Production gunicorn settings for feedsvc: `gunicorn -c deploy/gunicorn.conf.py wsgi:app`.

The settings ship inside the package (feedsvc/serving/gunicorn_conf.py, what `feedsvc serve`
runs); this file is for those who call gunicorn themselves. It runs them as gunicorn runs a
config file (as module "__config__"), without importing feedsvc first: they patch the
standard library for gevent before anything else is imported.
"""
import importlib.util
import sys
from pathlib import Path

_spec = importlib.util.find_spec("feedsvc")  # a top-level name: found, not imported
if _spec is None or _spec.origin is None:
    sys.exit("feedsvc: not starting: the feedsvc package is not installed here (pip install .)")
_settings_file = Path(_spec.origin).parent / "serving" / "gunicorn_conf.py"
exec(compile(_settings_file.read_bytes(), str(_settings_file), "exec"))
