"""`feedsvc serve`: run gunicorn with the production settings shipped in the package."""
from __future__ import annotations

import errno
import os
import socket
import sys
from collections.abc import Mapping
from pathlib import Path
from typing import Any

# Read by gunicorn as a config file (module "__config__"), as deploy/gunicorn.conf.py reads it.
SETTINGS = Path(__file__).resolve().parent / "gunicorn_conf.py"
APP = "feedsvc:create_app()"


def _in_use(bind: str) -> bool:
    """Say whether a TCP address HOST:PORT is taken (gunicorn would retry it for 5 s, then
    fail in several lines); a unix socket is left to gunicorn."""
    if bind.startswith(("unix:", "fd://")):
        return False
    host, _, port = bind.rpartition(":")
    host = host.strip("[]") or "0.0.0.0"
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    with socket.socket(family, socket.SOCK_STREAM) as probe:
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)  # as gunicorn binds
        try:
            probe.bind((host, int(port)))
        except OSError as error:
            if error.errno == errno.EADDRINUSE:
                return True
            raise
    return False


def serve(settings: Mapping[str, Any]) -> int:
    """Replace this process with gunicorn; return 1 (one line on stderr) when it cannot start."""
    bind = settings["FEEDSVC_BIND"]
    try:
        if _in_use(bind):
            print(f"feedsvc: not starting: {bind} is in use (FEEDSVC_BIND)", file=sys.stderr)
            return 1
    except (OSError, ValueError) as error:
        print(f"feedsvc: not starting: cannot listen on {bind} (FEEDSVC_BIND): {error}",
              file=sys.stderr)
        return 1
    argv = [sys.executable, "-m", "gunicorn", "-c", str(SETTINGS), APP]
    sys.stdout.flush()
    sys.stderr.flush()
    os.execv(sys.executable, argv)
