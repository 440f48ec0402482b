"""Check deploy/compose.yaml against the compose-spec schema and run its nginx.conf.

There is no container engine here: the compose file is validated, not run; nginx
runs for real on loopback in front of two stand-in app servers.
"""

from __future__ import annotations

import http.client
import http.server
import importlib.resources
import json
import os
import re
import shutil
import socket
import subprocess
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import jsonschema
import pytest
import yaml

from .servers import free_port

ROOT = Path(__file__).resolve().parents[1]
DEPLOY = ROOT / "deploy"
COMPOSE = DEPLOY / "compose.yaml"
COMPOSE_NGINX = DEPLOY / "compose" / "nginx.conf"
CONTAINERFILE = DEPLOY / "container" / "Containerfile"

# What the stand-in app servers saw: (their port, path, If-None-Match header).
Seen = list[tuple[int, str, str | None]]


def compose() -> Any:
    return yaml.safe_load(COMPOSE.read_text(encoding="utf-8"))


def test_compose_matches_compose_spec_schema() -> None:
    # check-jsonschema ships the official compose-spec schema in its vendored catalogue.
    vendor = importlib.resources.files("check_jsonschema.builtin_schemas.vendor")
    schema = json.loads(vendor.joinpath("compose-spec.json").read_text(encoding="utf-8"))
    jsonschema.Draft202012Validator(schema).validate(compose())


def test_compose_runs_two_apps_behind_nginx_with_shared_redis() -> None:
    services = compose()["services"]
    assert set(services) == {"app1", "app2", "deliver", "redis", "nginx"}
    for name in ("app1", "app2"):
        app = services[name]
        build = app["build"]
        assert (COMPOSE.parent / build["context"] / build["dockerfile"]).resolve() == CONTAINERFILE
        assert app["environment"]["FEEDSVC_CACHE_URL"].startswith("redis://redis:6379/")
        assert app["environment"]["FEEDSVC_TRUST_PROXY"] == "1"  # behind nginx, one hop
        (data,) = [v for v in app["volumes"] if v["target"] == app["environment"]["FEEDSVC_DATA"]]
        assert data["read_only"] and (COMPOSE.parent / data["source"]).resolve() == ROOT / "data"
        assert app["depends_on"]["redis"]["condition"] == "service_healthy"
    assert services["redis"]["image"] == "redis:7-alpine"
    nginx = services["nginx"]
    assert nginx["image"] == "nginx:stable-alpine"
    conf, *shared = nginx["volumes"]
    assert (COMPOSE.parent / conf["source"]).resolve() == COMPOSE_NGINX
    assert conf["target"] == "/etc/nginx/nginx.conf" and conf["read_only"]
    # One configuration source: the files the plain front includes, mounted beside nginx.conf.
    included = {p.name for p in (DEPLOY / "nginx").glob("feedsvc-*.conf")}
    assert {(COMPOSE.parent / v["source"]).resolve() for v in shared} == {
        DEPLOY / "nginx" / name for name in included}
    assert {v["target"] for v in shared} == {f"/etc/nginx/{name}" for name in included}
    assert all(v["read_only"] for v in shared)
    assert nginx["depends_on"] == {a: {"condition": "service_healthy"} for a in ("app1", "app2")}
    for name, service in services.items():
        assert service["healthcheck"]["test"][0] == "CMD", name


def test_compose_has_one_fediverse_owner_and_its_deliverer_beside_it() -> None:
    """app1 owns the fediverse, with its state in a volume (its keys and followers outlive
    the container); app2 does not; the deliver sidecar runs on app1's state directory."""
    services = compose()["services"]
    app1, app2, deliver = services["app1"], services["app2"], services["deliver"]
    assert app1["environment"]["FEEDSVC_ACTIVITYPUB"] == "owner"
    assert app1["environment"]["FEEDSVC_ACTIVITYPUB_DELIVER"] == "external"
    assert app2["environment"]["FEEDSVC_ACTIVITYPUB"] == "elsewhere"
    assert deliver["command"] == ["feedsvc", "deliver"]
    assert deliver["environment"]["FEEDSVC_ACTIVITYPUB"] == "owner"
    state = app1["environment"]["FEEDSVC_SNAPSHOT_DIR"]
    assert deliver["environment"]["FEEDSVC_SNAPSHOT_DIR"] == state
    assert deliver["environment"]["FEEDSVC_DATA"] == app1["environment"]["FEEDSVC_DATA"]
    (mounted,) = [v for v in app1["volumes"] if v["target"] == state]
    assert mounted["type"] == "volume" and mounted in deliver["volumes"]
    assert mounted["source"] in compose()["volumes"] and state not in app1["tmpfs"]
    assert not deliver["expose"]
    assert deliver["depends_on"] == {"app1": {"condition": "service_healthy"}}


