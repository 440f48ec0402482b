"""How log lines reach stderr: at once outside gevent, a loop turn's lines in one write inside
it, never lost (fork, exit, a gunicorn stopped under load) and always in order."""
from __future__ import annotations

import http.client
import io
import itertools
import json
import logging
import os
import threading
import weakref
from collections.abc import Iterator
from pathlib import Path

import gevent
import pytest

from feedsvc.operations.logs import JsonFormatter, LineWriter, TextFormatter, log_fields

from .servers import start_gunicorn


class CountingStream(io.StringIO):
    """A stream that counts its write() calls."""

    writes = 0

    def write(self, text: str) -> int:
        self.writes += 1
        return super().write(text)


@pytest.fixture
def logged() -> Iterator[tuple[logging.Logger, LineWriter, CountingStream]]:
    stream = CountingStream()
    writer = LineWriter(stream)
    writer.setFormatter(TextFormatter())
    logger = logging.getLogger("feedsvc.test-logs")
    logger.addHandler(writer)
    logger.setLevel(logging.INFO)
    logger.propagate = False
    yield logger, writer, stream
    logger.removeHandler(writer)


def messages(text: str) -> list[str]:
    return [line.split(" ", 3)[3] for line in text.splitlines()]


def test_outside_a_greenlet_each_line_is_written_at_once(
        logged: tuple[logging.Logger, LineWriter, CountingStream]) -> None:
    logger, _, stream = logged
    logger.info("one")
    assert messages(stream.getvalue()) == ["one"]
    logger.info("two")
    assert messages(stream.getvalue()) == ["one", "two"] and stream.writes == 2


def test_a_loop_turns_lines_go_out_together_at_its_end_in_order(
        logged: tuple[logging.Logger, LineWriter, CountingStream]) -> None:
    logger, _, stream = logged
    seen_inside: list[str] = []

    def request(number: int) -> None:
        logger.info("request %d", number)
        seen_inside.append(stream.getvalue())

    gevent.joinall([gevent.spawn(request, n) for n in range(5)])
    assert seen_inside == [""] * 5  # nothing written while the turn lasts
    assert messages(stream.getvalue()) == [f"request {n}" for n in range(5)]
    assert stream.writes == 1


def test_a_warning_is_written_at_once_after_the_lines_before_it(
        logged: tuple[logging.Logger, LineWriter, CountingStream]) -> None:
    logger, _, stream = logged
    seen_inside: list[str] = []

    def request() -> None:
        logger.info("first")
        logger.warning("trouble")
        seen_inside.append(stream.getvalue())

    gevent.spawn(request).join()
    assert messages(seen_inside[0]) == ["first", "trouble"]


def test_waiting_lines_are_written_at_exit(
        logged: tuple[logging.Logger, LineWriter, CountingStream]) -> None:
    logger, writer, stream = logged
    seen_inside: list[str] = []

    def last_request() -> None:
        logger.info("last words")
        # What the interpreter runs at exit (atexit), here for this handler alone.
        logging.shutdown([weakref.ref(writer)])
        seen_inside.append(stream.getvalue())

    gevent.spawn(last_request).join()
    assert messages(seen_inside[0]) == ["last words"]


def test_waiting_lines_are_written_once_before_a_fork(tmp_path: Path) -> None:
    out = (tmp_path / "log").open("a", encoding="utf-8")
    writer = LineWriter(out)
    logger = logging.getLogger("feedsvc.test-fork")
    logger.addHandler(writer)
    logger.setLevel(logging.INFO)
    logger.propagate = False
    children: list[int] = []

    def fork_after_logging() -> None:
        logger.info("before the fork")
        pid = os.fork()
        if pid == 0:  # the child writes what it holds, then leaves at once
            writer.flush()
            os._exit(0)
        children.append(pid)

    try:
        gevent.spawn(fork_after_logging).join()
        assert os.waitpid(children[0], 0)[1] == 0
        writer.flush()
    finally:
        logger.removeHandler(writer)
        out.close()
    assert (tmp_path / "log").read_text().splitlines() == ["before the fork"]


