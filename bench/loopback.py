"""Loopback servers for the benchmarks: the one copy is tests/servers.py, shared with the tests."""
from __future__ import annotations

import os
import sys
import tempfile
from collections.abc import Mapping
from pathlib import Path
from typing import Any

_ROOT = str(Path(__file__).resolve().parent.parent)
if _ROOT not in sys.path:  # `python bench/x.py` puts only bench/ on the path
    sys.path.insert(0, _ROOT)

from tests import servers  # noqa: E402
from tests.servers import (  # noqa: E402
    ROOT,
    STATIC_NGINX,
    Server,
    executable,
    free_port,
    gunicorn_workers,
    render_nginx,
    start_nginx,
    start_redis,
)

__all__ = ["ROOT", "STATIC_NGINX", "Server", "executable", "free_port", "gunicorn_workers",
           "render_nginx",
           "start_gunicorn", "start_nginx", "start_redis"]


def start_gunicorn(workdir: Path, app: str = "wsgi:app", workers: int = 2,
                   env: Mapping[str, str] | None = None, **options: Any) -> Server:
    """Start gunicorn as tests.servers does, feedsvc with a state directory of its own unless
    `env` or this process names one: the default (the user's cache) is one instance's only."""
    named = {**os.environ, **(env or {})}
    if "FEEDSVC_STATE_DIR" not in named and "FEEDSVC_SNAPSHOT_DIR" not in named:
        state = Path(tempfile.mkdtemp(prefix="state-", dir=workdir))
        env = {**(env or {}), "FEEDSVC_STATE_DIR": str(state)}
    return servers.start_gunicorn(workdir, app, workers, env, **options)