# --- nginx ---------------------------------------------------------------------------



def nginx_conf_for_test(tmp_path: Path, app1_port: int, app2_port: int) -> str:
    """Return compose/nginx.conf pointed at loopback ports, writing only under tmp_path."""
    conf = COMPOSE_NGINX.read_text(encoding="utf-8")
    for volume in compose()["services"]["nginx"]["volumes"][1:]:  # the files it includes
        target = Path(volume["target"])
        assert target.parent == Path("/etc/nginx"), target
        shutil.copy(COMPOSE.parent / volume["source"], tmp_path / target.name)
    assert "server app1:8000" in conf and "server app2:8000" in conf
    # app1/app2 only resolve inside compose's network; everything nginx would write
    # (cache, temp files, pid, error log) goes under tmp_path instead of /var.
    conf = conf.replace("app1:8000", f"127.0.0.1:{app1_port}")
    conf = conf.replace("app2:8000", f"127.0.0.1:{app2_port}")
    conf = conf.replace("/var/cache/nginx/feedsvc", str(tmp_path / "cache"))
    temp_paths = "".join(f"    {kind}_temp_path {tmp_path / kind};\n"
                         for kind in ("client_body", "proxy", "fastcgi", "uwsgi", "scgi"))
    return conf.replace("\nhttp {\n", "\nhttp {\n" + temp_paths, 1)


def test_compose_nginx_conf_passes_nginx_t(tmp_path: Path) -> None:
    (tmp_path / "nginx.conf").write_text(nginx_conf_for_test(tmp_path, 18001, 18002),
                                         encoding="utf-8")
    result = subprocess.run(
        ["nginx", "-t", "-p", str(tmp_path), "-e", str(tmp_path / "error.log"),
         "-c", str(tmp_path / "nginx.conf"), "-g", f"pid {tmp_path / 'nginx.pid'};"],
        capture_output=True, text=True, timeout=30, check=False,
    )
    assert result.returncode == 0, result.stderr
    assert "test is successful" in result.stderr


class FakeApp(http.server.BaseHTTPRequestHandler):
    """Stand in for one feedsvc instance: a cacheable feed, an uncacheable page, 304s."""

    protocol_version = "HTTP/1.1"
    seen: Seen  # set per test, shared by both servers

    def do_GET(self) -> None:
        etag = '"v1"'
        upstream = self.connection.getsockname()[1]
        self.seen.append((upstream, self.path, self.headers.get("If-None-Match")))
        cache = "public, max-age=60" if self.path.startswith("/feeds/") else "no-store"
        status = 304 if self.headers.get("If-None-Match") == etag else 200
        body = b"" if status == 304 else b"<rss/>"
        self.send_response(status)
        self.send_header("ETag", etag)
        self.send_header("Cache-Control", cache)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, format: str, *args: object) -> None:
        """Keep the test output quiet."""


@pytest.fixture
def compose_nginx(tmp_path: Path) -> Iterator[tuple[int, Seen]]:
    """Run the compose nginx.conf on loopback in front of two FakeApp servers."""
    seen: Seen = []
    handler = type("Handler", (FakeApp,), {"seen": seen})
    apps = [http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler) for _ in range(2)]
    for app in apps:
        threading.Thread(target=app.serve_forever, daemon=True).start()
    port = free_port()
    conf = nginx_conf_for_test(tmp_path, *(app.server_address[1] for app in apps))
    conf = conf.replace("listen 80 default_server;", f"listen 127.0.0.1:{port} default_server;")
    (tmp_path / "nginx.conf").write_text(conf, encoding="utf-8")
    user = "user root; " if os.geteuid() == 0 else ""  # workers must reach tmp_path
    with open(tmp_path / "nginx.out", "wb") as out:
        nginx = subprocess.Popen(
            ["nginx", "-p", str(tmp_path), "-e", str(tmp_path / "error.log"),
             "-c", str(tmp_path / "nginx.conf"),
             "-g", f"{user}daemon off; pid {tmp_path / 'nginx.pid'};"],
            stdout=out, stderr=subprocess.STDOUT,
        )
    try:
        wait_for_port(port, nginx)
        yield port, seen
    finally:
        nginx.terminate()
        nginx.wait(timeout=10)
        for app in apps:
            app.shutdown()
            app.server_close()


