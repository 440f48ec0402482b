"""Logging set-up: every log line as JSON or key=value text, with the request id: feedsvc's
own (`init_app`, written by `LineWriter`) and gunicorn's (`gunicorn_logger`, used by
deploy/gunicorn.conf.py)."""
from __future__ import annotations

import json
import logging
import os
import re
import sys
import weakref
from collections.abc import Mapping
from datetime import UTC, datetime
from typing import IO, Any

from flask import Flask, g, has_request_context
from flask.logging import default_handler

ROOT = "feedsvc"


def _fields(record: logging.LogRecord) -> dict[str, Any]:
    fields: dict[str, Any] = dict(getattr(record, "fields", {}))
    request_id = getattr(record, "request_id", None)
    if request_id is not None:
        fields.setdefault("request_id", request_id)
    return fields


# The last second formatted, and its text: a busy worker logs many lines a second.
_second: tuple[int, str] = (0, "")


def _time(record: logging.LogRecord) -> str:
    global _second
    second, text = _second
    if int(record.created) != second:
        second = int(record.created)
        text = datetime.fromtimestamp(second, UTC).strftime("%Y-%m-%dT%H:%M:%S")
        _second = (second, text)  # one tuple: threads see a pair that belongs together
    return f"{text}.{int(record.msecs):03d}Z"


class JsonFormatter(logging.Formatter):
    """One JSON object per line: time, level, logger, message, the fields, and any error."""

    def format(self, record: logging.LogRecord) -> str:
        doc: dict[str, Any] = {"time": _time(record), "level": record.levelname,
                               "logger": record.name, "message": record.getMessage()}
        doc.update(_fields(record))
        if record.exc_info:
            doc["error"] = self.formatException(record.exc_info)
        return json.dumps(doc, default=str, ensure_ascii=False)


# Control characters (C0, DEL, C1) and Unicode line breaks: a newline in a request value would
# start a forged log line, an ANSI escape would act on the terminal of whoever reads the log.
_CONTROL = re.compile("[\x00-\x1f\x7f-\x9f\u2028\u2029]")
_NAMED = {"\n": "\\n", "\r": "\\r", "\t": "\\t"}


def _escape_one(match: re.Match[str]) -> str:
    char = match[0]
    return _NAMED.get(char) or (f"\\x{ord(char):02x}" if ord(char) < 0x100 else f"\\u{ord(char):04x}")


def escape(text: str) -> str:
    """Return `text` as one line that no terminal acts on: control characters as escapes."""
    return _CONTROL.sub(_escape_one, text)


def _value(value: Any) -> str:
    if isinstance(value, str):
        if not value:
            return '""'  # as json.dumps would quote it: an empty query, on most lines
        return json.dumps(value) if " " in value or '"' in value else value
    return str(value)


class TextFormatter(logging.Formatter):
    """`time LEVEL logger message key=value ...` on one line (escaped), then any traceback."""

    def format(self, record: logging.LogRecord) -> str:
        pairs = " ".join(f"{k}={_value(v)}" for k, v in _fields(record).items())
        line = f"{_time(record)} {record.levelname} {record.name} {record.getMessage()}"
        # One pass over the whole line: escaping maps each character on its own, so the
        # line escaped at once is its parts escaped one by one.
        line = escape(f"{line} {pairs}" if pairs else line)
        if record.exc_info:
            line = f"{line}\n{self.formatException(record.exc_info)}"
        return line


class RequestIdFilter(logging.Filter):
    """Stamp records logged while handling a request with that request's id."""

    def filter(self, record: logging.LogRecord) -> bool:
        if has_request_context() and "request_id" in g:
            record.request_id = g.request_id
        return True


class LineWriter(logging.StreamHandler[IO[str]]):
    """A StreamHandler that writes the lines gevent's greenlets log in one turn of its event
    loop with one write(): a busy worker answers many requests a turn, and a write() costs
    more than formatting a line. Lines logged outside a greenlet (the gunicorn master, threads,
    tests), at WARNING and above, or past `LIMIT` characters are written at once, after those
    waiting, so the order holds. Waiting lines are written before a fork (a child would write
    them again) and at exit (logging.shutdown flushes every handler)."""

    LIMIT = 64 * 1024

    def __init__(self, stream: IO[str]) -> None:
        super().__init__(stream)
        self._waiting: list[str] = []
        self._size = 0
        self._scheduled = False
        _WRITERS.add(self)

    def emit(self, record: logging.LogRecord) -> None:
        try:
            line = self.format(record) + self.terminator
        except RecursionError:
            raise
        except Exception:
            self.handleError(record)
            return
        self._waiting.append(line)
        self._size += len(line)
        if record.levelno >= logging.WARNING or self._size >= self.LIMIT or not self._later():
            self._write(record)

    def _later(self) -> bool:
        """Have gevent's loop write at the end of its turn; False outside a greenlet."""
        if self._scheduled:
            return True
        gevent = sys.modules.get("gevent")
        # The hub runs a greenlet, so it runs its callbacks as soon as that greenlet waits or
        # ends; the main greenlet or another thread may never hand it control.
        if gevent is None or not isinstance(gevent.getcurrent(), gevent.Greenlet):
            return False
        gevent.get_hub().loop.run_callback(self._write)
        self._scheduled = True
        return True

    def _write(self, record: logging.LogRecord | None = None) -> None:
        """Write the waiting lines; report a failure as StreamHandler.emit would."""
        with self.lock:  # type: ignore[union-attr]  # made by Handler.__init__
            self._scheduled = False
            if not self._waiting:
                return
            text = "".join(self._waiting)
            self._waiting.clear()
            self._size = 0
            try:
                self.stream.write(text)
                self.stream.flush()
            except RecursionError:
                raise
            except Exception:
                self.handleError(record or logging.makeLogRecord({"msg": text}))

    def flush(self) -> None:
        """Write the waiting lines, then flush the stream."""
        self._write()
        super().flush()


_WRITERS: weakref.WeakSet[LineWriter] = weakref.WeakSet()


def _write_waiting() -> None:
    for writer in list(_WRITERS):
        writer._write()


os.register_at_fork(before=_write_waiting)


def formatter(config: Mapping[str, Any]) -> logging.Formatter:
    """Return the formatter FEEDSVC_LOG_FORMAT names."""
    return JsonFormatter() if config["FEEDSVC_LOG_FORMAT"] == "json" else TextFormatter()


def gunicorn_logger(config: Mapping[str, Any]) -> type:
    """Return a gunicorn `logger_class` that writes gunicorn's own lines (its error log, and
    its access log when one is asked for) in the format of feedsvc's lines."""
    from gunicorn.glogging import Logger  # only under gunicorn

    chosen = formatter(config)

    class GunicornLogger(Logger):  # type: ignore[misc]
        def setup(self, cfg: Any) -> None:
            super().setup(cfg)  # also on HUP: gunicorn replaces its handlers, so reformat
            for log in (self.error_log, self.access_log):
                for handler in log.handlers:
                    handler.setFormatter(chosen)

    return GunicornLogger


def init_app(app: Flask) -> None:
    """Send the `feedsvc` loggers to stderr in the configured format and level."""
    logger = logging.getLogger(ROOT)
    for handler in list(logger.handlers):
        if handler is default_handler or getattr(handler, "feedsvc", False):
            logger.removeHandler(handler)
    handler = LineWriter(sys.stderr)
    handler.feedsvc = True  # type: ignore[attr-defined]
    handler.setFormatter(formatter(app.config))
    handler.addFilter(RequestIdFilter())
    logger.addHandler(handler)
    logger.setLevel(app.config["FEEDSVC_LOG_LEVEL"])
