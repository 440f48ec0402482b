"""WSGI entry point: `gunicorn wsgi:app`. Refuses to start on an invalid dataset."""
import sys

from feedsvc import create_app
from feedsvc.config import ConfigError
from feedsvc.dataset import DatasetError

try:
    app = create_app()
except (DatasetError, ConfigError) as error:
    print(f"feedsvc: not starting: {error}", file=sys.stderr)
    # 4 is gunicorn's "application failed to load": the arbiter stops instead of respawning.
    sys.exit(4)
