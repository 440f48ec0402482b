"""What gunicorn's master builds before it forks the workers, so that they share it.

A worker shares the master's memory until it writes to a page of it. What a worker builds on
its first requests (a codec looked up by name, a module imported on first use, a template
compiled) lands in the free space of pages the master left half full, and each such page
becomes the worker's own copy: a few hundred small objects cost megabytes in every worker.
Built once in the master, the same things are shared by all (bench/startup.py measures the
per-worker cost beside a minimal Flask app's, docs/performance.md).
"""
from __future__ import annotations

import codecs
import gc
import importlib

from flask import Flask

from ..http.offload import gevent_patched

# Looked up or imported by a worker's first requests, never by the master's start: the "idna"
# codec (werkzeug, on a request's host), feedgen's media extension (each feed generator loads
# it by name), the "unicode_escape" codec (Jinja's lexer).
CODECS = ("idna", "unicode_escape")
MODULES = ("feedgen.ext.media",)
# The render thread's pool (http/offload.py), under gevent only.
GEVENT_MODULES = ("gevent.threadpool",)


def prepare(app: Flask) -> None:
    """Import, look up and compile in this process what each worker would on first use, then
    collect the young generations: their survivors move to the oldest here, where a worker's
    young collections never touch them (a full collection costs more and saved nothing)."""
    for name in CODECS:
        codecs.lookup(name)
    for module in MODULES + (GEVENT_MODULES if gevent_patched() else ()):
        importlib.import_module(module)
    for template in app.jinja_env.list_templates():
        app.jinja_env.get_template(template)
    gc.collect(1)
