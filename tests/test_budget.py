"""The render budget (issue 11, section 2): a stream of queried misses takes at most its share
of a worker's time; beyond it they are refused with 503 and Retry-After, while cached and plain
pages are still served."""
from __future__ import annotations

import pytest
from flask import Flask

from feedsvc import state
from feedsvc.http.budget import Overloaded, RenderBudget

from .conftest import build


class Clock:
    """A clock that moves only when told to."""

    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def test_the_budget_refills_at_its_share_and_refuses_when_spent() -> None:
    clock = Clock()
    budget = RenderBudget(0.25, burst=0.02, clock=clock)
    budget.admit()
    budget.spend(0.03)  # one render longer than the burst: a debt of 10 ms
    with pytest.raises(Overloaded):
        budget.admit()
    clock.now += 0.03  # refills 7.5 ms: still in debt
    with pytest.raises(Overloaded):
        budget.admit()
    clock.now += 0.02
    budget.admit()
    clock.now += 100  # never more than the burst, however long it was idle
    budget.spend(0.02)
    with pytest.raises(Overloaded):
        budget.admit()
    assert budget.refused == 3


def test_a_share_of_100_percent_never_refuses() -> None:
    budget = RenderBudget(1.0, clock=Clock())
    for _ in range(100):
        budget.admit()
        budget.spend(10.0)
    assert budget.refused == 0


QUERIED = ["/feeds/all.rss?q=word{n}", "/feeds/countries/th.atom?limit={m}", "/?since=2004-01-{d:02d}",
           "/topics/social-security?q=w{n}", "/embed/countries/th?limit={m}"]


@pytest.fixture
def app() -> Flask:
    """An app whose render budget is spent by its first render and never refills in a test."""
    app = build(FEEDSVC_QUERY_RENDER_SHARE=1, FEEDSVC_FAST_PATH=False)
    budget = state.feed_cache(app).budget
    budget.clock = Clock()
    assert budget.share == 0.01
    return app


def test_queried_misses_beyond_the_budget_get_503_with_retry_after(app: Flask) -> None:
    client, cache = app.test_client(), state.feed_cache(app)
    first = client.get("/feeds/all.rss?q=first")
    assert first.status_code == 200
    cache.budget.spend(1.0)  # as if renders had just taken a second of this worker's time
    for n, template in enumerate(QUERIED, start=1):
        path = template.format(n=n, m=n, d=n)
        refused = client.get(path)
        assert refused.status_code == 503, path
        assert refused.headers["Retry-After"] == "1"
        assert refused.headers["Cache-Control"] == "no-store"
        assert "Try again" in refused.get_data(as_text=True)
    assert cache.budget.refused == len(QUERIED)
    assert cache.misses == 1  # nothing was rendered for the refused requests
    # What is cached is still served, and plain pages (a bounded set of keys) are rendered.
    assert client.get("/feeds/all.rss?q=first").data == first.data
    for plain in ("/feeds/all.rss", "/feeds/topics/social-security.json", "/countries/th",
                  "/embed/countries/th", "/feeds/", "/feeds.opml"):
        assert client.get(plain).status_code == 200, plain
    assert cache.misses == 7


def test_refused_requests_are_answered_again_once_the_budget_refills(app: Flask) -> None:
    client, budget = app.test_client(), state.feed_cache(app).budget
    client.get("/feeds/all.rss?q=first")
    budget.spend(1.0)
    assert client.get("/feeds/all.json?limit=7").status_code == 503
    assert isinstance(budget.clock, Clock)
    budget.clock.now += 100.0 + 2.0  # the debt (1 s at 1%), then 20 ms of budget
    response = client.get("/feeds/all.json?limit=7")
    assert response.status_code == 200 and len(response.get_json()["items"]) == 7
