"""A load client that checks what it gets: every feed parses and comes from a valid dataset.

Several threads request the soak mix (bench/soakkit.py) over fresh connections, as gunicorn's
sync workers close each one. Each 200 feed body must parse (XML for RSS and Atom, JSON for JSON
Feed) and carry an `X-Dataset-Version` from the valid versions given; the unfiltered `all`
feeds must also contain (or lack) the text that marks their version. Anything else is wrong.
"""
from __future__ import annotations

import gzip
import http.client
import json
import random
import threading
import time
import xml.etree.ElementTree as ET
from collections import Counter
from dataclasses import dataclass, field

from soakkit import Hit


@dataclass(frozen=True)
class Expect:
    """What a version's unfiltered `all` feeds must hold, and must not."""

    present: tuple[str, ...] = ()
    absent: tuple[str, ...] = ()


@dataclass
class Checker:
    port: int
    mix: list[Hit]
    valid: dict[str, Expect]
    threads: int = 6
    max_seconds: float = 120
    started: float = 0.0
    requests: int = 0
    statuses: Counter[int] = field(default_factory=Counter)
    conn_errors: list[tuple[float, str]] = field(default_factory=list)
    wrong: list[tuple[float, str, str]] = field(default_factory=list)
    versions: Counter[str] = field(default_factory=Counter)
    # (start of request, version) of each 200 feed, to see when a version came and went.
    seen: list[tuple[float, str]] = field(default_factory=list)
    _stop: threading.Event = field(default_factory=threading.Event)
    _lock: threading.Lock = field(default_factory=threading.Lock)
    _workers: list[threading.Thread] = field(default_factory=list)

    def start(self) -> Checker:
        weighted = [h for h in self.mix for _ in range(h.weight)]
        self.started = time.monotonic()
        for n in range(self.threads):
            thread = threading.Thread(target=self._loop, args=(random.Random(n), weighted),
                                      daemon=True)
            self._workers.append(thread)
            thread.start()
        return self

    def stop(self) -> Checker:
        self._stop.set()
        for thread in self._workers:
            thread.join(timeout=30)
        return self

    def _loop(self, rnd: random.Random, weighted: list[Hit]) -> None:
        while not self._stop.is_set() and time.monotonic() - self.started < self.max_seconds:
            self._one(rnd.choice(weighted))

    def _one(self, hit: Hit) -> None:
        began = time.monotonic()
        conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=10)
        try:
            conn.request("GET", hit.path, headers=dict(hit.headers))
            response = conn.getresponse()
            body = response.read()
            head = {k.lower(): v for k, v in response.getheaders()}
        except (OSError, http.client.HTTPException) as error:
            with self._lock:
                self.requests += 1
                self.conn_errors.append((began, type(error).__name__))
            return
        finally:
            conn.close()
        problem, version = self._verify(hit, response.status, head, body)
        with self._lock:
            self.requests += 1
            self.statuses[response.status] += 1
            if version:
                self.versions[version] += 1
                if response.status == 200 and hit.kind == "feed":
                    self.seen.append((began, version))
            if problem:
                self.wrong.append((began, hit.path, problem))

    def _verify(self, hit: Hit, status: int, head: dict[str, str],
                body: bytes) -> tuple[str | None, str | None]:
        version = head.get("x-dataset-version")
        if version is not None and version not in self.valid:
            return f"version {version} is not a valid dataset's", version
        if status != 200 or hit.kind != "feed":
            return None, version
        if version is None:
            return "a feed without X-Dataset-Version", None
        try:
            if head.get("content-encoding") == "gzip":
                body = gzip.decompress(body)
            path = hit.path.split("?")[0]
            if path.endswith(".json"):
                json.loads(body)["items"]
            else:
                ET.fromstring(body)
        except (ValueError, KeyError, TypeError, ET.ParseError, OSError, EOFError) as error:
            return f"body does not parse: {type(error).__name__}: {error}", version
        if "?" not in hit.path and path.startswith("/feeds/all."):
            expect, text = self.valid[version], body.decode("utf-8", "replace")
            for want in expect.present:
                if want not in text:
                    return f"version {version} lacks {want!r}", version
            for unwanted in expect.absent:
                if unwanted in text:
                    return f"version {version} holds {unwanted!r}", version
        return None, version

    # --- what was seen ---------------------------------------------------------------------

    def served_5xx(self) -> int:
        return sum(n for status, n in self.statuses.items() if status >= 500)

    def last_seen(self, version: str, after: float = 0.0) -> float | None:
        """Return when the last request answered with `version` started (after `after`)."""
        times = [t for t, v in self.seen if v == version and t >= after]
        return max(times) if times else None

    def first_seen(self, version: str, after: float = 0.0) -> float | None:
        times = [t for t, v in self.seen if v == version and t >= after]
        return min(times) if times else None
