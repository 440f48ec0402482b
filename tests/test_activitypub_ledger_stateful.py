"""The ledger against a model, over random sequences (hypothesis): releases published, edited,
withdrawn, made drafts, scheduled, removed; the clock moved; the deliverer restarted.

After every sync, what was queued for the site actor's follower, release by release, is what
the model says followers must be told: Create when it becomes visible, Update when a visible
one changes, Delete when a sent one is no longer visible; nothing else, nothing twice.
"""
from __future__ import annotations

import json
import shutil
import tempfile
from datetime import timedelta
from pathlib import Path

import yaml
from hypothesis import settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, rule

from feedsvc import create_app, state
from feedsvc.activitypub.durable import Durable
from feedsvc.activitypub.ledger import Ledger
from feedsvc.clock import set_clock
from feedsvc.config import MaxRemoval
from feedsvc.dataset.reader import Reader
from feedsvc.feeds.urls import Urls
from feedsvc.operations.reload import reloader

from .conftest import BASE_URL, NOW, FakeClock, release_yaml
from .storedata import bundled_skeleton

IDS = range(1, 4)
KINDS = ("visible", "draft", "withdrawn", "scheduled", "absent")
FAR = 10.0**12


class LedgerMachine(RuleBasedStateMachine):
    def __init__(self) -> None:
        super().__init__()
        self.tmp = Path(tempfile.mkdtemp(prefix="feedsvc-ledger-machine-"))
        self.root = bundled_skeleton(self.tmp / "data")
        self.clock = FakeClock(NOW)
        self.files: dict[int, tuple[str, int, int]] = {}  # id -> (kind, edition, minutes ahead)
        self.app = create_app({"FEEDSVC_DATA": str(self.root), "FEEDSVC_BASE_URL": BASE_URL,
                               "FEEDSVC_LOG_LEVEL": "WARNING",
                               "FEEDSVC_MAX_REMOVAL": MaxRemoval(count=10, spec="10")})
        set_clock(self.app, self.clock)
        self.durable = Durable(self.tmp / "activitypub.sqlite3")
        self.durable.follow("all", "https://f.example/u", "https://f.example/u/inbox", None)
        self.ledger = self.new_ledger()
        assert self.ledger.sync(self.clock.now).recorded
        self.sent: dict[str, int] = {}  # what followers know: release page -> edition

    def new_ledger(self) -> Ledger:
        return Ledger(self.durable, Reader(state.live(self.app).reader.path), Urls(BASE_URL))

    def teardown(self) -> None:
        shutil.rmtree(self.tmp, ignore_errors=True)

    @rule(number=st.sampled_from(IDS), kind=st.sampled_from(KINDS), ahead=st.integers(1, 90))
    def put(self, number: int, kind: str, ahead: int) -> None:
        edition = self.files.get(number, ("", 0, 0))[1] + 1
        self.files[number] = (kind, edition, ahead)
        path = self.root / "releases" / f"t-{number:03d}.yaml"
        if kind == "absent":
            path.unlink(missing_ok=True)
        else:
            path.write_text(yaml.safe_dump(self.release(number, kind, edition, ahead)))
        assert reloader(self.app).check() in ("reloaded", "unchanged")

    def release(self, number: int, kind: str, edition: int, ahead: int) -> dict[str, object]:
        when = NOW + timedelta(minutes=ahead) if kind == "scheduled" else NOW - timedelta(days=1)
        found = release_yaml(number, when.isoformat(), title=f"Release {number}, edition {edition}")
        if kind == "draft":
            found["draft"] = True
        if kind == "withdrawn":
            found |= {"withdrawn": NOW.isoformat(), "withdrawn_note": "Gone."}
        return found

    @rule(minutes=st.integers(1, 60))
    def advance(self, minutes: int) -> None:
        self.clock.advance(minutes=minutes)

    @rule()
    def restart(self) -> None:
        self.ledger = self.new_ledger()

    @rule()
    def sync(self) -> None:
        self.ledger.sync(self.clock.now)
        told: dict[str, list[str]] = {}
        for delivery in self.durable.claim(1000, now=FAR):
            activity = json.loads(delivery.body)
            target = activity["object"]["id"] if isinstance(activity["object"], dict) else \
                activity["object"]
            told.setdefault(target, []).append(activity["type"])
            self.durable.delivered(delivery.id)
        assert told == self.expected()

    def expected(self) -> dict[str, list[str]]:
        """Say what followers must be told now, and remember they were."""
        wanted: dict[str, list[str]] = {}
        for number, (kind, edition, ahead) in self.files.items():
            page = f"{BASE_URL}releases/t-{number:03d}"
            live = kind == "visible" or (
                kind == "scheduled" and self.clock.now >= NOW + timedelta(minutes=ahead))
            if live and page not in self.sent:
                wanted[page] = ["Create"]
            elif live and self.sent[page] != edition:
                wanted[page] = ["Update"]
            elif not live and page in self.sent:
                wanted[page] = ["Delete"]
            if live:
                self.sent[page] = edition
            else:
                self.sent.pop(page, None)
        return wanted


TestLedgerMachine = LedgerMachine.TestCase
TestLedgerMachine.settings = settings(max_examples=max(60, settings().max_examples),
                                      stateful_step_count=30, deadline=None)
