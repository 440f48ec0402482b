"""Access log lines, request ids, and errors logged with their cause."""
from __future__ import annotations

import json
import logging
from pathlib import Path
from typing import Any

import pytest
from flask import Flask
from flask.testing import FlaskClient

from feedsvc import create_app
from feedsvc.config import ConfigError, from_env
from feedsvc.operations.logs import JsonFormatter, TextFormatter, gunicorn_logger


def json_app(dataset_dir: Path) -> Flask:
    return create_app({"FEEDSVC_DATA": str(dataset_dir), "FEEDSVC_LOG_FORMAT": "json",
                       "FEEDSVC_BASE_URL": "https://feeds.example.org/"})


def lines(capsys: pytest.CaptureFixture[str]) -> list[dict[str, Any]]:
    return [json.loads(line) for line in capsys.readouterr().err.splitlines() if line]


def test_one_json_access_line_per_request(dataset_dir: Path,
                                          capsys: pytest.CaptureFixture[str]) -> None:
    client = json_app(dataset_dir).test_client()
    capsys.readouterr()
    first = client.get("/feeds/countries/th.json?limit=3", headers={"X-Request-ID": "abc-123"})
    second = client.get("/feeds/countries/th.json?limit=3")
    assert first.headers["X-Request-ID"] == "abc-123"
    generated = second.headers["X-Request-ID"]
    assert len(generated) == 32
    logged = lines(capsys)
    assert [line["logger"] for line in logged] == ["feedsvc.access", "feedsvc.access"]
    assert logged[0] | {"time": None, "duration_ms": None} == {
        "time": None, "level": "INFO", "logger": "feedsvc.access", "message": "request",
        "method": "GET", "path": "/feeds/countries/th.json", "query": "limit=3", "status": 200,
        "bytes": len(first.get_data()), "duration_ms": None, "cache": "miss", "cache_errors": 0,
        "remote": "127.0.0.1", "request_id": "abc-123"}
    assert logged[0]["duration_ms"] >= 0
    assert logged[1]["cache"] == "hit" and logged[1]["request_id"] == generated


@pytest.mark.parametrize("given", ["", "has space", "x" * 129, "<script>", "é"])
def test_unusable_request_ids_are_replaced(client: FlaskClient, given: str) -> None:
    response = client.get("/healthz", headers={"X-Request-ID": given})
    assert response.headers["X-Request-ID"] != given
    assert len(response.headers["X-Request-ID"]) == 32


def test_errors_are_logged_with_their_cause(dataset_dir: Path,
                                            capsys: pytest.CaptureFixture[str]) -> None:
    app = json_app(dataset_dir)

    @app.get("/boom")
    def boom() -> str:
        raise RuntimeError("the disk caught fire")

    client = app.test_client()
    capsys.readouterr()
    response = client.get("/boom", headers={"X-Request-ID": "req-9"})
    assert response.status_code == 500
    error, access = lines(capsys)
    assert error["level"] == "ERROR" and error["request_id"] == "req-9"
    assert "RuntimeError: the disk caught fire" in error["error"]
    assert access["status"] == 500 and access["request_id"] == "req-9"


def test_cache_errors_are_counted_in_the_line(dataset_dir: Path,
                                              capsys: pytest.CaptureFixture[str]) -> None:
    app = create_app({"FEEDSVC_DATA": str(dataset_dir), "FEEDSVC_LOG_FORMAT": "json",
                      "FEEDSVC_CACHE_URL": "redis://127.0.0.1:9/0"})
    client = app.test_client()
    capsys.readouterr()
    assert client.get("/feeds/all.rss").status_code == 200
    access = [line for line in lines(capsys) if line["logger"] == "feedsvc.access"]
    assert access[0]["cache"] == "miss" and access[0]["cache_errors"] >= 1


