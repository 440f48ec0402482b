"""Loopback servers for the benchmarks: the one copy is tests/servers.py, shared with the tests."""
from __future__ import annotations

import sys
from pathlib import Path

_ROOT = str(Path(__file__).resolve().parent.parent)
if _ROOT not in sys.path:  # `python bench/x.py` puts only bench/ on the path
    sys.path.insert(0, _ROOT)

from tests.servers import (  # noqa: E402
    ROOT,
    STATIC_NGINX,
    Server,
    executable,
    free_port,
    gunicorn_workers,
    render_nginx,
    start_gunicorn,
    start_nginx,
    start_redis,
)

__all__ = ["ROOT", "STATIC_NGINX", "Server", "executable", "free_port", "gunicorn_workers",
           "render_nginx",
           "start_gunicorn", "start_nginx", "start_redis"]
