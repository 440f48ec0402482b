"""What gunicorn's master does last before it forks the workers, so that they share the most.

A worker shares the master's memory until it writes to a page of it. What a worker builds on
its first requests (a codec looked up by name, a module imported on first use, a template
compiled) is written into pages it shares with the master (new objects in the free space the
master's heap left, and the references they take), and each such page becomes the worker's
own copy: a few hundred small objects cost megabytes in every worker. Built once in the
master, they are shared by all. And the C heap a cold start freed in the master is given
back to the kernel rather than kept in the master and every worker's share of it
(bench/startup.py measures both, beside a minimal Flask app's workers, docs/performance.md).
"""
from __future__ import annotations

import codecs
import ctypes
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
    """Import, look up and compile in this process what each worker would on first use; collect
    every generation; give the freed C heap back.

    The full collection is for later: CPython collects the oldest generation once the
    survivors moved into it since its last full collection number a quarter of what that
    collection left there. Left to each worker, a few thousand requests in, it writes to the
    header of every object the worker inherited, and the worker copies most of the master's
    heap. Made here, it leaves the master's objects counted as that generation's, and a
    worker's own survivors must reach a quarter of them first.
    """
    for name in CODECS:
        codecs.lookup(name)
    for module in MODULES + (GEVENT_MODULES if gevent_patched() else ()):
        importlib.import_module(module)
    for template in app.jinja_env.list_templates():
        app.jinja_env.get_template(template)
    gc.collect()
    trim_heap()


def trim_heap() -> None:
    """Return the free pages of the C heap to the kernel (glibc's malloc_trim): glibc keeps
    what a process frees for its next allocations, and a cold start frees the whole archive's
    worth of rows in the master. Without glibc (musl, macOS) there is nothing to do."""
    trim = getattr(ctypes.CDLL(None), "malloc_trim", None)
    if trim is not None:
        trim(0)