def wait_for_port(port: int, process: subprocess.Popen[bytes]) -> None:
    for _ in range(100):
        assert process.poll() is None, "nginx exited at start-up"
        with socket.socket() as probe:
            if probe.connect_ex(("127.0.0.1", port)) == 0:
                return
        time.sleep(0.05)  # waiting for a real process to bind, not controlling time
    raise AssertionError("nginx did not listen within 5 s")


def get(port: int, path: str, **headers: str) -> http.client.HTTPResponse:
    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=5)
    try:
        connection.request("GET", path, headers=headers)
        response = connection.getresponse()
        response.read()
        return response
    finally:
        connection.close()


def test_compose_nginx_balances_caches_and_passes_validators(
    compose_nginx: tuple[int, Seen],
) -> None:
    port, seen = compose_nginx
    assert get(port, "/nginx-healthz").status == 200
    assert get(port, "/metrics").status == 404
    for _ in range(4):
        assert get(port, "/about").status == 200  # no-store: never cached
    assert len({upstream for upstream, path, _ in seen if path == "/about"}) == 2
    first, second = get(port, "/feeds/all.rss"), get(port, "/feeds/all.rss")
    assert (first.getheader("X-Cache-Status"), second.getheader("X-Cache-Status")) == (
        "MISS", "HIT")
    assert [path for _, path, _ in seen].count("/feeds/all.rss") == 1
    # A fresh cached copy answers a conditional request; without one the app gets its validators.
    conditional = get(port, "/feeds/all.rss", **{"If-None-Match": '"v1"'})
    assert conditional.status == 304
    assert [path for _, path, _ in seen].count("/feeds/all.rss") == 1
    conditional = get(port, "/feeds/all.atom", **{"If-None-Match": '"v1"'})
    assert conditional.status == 304
    assert seen[-1][1:] == ("/feeds/all.atom", '"v1"')
    assert "/metrics" not in [path for _, path, _ in seen]


def get_from(port: int, path: str, source: str) -> int:
    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=5,
                                            source_address=(source, 0))
    try:
        connection.request("GET", path)
        response = connection.getresponse()
        response.read()
        return response.status
    finally:
        connection.close()


def test_compose_nginx_keeps_readiness_private_and_limits_costly_queries(
    compose_nginx: tuple[int, Seen],
) -> None:
    port, seen = compose_nginx
    # Other hosts are other loopback addresses here; the compose healthchecks ask each app.
    assert get_from(port, "/readyz", "127.0.0.2") == 403
    assert get_from(port, "/metrics", "127.0.0.2") == 404
    assert get_from(port, "/readyz", "127.0.0.1") == 200
    assert get_from(port, "/healthz", "127.0.0.2") == 200
    statuses = [get_from(port, "/?q=employment", "127.0.0.3") for _ in range(40)]
    assert statuses[:21] == [200] * 21 and 429 in statuses, statuses
    assert get_from(port, "/", "127.0.0.3") == 200
    assert [path for _, path, _ in seen].count("/?q=employment") == statuses.count(200)


def test_compose_nginx_sends_the_fediverse_to_the_owner_alone(
    compose_nginx: tuple[int, Seen], tmp_path: Path,
) -> None:
    """app1 is the owner (compose.yaml): its actors, inboxes, WebFinger, NodeInfo and the
    ActivityStreams answers of countries and topics reach app1 only; their HTML, both."""
    port, seen = compose_nginx
    assert compose()["services"]["app1"]["environment"]["FEEDSVC_ACTIVITYPUB"] == "owner"
    conf = (tmp_path / "nginx.conf").read_text(encoding="utf-8")
    app1 = int(re.findall(r"server 127\.0\.0\.1:(\d+)", conf)[0])  # upstream feedsvc's first
    owner = re.search(r"upstream feedsvc_owner \{\s*server 127\.0\.0\.1:(\d+);", conf)
    assert owner is not None and int(owner[1]) == app1
    activity = {"Accept": "application/activity+json"}
    paths = ["/ap/actors/th", "/.well-known/webfinger?resource=acct:th@localhost",
             "/.well-known/nodeinfo", "/nodeinfo/2.1"]
    for _ in range(4):
        for path in paths:
            assert get(port, path).status == 200
        assert get(port, "/countries/th", **activity).status == 200
    assert {upstream for upstream, path, _ in seen} == {app1}
    for _ in range(4):
        assert get(port, "/countries/th").status == 200
    assert len({upstream for upstream, _, _ in seen}) == 2