def test_text_format_and_level(dataset_dir: Path, capsys: pytest.CaptureFixture[str]) -> None:
    app = create_app({"FEEDSVC_DATA": str(dataset_dir), "FEEDSVC_LOG_LEVEL": "WARNING"})
    client = app.test_client()
    capsys.readouterr()
    client.get("/healthz")
    assert capsys.readouterr().err == ""  # access lines are INFO
    app = create_app({"FEEDSVC_DATA": str(dataset_dir)})
    capsys.readouterr()
    app.test_client().get("/healthz?x=1", headers={"X-Request-ID": "t-1"})
    line = capsys.readouterr().err.strip()
    assert " INFO feedsvc.access request method=GET path=/healthz query=x=1 status=200 " in line
    assert line.endswith("request_id=t-1")


def test_formatters_render_extra_fields_and_tracebacks() -> None:
    try:
        raise ValueError("bad")
    except ValueError:
        import sys
        record = logging.LogRecord("feedsvc.x", logging.ERROR, __file__, 1, "failed %s", ("it",),
                                   sys.exc_info())
    record.fields = {"path": "/a b"}
    doc = json.loads(JsonFormatter().format(record))
    assert doc["message"] == "failed it" and doc["path"] == "/a b" and "ValueError" in doc["error"]
    assert 'ERROR feedsvc.x failed it path="/a b"\nTraceback' in TextFormatter().format(record)


def test_log_settings_are_validated() -> None:
    assert from_env({"FEEDSVC_LOG_FORMAT": "JSON", "FEEDSVC_LOG_LEVEL": "debug"})[
        "FEEDSVC_LOG_FORMAT"] == "json"
    assert from_env({})["FEEDSVC_LOG_LEVEL"] == "INFO"
    for name, raw in (("FEEDSVC_LOG_FORMAT", "xml"), ("FEEDSVC_LOG_LEVEL", "loud"),
                      ("FEEDSVC_RELOAD_INTERVAL", "-1")):
        with pytest.raises(ConfigError, match=name):
            from_env({name: raw})


@pytest.mark.parametrize(("fmt", "kind"), [("text", TextFormatter), ("json", JsonFormatter)])
def test_gunicorns_logger_writes_in_feedsvcs_format(fmt: str, kind: type) -> None:
    from gunicorn.config import Config

    # gunicorn's loggers do not propagate, so pytest's capture handlers sit on them too; the
    # setup below reformats every handler there: theirs get their formatters back after, or
    # a later test's log line goes through feedsvc's format into pytest's handler.
    error_log = logging.getLogger("gunicorn.error")
    theirs = {h: h.formatter for h in error_log.handlers}
    try:
        logger = gunicorn_logger({"FEEDSVC_LOG_FORMAT": fmt})(Config())
        handlers = [h for h in logger.error_log.handlers if h not in theirs]
        assert handlers and all(isinstance(h.formatter, kind) for h in handlers)
    finally:
        for handler, formatter in theirs.items():
            handler.setFormatter(formatter)


@pytest.mark.parametrize("path", [
    "/releases/x%0a2026-11-30T00:00:00.000Z%09ERROR%09feedsvc.reload%09dataset%09replaced",
    "/releases/x%0d%0a2026-11-30T00:00:00.000Z ERROR feedsvc.reload forged",
    "/releases/%1b[2J%1b[31mred%1b]0;title%07", "/releases/x%c2%85y%e2%80%a8z%c2%9b31m",
])
def test_text_lines_escape_control_characters_from_requests(
        dataset_dir: Path, capsys: pytest.CaptureFixture[str], path: str) -> None:
    app = create_app({"FEEDSVC_DATA": str(dataset_dir)})
    capsys.readouterr()
    response = app.test_client().get(path, query_string="q=a%0Ab%1B[0m")
    assert response.status_code == 404
    err = capsys.readouterr().err
    assert len(err.splitlines()) == 1 and err.endswith("\n"), err  # one request, one line
    assert not any(c in err[:-1] for c in "\n\r\t\x1b\x07\x85\x9b\u2028"), repr(err)
    assert " INFO feedsvc.access request method=GET path=" in err
    assert "\\n" in err or "\\x1b" in err or "\\x85" in err  # still readable, as escapes