def test_gunicorn_stopped_under_load_has_written_every_answered_requests_line_in_order(
        tmp_path: Path) -> None:
    server = start_gunicorn(tmp_path, workers=2, env={"FEEDSVC_LOG_FORMAT": "json"})
    answered: dict[str, list[str]] = {f"c{n}": [] for n in range(4)}
    enough = threading.Barrier(len(answered) + 1)

    def client(name: str) -> None:
        """Ask on one kept-alive connection (one worker, one greenlet) until it closes."""
        connection = http.client.HTTPConnection("127.0.0.1", server.port, timeout=10)
        try:
            for number in itertools.count():
                request_id = f"{name}-{number:05d}"
                connection.request("GET", "/feeds/all.rss", headers={"X-Request-ID": request_id})
                response = connection.getresponse()
                response.read()
                assert response.status == 200
                answered[name].append(request_id)
                if number == 100:
                    enough.wait()
                if response.getheader("Connection") == "close":
                    break  # the worker is stopping: a new connection may reach the other one
        except (OSError, http.client.HTTPException):
            pass  # the server stopped
        finally:
            connection.close()

    clients = [threading.Thread(target=client, args=(name,)) for name in answered]
    try:
        for thread in clients:
            thread.start()
        enough.wait(timeout=60)  # every client is under way
    finally:
        server.stop()  # SIGTERM: a graceful stop, while the clients still ask
        for thread in clients:
            thread.join()
    assert server.process.returncode == 0
    logged = [json.loads(line) for line in server.log.read_text().splitlines()]
    ids = [line["request_id"] for line in logged if line["logger"] == "feedsvc.access"]
    for name, sent in answered.items():
        mine = [i for i in ids if i.startswith(f"{name}-")]
        assert len(sent) > 100
        # Every answered request, in order; the one a stop cut off may be logged too.
        assert mine[:len(sent)] == sent and len(mine) <= len(sent) + 1


class Kept(logging.Handler):
    """A handler that keeps the records it is given."""

    def __init__(self) -> None:
        super().__init__()
        self.records: list[logging.LogRecord] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.records.append(record)


FIELDS = {"method": "GET", "path": "/feeds/a b\n", "query": "", "status": 200, "bytes": None,
          "duration_ms": 0.25, "remote": "127.0.0.1", "request_id": "r-1"}


@pytest.mark.parametrize("kind", [TextFormatter, JsonFormatter])
def test_a_line_logged_without_a_record_is_the_line_its_record_makes(
        logged: tuple[logging.Logger, LineWriter, CountingStream], kind: type[logging.Formatter]
        ) -> None:
    logger, writer, stream = logged
    writer.setFormatter(kind())
    log_fields(logger, "request", FIELDS)  # the writer alone: no record
    kept = Kept()
    logger.addHandler(kept)
    try:
        log_fields(logger, "request", FIELDS)  # another handler on the way: a record
    finally:
        logger.removeHandler(kept)
    assert [r.getMessage() for r in kept.records] == ["request"]
    assert kept.records[0].fields == FIELDS  # type: ignore[attr-defined]
    direct, recorded = stream.getvalue().splitlines()
    assert direct.split(" ", 1)[1] == recorded.split(" ", 1)[1] if kind is TextFormatter else \
        json.loads(direct) | {"time": 0} == json.loads(recorded) | {"time": 0}
    assert "\\n" in direct and stream.writes == 2  # escaped; outside a greenlet, at once


def test_lines_with_and_without_records_keep_their_order_in_one_write(
        logged: tuple[logging.Logger, LineWriter, CountingStream]) -> None:
    logger, _, stream = logged

    def request(number: int) -> None:
        log_fields(logger, f"access {number}", {})
        logger.info("record %d", number)

    gevent.joinall([gevent.spawn(request, n) for n in range(3)])
    assert messages(stream.getvalue()) == [
        f"{kind} {n}" for n in range(3) for kind in ("access", "record")]
    assert stream.writes == 1


def test_a_filter_on_the_way_gets_the_record(
        logged: tuple[logging.Logger, LineWriter, CountingStream]) -> None:
    logger, _, stream = logged
    logger.addFilter(lambda record: record.getMessage() != "hidden")
    try:
        log_fields(logger, "hidden", {})
        log_fields(logger, "shown", {})
    finally:
        logger.filters.clear()
    assert messages(stream.getvalue()) == ["shown"]


def test_a_line_that_cannot_be_built_is_reported_not_raised(
        logged: tuple[logging.Logger, LineWriter, CountingStream],
        capsys: pytest.CaptureFixture[str]) -> None:
    logger, _, stream = logged

    class Unprintable:
        def __str__(self) -> str:
            raise ValueError("no text")

    log_fields(logger, "request", {"value": Unprintable()})
    log_fields(logger, "next", {})
    assert messages(stream.getvalue()) == ["next"]
    assert "ValueError: no text" in capsys.readouterr().err
