"""/healthz and /readyz: liveness, and every readiness state."""
from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from flask import Flask
from flask.testing import FlaskClient

from feedsvc import create_app, state
from feedsvc.dataset import load_dataset
from feedsvc.operations.reload import reloader

from .conftest import FakeClock, release_yaml
from .servers import free_port

BASE_URL = "https://feeds.example.org/"


def test_healthz_is_ok_and_never_cached(client: FlaskClient) -> None:
    response = client.get("/healthz")
    assert response.status_code == 200
    assert response.get_json() == {"status": "ok"}
    assert response.headers["Cache-Control"] == "no-store"
    assert "X-Dataset-Version" not in response.headers  # it touched no dataset


def test_readyz_ok_describes_what_is_served(client: FlaskClient, app: Flask) -> None:
    response = client.get("/readyz")
    assert response.status_code == 200
    assert response.headers["Cache-Control"] == "no-store"
    body = response.get_json()
    index = state.live(app).index
    named = {c for r in load_dataset(app.config["FEEDSVC_DATA"]).releases for c in r.countries}
    assert body["status"] == "ok"
    assert body["dataset"] | {"loaded_at": None, "state": None} == {
        "version": index.version, "releases": 10, "visible": 10, "next_scheduled": None,
        "countries": len(named),
        "topics": len(index.topics), "source": index.source,
        "loaded_at": None, "last_reload_error": None, "rejected_at": None,
        "start_check": "done", "state": None}
    assert body["cache"] == {"backend": "in-process", "reachable": True}
    assert body["service"]["version"] == "0.1.0" and body["service"]["uptime_seconds"] >= 0


def test_readyz_counts_the_releases_and_countries_served_now(
        clocked_app: Callable[..., Flask], clock: FakeClock) -> None:
    withdrawn = release_yaml(2, "2030-05-10", countries=("KH",)) | {
        "withdrawn": "2030-05-20T09:00:00+07:00", "withdrawn_note": "Sent in error."}
    draft = release_yaml(3, "2030-05-02", countries=("LA",)) | {"draft": True}
    scheduled = release_yaml(4, "2030-07-01", countries=("VN",))
    client = clocked_app([release_yaml(1, "2030-05-01"), withdrawn, draft, scheduled,
                          release_yaml(5, "2030-05-03", countries=("TH", "MM"))]).test_client()

    def counted() -> tuple[int, int, int]:
        dataset = client.get("/readyz").get_json()["dataset"]
        return dataset["releases"], dataset["visible"], dataset["countries"]

    assert counted() == (2, 2, 2)  # TH and MM: KH, LA and VN have nothing served
    clock.advance(days=31)  # the scheduled release is out; the withdrawn one stays hidden
    assert counted() == (3, 3, 3)


def test_readyz_degraded_while_the_cache_is_down(dataset_dir: Path) -> None:
    app = create_app({"FEEDSVC_DATA": str(dataset_dir), "FEEDSVC_BASE_URL": BASE_URL,
                      "FEEDSVC_CACHE_URL": f"redis://127.0.0.1:{free_port()}/0"})
    client = app.test_client()
    response = client.get("/readyz")
    assert response.status_code == 200  # feeds can still be served, rendered each time
    body = response.get_json()
    assert body["status"] == "degraded"
    assert body["cache"] == {"backend": "RedisCache", "reachable": False}
    assert client.get("/feeds/all.atom").status_code == 200


def test_readyz_degraded_after_a_rejected_reload_then_ok_again(dataset_dir: Path) -> None:
    app = create_app({"FEEDSVC_DATA": str(dataset_dir), "FEEDSVC_BASE_URL": BASE_URL})
    client = app.test_client()
    site = dataset_dir / "site.yaml"
    good = site.read_text(encoding="utf-8")
    site.write_text(good.replace("timezone: Asia/Bangkok", "timezone: Mars/Olympus"), "utf-8")
    assert reloader(app).check() == "rejected"
    degraded = client.get("/readyz")
    assert degraded.status_code == 200
    error = degraded.get_json()["dataset"]["last_reload_error"]
    assert degraded.get_json()["status"] == "degraded"
    assert error.startswith("dataset invalid: 1 problem") and "site.yaml:" in error
    site.write_text(good.replace("Bangkok.", "Bangkok, Thailand."), "utf-8")
    assert reloader(app).check() == "reloaded"
    body = client.get("/readyz").get_json()
    assert body["status"] == "ok" and body["dataset"]["last_reload_error"] is None


def test_readyz_tells_other_hosts_only_the_state_and_this_host_the_detail(
        dataset_dir: Path) -> None:
    app = create_app({"FEEDSVC_DATA": str(dataset_dir), "FEEDSVC_BASE_URL": BASE_URL})
    (dataset_dir / "releases" / "pr-2004-001.yaml").write_text("id: [broken\n")
    assert reloader(app).check() == "rejected"
    client = app.test_client()
    public = client.get("/readyz", environ_base={"REMOTE_ADDR": "203.0.113.9"})
    body = public.get_json()
    version = state.live(app).index.version
    assert (public.status_code, body["status"]) == (200, "degraded")
    assert set(body) == {"status", "dataset", "cache"} and body["cache"] == {"reachable": True}
    assert body["dataset"]["version"] == version and body["dataset"]["releases"] == 10
    assert set(body["dataset"]) == {"version", "releases", "loaded_at", "rejected_at",
                                   "start_check"}
    assert str(dataset_dir) not in public.get_data(as_text=True)
    for local in ("127.0.0.1", "::1"):
        detail = client.get("/readyz", environ_base={"REMOTE_ADDR": local}).get_json()
        assert "pr-2004-001.yaml" in detail["dataset"]["last_reload_error"]
        assert detail["service"]["pid"] > 0 and detail["dataset"]["source"] == str(dataset_dir)
