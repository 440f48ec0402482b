"""Loopback inbox servers for the deliverer's tests and bench: each records the POSTs it gets,
checks their signature with feedsvc's own verify() against the site's public key, and answers
with the statuses a test lines up (202 once they run out)."""
from __future__ import annotations

import json
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from feedsvc.activitypub.signatures import RemoteKey, SignatureError, verify


@dataclass(frozen=True)
class Received:
    """One POST an inbox got: where, by which key, and the activity."""

    path: str
    key_id: str
    activity: dict[str, Any]

@dataclass
class Inbox:
    """A loopback server holding any number of inboxes (paths)."""

    public_pem: str
    answers: list[int] = field(default_factory=list)  # the next statuses, in order
    received: list[Received] = field(default_factory=list)
    refused: list[str] = field(default_factory=list)  # why a signature did not hold
    changed: threading.Condition = field(default_factory=threading.Condition)
    port: int = 0

    def url(self, path: str = "/inbox") -> str:
        return f"http://127.0.0.1:{self.port}{path}"

    def wait_for(self, count: int, deadline_s: float = 20.0) -> list[Received]:
        """Wait until `count` POSTs were received (and answered); return them."""
        with self.changed:
            done = self.changed.wait_for(lambda: len(self.received) >= count, deadline_s)
        assert done, f"{len(self.received)} of {count} POSTs received; refused: {self.refused}"
        return list(self.received)

    def types(self) -> list[str]:
        return sorted(r.activity["type"] for r in self.received)

    def _lookup(self, key_id: str) -> RemoteKey:
        return RemoteKey(key_id, key_id.partition("#")[0], self.public_pem)

    def _take(self, handler: BaseHTTPRequestHandler) -> int:
        body = handler.rfile.read(int(handler.headers.get("Content-Length", 0)))
        headers = {name: value for name, value in handler.headers.items()}
        try:
            key = verify("POST", handler.path, headers, body, self._lookup, scheme="http")
        except SignatureError as error:
            with self.changed:
                self.refused.append(str(error))
            return 401
        with self.changed:
            status = self.answers.pop(0) if self.answers else 202
            if 200 <= status < 300:
                self.received.append(Received(handler.path, key.key_id, json.loads(body)))
            self.changed.notify_all()
        return status

def _handler(inbox: Inbox) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:  # noqa: N802 (http.server's name)
            status = inbox._take(self)
            self.send_response(status)
            self.send_header("Content-Length", "0")
            self.end_headers()

        def log_message(self, format: str, *args: Any) -> None:  # noqa: A002
            pass

    return Handler

@contextmanager
def inbox_server(public_pem: str) -> Iterator[Inbox]:
    """Run an Inbox on a free loopback port for the duration of the block."""
    inbox = Inbox(public_pem)
    server = ThreadingHTTPServer(("127.0.0.1", 0), _handler(inbox))
    server.daemon_threads = True
    inbox.port = server.server_address[1]
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield inbox
    finally:
        server.shutdown()
        server.server_close()
        thread.join()

Waiter = Callable[[int], list[Received]]
