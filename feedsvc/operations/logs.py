"""Logging set-up: every log line as JSON or key=value text, with the request id: feedsvc's
own (`init_app`, written by `LineWriter`) and gunicorn's (`gunicorn_logger`, used by
deploy/gunicorn.conf.py)."""
from __future__ import annotations

import json
import logging
import os
import re
import sys
import time
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


def _time(created: float) -> str:
    """Return `created` (seconds since the epoch) as UTC time with milliseconds."""
    global _second
    second, text = _second
    if int(created) != second:
        second = int(created)
        text = datetime.fromtimestamp(second, UTC).strftime("%Y-%m-%dT%H:%M:%S")
        _second = (second, text)  # one tuple: threads see a pair that belongs together
    return f"{text}.{int((created - second) * 1000):03d}Z"


class LineFormatter(logging.Formatter):
    """A record as one line built by `line` from its time, level, logger, message and fields:
    `log_fields` builds the same line without a record."""

    def format(self, record: logging.LogRecord) -> str:
        error = self.formatException(record.exc_info) if record.exc_info else None
        return self.line(record.created, record.levelname, record.name, record.getMessage(),
                         _fields(record), error)

    def line(self, created: float, level: str, name: str, message: str,
             fields: Mapping[str, Any], error: str | None = None) -> str:
        raise NotImplementedError


# json.dumps makes an encoder on every call when given options: make it once.
_JSON = json.JSONEncoder(default=str, ensure_ascii=False)


class JsonFormatter(LineFormatter):
    """One JSON object per line: time, level, logger, message, the fields, and any error."""

    def line(self, created: float, level: str, name: str, message: str,
             fields: Mapping[str, Any], error: str | None = None) -> str:
        doc: dict[str, Any] = {"time": _time(created), "level": level, "logger": name,
                               "message": message}
        doc.update(fields)
        if error is not None:
            doc["error"] = error
        return _JSON.encode(doc)


# Control characters (C0, DEL, C1) and Unicode line breaks: a newline in a request value would
# start a forged log line, an ANSI escape would act on the terminal of whoever reads the log.
_CONTROL = re.compile("[\x00-\x1f\x7f-\x9f\u2028\u2029]")
_NAMED = {"\n": "\\n", "\r": "\\r", "\t": "\\t"}


def _escape_one(match: re.Match[str]) -> str:
    char = match[0]
    return _NAMED.get(char) or (f"\\x{ord(char):02x}" if ord(char) < 0x100 else f"\\u{ord(char):04x}")


def escape(text: str) -> str:
    """Return `text` as one line that no terminal acts on: control characters as escapes."""
    # Every character _CONTROL matches is unprintable, and isprintable is the quicker scan.
    return text if text.isprintable() else _CONTROL.sub(_escape_one, text)


def _value(value: Any) -> str:
    if isinstance(value, str):
        if not value:
            return '""'  # as json.dumps would quote it: an empty query, on most lines
        return json.dumps(value) if " " in value or '"' in value else value
    return str(value)


class TextFormatter(LineFormatter):
    """`time LEVEL logger message key=value ...` on one line (escaped), then any traceback."""

    def line(self, created: float, level: str, name: str, message: str,
             fields: Mapping[str, Any], error: str | None = None) -> str:
        pairs = " ".join([f"{k}={_value(v)}" for k, v in fields.items()])
        line = f"{_time(created)} {level} {name} {message}"
        # One pass over the whole line: escaping maps each character on its own, so the
        # line escaped at once is its parts escaped one by one.
        line = escape(f"{line} {pairs}" if pairs else line)
        return line if error is None else f"{line}\n{error}"


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
            line = self.format(record)
        except RecursionError:
            raise
        except Exception:
            self.handleError(record)
            return
        self.add(line, record.levelno, record)

    def add(self, line: str, level: int = logging.INFO, record: logging.LogRecord | None = None
            ) -> None:
        """Write one formatted line (no line end) with those waiting, when its turn ends or,
        at `level` WARNING and above, at once. The handler's lock is not needed: a line is
        appended at once, and `_write` takes the lines waiting at once."""
        line += self.terminator
        self._waiting.append(line)
        self._size += len(line)
        if level >= logging.WARNING or self._size >= self.LIMIT or not self._later():
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
            # One step each: a line another thread appends meanwhile is in the one or the other.
            waiting, self._waiting = self._waiting, []
            self._size = 0
            text = "".join(waiting)
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


def formatter(config: Mapping[str, Any]) -> LineFormatter:
    """Return the formatter FEEDSVC_LOG_FORMAT names."""
    return JsonFormatter() if config["FEEDSVC_LOG_FORMAT"] == "json" else TextFormatter()


def _sole_writer(logger: logging.Logger) -> LineWriter | None:
    """Return the LineWriter with a LineFormatter that is the one handler a record of `logger`
    reaches, with no filter on the way but the request id's; else None."""
    found: LineWriter | None = None
    node: logging.Logger | None = logger
    while node is not None:
        if node.filters:
            return None
        for handler in node.handlers:
            if (found is not None or not isinstance(handler, LineWriter)
                    or not isinstance(handler.formatter, LineFormatter)):
                return None
            for each in handler.filters:
                if not isinstance(each, RequestIdFilter):
                    return None
            found = handler
        node = node.parent if node.propagate else None
    return found


def log_fields(logger: logging.Logger, message: str, fields: Mapping[str, Any]) -> None:
    """Log `message` with `fields` at INFO (the caller has checked that `logger` is enabled
    for it): the line feedsvc's handler would write for the record, built without the record
    when that handler is the only one the record would reach (the access line, on every
    request: making a LogRecord and passing it through the logging calls costs more than the
    line), else through logging."""
    writer = _sole_writer(logger)
    if writer is None or writer.level > logging.INFO:
        logger.handle(_record(logger, message, fields))
        return
    line_format: LineFormatter = writer.formatter  # type: ignore[assignment]  # _sole_writer
    try:
        line = line_format.line(time.time(), "INFO", logger.name, message, fields)
    except RecursionError:
        raise
    except Exception:  # as emit() would: reported on stderr, never raised to the request
        writer.handleError(_record(logger, message, fields))
        return
    writer.add(line)


def _record(logger: logging.Logger, message: str, fields: Mapping[str, Any]) -> logging.LogRecord:
    # As logger.info would make it, less its search of the call stack for a file and line.
    return logger.makeRecord(logger.name, logging.INFO, __file__, 0, message, (), None,
                             extra={"fields": fields})


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
