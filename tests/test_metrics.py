"""/metrics: the counters move as requests are made."""
from __future__ import annotations

import re
from pathlib import Path

import pytest
import yaml
from flask import Flask
from flask.testing import FlaskClient
from prometheus_client.parser import text_string_to_metric_families

from feedsvc import create_app, state
from feedsvc.config import ConfigError, from_env
from feedsvc.operations.reload import reloader

FEED_RULE = "/feeds/all.<any(rss, atom, json):fmt>"


def scrape(client: FlaskClient) -> dict[tuple[str, frozenset[tuple[str, str]]], float]:
    response = client.get("/metrics")
    assert response.status_code == 200
    assert response.content_type.startswith("text/plain; version=")
    assert response.headers["Cache-Control"] == "no-store"
    return {(s.name, frozenset(s.labels.items())): s.value
            for family in text_string_to_metric_families(response.get_data(as_text=True))
            for s in family.samples}


Samples = dict[tuple[str, frozenset[tuple[str, str]]], float]


def value(samples: Samples, name: str, **labels: str) -> float:
    return samples.get((name, frozenset(labels.items())), 0.0)


def test_request_cache_render_and_304_counters_move(client: FlaskClient) -> None:
    before = scrape(client)
    first = client.get("/feeds/all.rss?limit=7")
    client.get("/feeds/all.rss?limit=7")
    assert client.get("/feeds/all.rss?limit=7",
                      headers={"If-None-Match": first.headers["ETag"]}).status_code == 304
    client.get("/no/such/page")
    after = scrape(client)
    feed = {"route": FEED_RULE, "method": "GET"}
    assert value(after, "feedsvc_http_requests_total", status="200", **feed) - \
        value(before, "feedsvc_http_requests_total", status="200", **feed) == 2
    assert value(after, "feedsvc_http_requests_total", status="304", **feed) - \
        value(before, "feedsvc_http_requests_total", status="304", **feed) == 1
    assert value(after, "feedsvc_http_requests_total", route="(unmatched)", method="GET",
                 status="404") - value(before, "feedsvc_http_requests_total",
                                       route="(unmatched)", method="GET", status="404") == 1
    assert value(after, "feedsvc_http_not_modified_total") - \
        value(before, "feedsvc_http_not_modified_total") == 1
    for event, moved in (("miss", 1), ("hit", 1)):
        assert value(after, "feedsvc_feed_cache_events_total", event=event) - \
            value(before, "feedsvc_feed_cache_events_total", event=event) == moved
    assert value(after, "feedsvc_feed_render_duration_seconds_count") - \
        value(before, "feedsvc_feed_render_duration_seconds_count") == 1
    assert value(after, "feedsvc_http_request_duration_seconds_count", route=FEED_RULE) - \
        value(before, "feedsvc_http_request_duration_seconds_count", route=FEED_RULE) == 3


def test_dataset_gauges_and_reload_counters(dataset_dir: Path) -> None:
    app = create_app({"FEEDSVC_DATA": str(dataset_dir)})
    client = app.test_client()
    before = scrape(client)
    version = state.live(app).index.version
    assert value(before, "feedsvc_dataset_info", version=version) == 1
    assert value(before, "feedsvc_dataset_releases") == 10
    assert value(before, "feedsvc_dataset_reload_rejected") == 0
    (dataset_dir / "releases" / "pr-2004-001.yaml").unlink()
    assert reloader(app).check() == "reloaded"
    (dataset_dir / "topics.yaml").unlink()
    assert reloader(app).check() == "rejected"
    after = scrape(client)
    assert value(after, "feedsvc_dataset_releases") == 9
    assert value(after, "feedsvc_dataset_reload_rejected") == 1
    for result in ("reloaded", "rejected"):
        assert value(after, "feedsvc_dataset_reloads_total", result=result) - \
            value(before, "feedsvc_dataset_reloads_total", result=result) == 1


def test_with_a_multiprocess_directory_the_scrape_reads_it(tmp_path: Path, app: Flask) -> None:
    app.config["PROMETHEUS_MULTIPROC_DIR"] = str(tmp_path)  # no worker wrote there yet
    samples = scrape(app.test_client())
    assert value(samples, "feedsvc_dataset_releases") == 10
    assert not any(name == "feedsvc_http_requests_total" for name, _ in samples)


def test_metrics_answer_allowed_networks_only_and_name_no_path(dataset_dir: Path) -> None:
    app = create_app({"FEEDSVC_DATA": str(dataset_dir)})
    client = app.test_client()
    body = client.get("/metrics").get_data(as_text=True)  # loopback: the default
    assert "feedsvc_dataset_info" in body and str(dataset_dir) not in body
    # "": a peer on a unix socket (FEEDSVC_BIND=unix:/...) has no address to allow.
    for remote in ("203.0.113.5", "::ffff:203.0.113.5", "2001:db8::1", "10.1.2.3", ""):
        refused = client.get("/metrics", environ_base={"REMOTE_ADDR": remote})
        assert refused.status_code == 403, remote
        assert refused.headers["Cache-Control"] == "no-store" and b"feedsvc_" not in refused.data
    assert client.get("/metrics", environ_base={"REMOTE_ADDR": "::ffff:127.0.0.1"}
                      ).status_code == 200
    scraper = create_app({"FEEDSVC_DATA": str(dataset_dir),
                          "FEEDSVC_METRICS_ALLOW": from_env({"FEEDSVC_METRICS_ALLOW":
                                                             "10.0.0.0/8, 2001:db8::/32"})[
                              "FEEDSVC_METRICS_ALLOW"]}).test_client()
    for remote in ("10.1.2.3", "2001:db8::1"):
        assert scraper.get("/metrics", environ_base={"REMOTE_ADDR": remote}).status_code == 200
    assert scraper.get("/metrics").status_code == 403  # loopback is not in that list


@pytest.mark.parametrize("raw", ["10.0.0.0/33", "localhost", "10.0.0.0/8,,bogus"])
def test_a_bad_metrics_network_stops_the_start_with_one_line(raw: str) -> None:
    with pytest.raises(ConfigError, match="FEEDSVC_METRICS_ALLOW"):
        from_env({"FEEDSVC_METRICS_ALLOW": raw})


def test_the_shipped_deploy_files_let_their_scrapers_in() -> None:
    root = Path(__file__).resolve().parent.parent / "deploy"
    compose = yaml.safe_load((root / "compose.yaml").read_text())["x-app"]["environment"]
    (shipped,) = re.findall(r"\$\{FEEDSVC_METRICS_ALLOW:-([^}]*)\}", compose["FEEDSVC_METRICS_ALLOW"])
    pod = next(doc for doc in yaml.safe_load_all((root / "k8s" / "deployment.yaml").read_text())
               if doc["kind"] == "Deployment")
    (container,) = pod["spec"]["template"]["spec"]["containers"]
    (k8s,) = [e["value"] for e in container["env"] if e["name"] == "FEEDSVC_METRICS_ALLOW"]
    # A compose network (172.16/12 by default) and a cluster's pod network (10/8) get in.
    for raw, scraper in ((shipped, "172.18.0.5"), (k8s, "10.244.1.7")):
        app = create_app({"FEEDSVC_METRICS_ALLOW": from_env({"FEEDSVC_METRICS_ALLOW": raw})[
            "FEEDSVC_METRICS_ALLOW"]})
        assert app.test_client().get("/metrics", environ_base={"REMOTE_ADDR": scraper}
                                     ).status_code == 200
