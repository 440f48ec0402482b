"""Logging set-up: every log line as JSON or key=value text, with the request id: feedsvc's
own (`init_app`) and gunicorn's (`gunicorn_logger`, used by deploy/gunicorn.conf.py)."""
from __future__ import annotations

import json
import logging
import re
import sys
from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any

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
    text = str(value)
    if isinstance(value, str) and (not text or " " in text or '"' in text):
        text = json.dumps(text)
    return escape(text)


class TextFormatter(logging.Formatter):
    """`time LEVEL logger message key=value ...` on one line (escaped), then any traceback."""

    def format(self, record: logging.LogRecord) -> str:
        pairs = " ".join(f"{escape(str(k))}={_value(v)}" for k, v in _fields(record).items())
        line = f"{_time(record)} {record.levelname} {record.name} {escape(record.getMessage())}"
        line = f"{line} {pairs}" if pairs else line
        if record.exc_info:
            line = f"{line}\n{self.formatException(record.exc_info)}"
        return line


class RequestIdFilter(logging.Filter):
    """Stamp records logged while handling a request with that request's id."""

    def filter(self, record: logging.LogRecord) -> bool:
        if has_request_context() and "request_id" in g:
            record.request_id = g.request_id
        return True


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
    handler = logging.StreamHandler(sys.stderr)
    handler.feedsvc = True  # type: ignore[attr-defined]
    handler.setFormatter(formatter(app.config))
    handler.addFilter(RequestIdFilter())
    logger.addHandler(handler)
    logger.setLevel(app.config["FEEDSVC_LOG_LEVEL"])
