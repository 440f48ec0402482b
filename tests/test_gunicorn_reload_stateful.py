"""The reload state machine (test_reload_stateful.py) against a real gunicorn, 2 workers: a few
short sequences, each step reaching the master's watcher through the files (or SIGHUP), and
every worker compared with a fresh load of the same files once it has settled.

Real time here (the service's clock is the system's): the machine's clock steps and restarts
are left out; the in-process machine covers them.
"""
from __future__ import annotations

import json
import signal
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime
from typing import Any

from flask import Flask
from hypothesis import Phase, settings
from hypothesis.stateful import invariant, precondition, rule

from .test_gunicorn import Server, start, stop, until
from .test_gunicorn_reload import accept_removal, every_worker
from .test_reload_stateful import MAX_REMOVAL, ReloadMachine, fresh

WORKERS = 2


class GunicornReloadMachine(ReloadMachine):
    """The same steps; the service is gunicorn, started once per sequence."""

    server: Server

    def __init__(self) -> None:
        super().__init__()
        self.clock.now = datetime.now(UTC)  # what gunicorn's workers read

    def _start(self, start_check: str) -> Flask:
        if start_check == "wait":  # the first start: a cold one, no snapshot yet
            self.server = start(self.root, self.tmp / "gunicorn.log", 1, WORKERS, {
                "FEEDSVC_SNAPSHOT_DIR": str(self.snapshots),
                "FEEDSVC_MAX_REMOVAL": str(MAX_REMOVAL)})
        return self.reference  # in-process app: not used for what is served

    def teardown(self) -> None:
        stop(self.server)
        super().teardown()

    def _look(self, force: bool = False) -> None:
        if force:
            self.server.process.send_signal(signal.SIGHUP)
        self._expect("looked")  # what a fresh load says must be served, and degraded or not
        version, status = self.good.version, "degraded" if self.degraded else "ok"
        until(every_worker(self.server, WORKERS, lambda r: r["dataset"]["version"] == version
                           and r["status"] == status))

    @precondition(lambda self: self.held)
    @rule()
    def accept_held_removal(self) -> None:
        accept_removal(self.root, str(self.snapshots))
        now = fresh(self.root)
        assert now is not None
        self._serve(now)
        until(every_worker(self.server, WORKERS,
                           lambda r: r["dataset"]["version"] == now.version
                           and r["status"] == "ok"))

    # Not here: the service's clock is real, and a restart is test_restart.py's.
    def time_passes(self, hours: int) -> None: ...

    def restart(self, background: bool) -> None: ...

    @invariant()
    def serves_what_a_fresh_process_serves(self) -> None:
        """Every worker: the same feed as the reference (the last good data), by version."""
        self.clock.now = datetime.now(UTC)
        expected = self.reference.test_client().get("/feeds/all.json")
        want = json.loads(expected.get_data())

        def ask(_: int) -> tuple[int, dict[str, str], Any]:
            code, headers, body = self.server.get("/feeds/all.json")
            return code, headers, json.loads(body)
        with ThreadPoolExecutor(4) as pool:
            for code, headers, feed in pool.map(ask, range(4 * WORKERS)):
                assert code == 200
                assert headers["X-Dataset-Version"] == expected.headers["X-Dataset-Version"]
                assert feed == want


TestGunicornReloadMachine = GunicornReloadMachine.TestCase
# A few short sequences; no shrinking (each try waits on real workers: minutes), the
# in-process machine shrinks what it finds.
TestGunicornReloadMachine.settings = settings(max_examples=4, stateful_step_count=8,
                                              phases=(Phase.explicit, Phase.generate))
