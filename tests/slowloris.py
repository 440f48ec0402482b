"""Slow clients ("slowloris") and a polling reader, for tests/test_slow_clients.py and
bench/slowclients.py (the one copy, like tests/servers.py)."""
from __future__ import annotations

import http.client
import itertools
import socket
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from types import TracebackType

PATHS = ("/feeds/all.rss", "/healthz")
# The request a slow client never finishes: a valid start, then an endless header value.
TRICKLE = b"GET /feeds/all.rss HTTP/1.1\r\nHost: 127.0.0.1\r\nX-Slow: "


class SlowClients:
    """`count` connections to a port that each send one byte of a request header a second."""

    def __init__(self, port: int, count: int, interval: float = 1.0) -> None:
        self.port, self.count, self.interval = port, count, interval
        self.sockets: list[tuple[socket.socket, Iterator[int]]] = []
        self.reopened = 0  # connections the server closed (and we opened again)
        self.rounds = 0  # bytes each connection has sent after its first
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._trickle, name="slow-clients", daemon=True)

    def _open(self) -> tuple[socket.socket, Iterator[int]]:
        sock = socket.create_connection(("127.0.0.1", self.port), timeout=5)
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        return sock, itertools.chain(TRICKLE, itertools.repeat(ord("a")))

    def _trickle(self) -> None:
        while not self._stop.wait(self.interval):
            for n, (sock, stream) in enumerate(self.sockets):
                try:
                    sock.send(bytes([next(stream)]))
                except OSError:  # closed by the server: a real attacker opens another
                    sock.close()
                    self.reopened += 1
                    try:
                        self.sockets[n] = self._open()
                    except OSError:
                        pass
            self.rounds += 1

    def __enter__(self) -> SlowClients:
        self.sockets = [self._open() for _ in range(self.count)]
        for sock, stream in self.sockets:  # each has started its request
            sock.send(bytes([next(stream)]))
        self._thread.start()
        return self

    def __exit__(self, kind: type[BaseException] | None, error: BaseException | None,
                 trace: TracebackType | None) -> None:
        self._stop.set()
        if self._thread.is_alive():
            self._thread.join(timeout=10)
        for sock, _ in self.sockets:
            sock.close()


@dataclass(frozen=True)
class Answer:
    path: str
    status: int  # 0: no answer (timeout, reset, refused)
    seconds: float


def fetch(port: int, path: str, timeout: float = 5.0) -> Answer:
    """GET `path` on a fresh connection, as a feed reader polling would; never raises."""
    start = time.monotonic()
    try:
        conn = http.client.HTTPConnection("127.0.0.1", port, timeout=timeout)
        try:
            conn.request("GET", path)
            response = conn.getresponse()
            response.read()
            status = response.status
        finally:
            conn.close()
    except (OSError, http.client.HTTPException):
        status = 0
    return Answer(path, status, time.monotonic() - start)
