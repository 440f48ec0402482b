"""Slow clients against the shipped gunicorn config: they must not take the service down.

A connection that sends its request one byte a second held a whole sync worker; two of them
made the instance unavailable. bench/slowclients.py measures the latency; this checks that
everyone else is still answered, promptly, while 200 such connections are open.
"""
from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from . import servers
from .slowloris import PATHS, SlowClients, fetch

SLOW = 200
# Generous: answers take milliseconds; before the fix they never came (5 s timeout).
PROMPT_S = 2.0


@pytest.fixture
def gunicorn(tmp_path: Path) -> Iterator[servers.Server]:
    server = servers.start_gunicorn(
        tmp_path, env={"FEEDSVC_BASE_URL": "https://feeds.example.org/"}, ready_path="/healthz")
    yield server
    server.stop()


def test_feeds_and_health_are_answered_while_slow_clients_hold_connections(
        gunicorn: servers.Server) -> None:
    with SlowClients(gunicorn.port, SLOW) as slow:
        deadline = time.monotonic() + 30
        while slow.rounds < 2:  # every slow connection is trickling its header
            assert time.monotonic() < deadline
            time.sleep(0.05)
        answers = [fetch(gunicorn.port, path) for _ in range(20) for path in PATHS]
        dropped = slow.reopened
    assert [a for a in answers if a.status != 200] == []
    assert max(a.seconds for a in answers) < PROMPT_S, sorted(a.seconds for a in answers)[-5:]
    assert dropped == 0  # served others by holding the slow ones, not by cutting them off
    assert gunicorn.process.poll() is None
    assert "WORKER TIMEOUT" not in gunicorn.log.read_text()
