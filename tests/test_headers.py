"""Security headers on every route (found in the URL map), every status, and through gunicorn."""
from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from http.client import HTTPConnection
from pathlib import Path

import pytest
from flask import Flask
from flask.testing import FlaskClient
from werkzeug.exceptions import HTTPException
from werkzeug.test import TestResponse

from feedsvc.http import headers

from .routes import ACTIVITY, METHODS, every_route_app, example_paths

ROOT = Path(__file__).resolve().parent.parent
FEED_TYPES = ("application/rss+xml", "application/atom+xml", "application/feed+json")


def directives(response: TestResponse) -> dict[str, str]:
    csp = response.headers.get("Content-Security-Policy", "")
    return {d.split()[0]: d.strip() for d in csp.split(";") if d.strip()}


def assert_common(response: TestResponse) -> None:
    assert response.headers.get("X-Content-Type-Options") == "nosniff"
    assert response.headers.get("Referrer-Policy") == headers.REFERRER_POLICY
    csp = directives(response)
    assert csp.get("default-src") == "default-src 'none'"
    assert "'unsafe-eval'" not in str(csp)
    assert all(s.startswith("'sha256-") or s == "'self'"
               for s in csp.get("script-src", "x 'self'").split()[1:])
    assert "Access-Control-Allow-Credentials" not in response.headers
    if response.mimetype == "text/html":
        assert csp["base-uri"] == "base-uri 'none'"
        assert csp["form-action"] in ("form-action 'self'", "form-action 'none'")
        assert csp.get("img-src", "img-src 'self'") in (
            "img-src 'self'", "img-src 'self' https:", "img-src 'self' data: https:")
        assert csp["style-src"] in ("style-src 'unsafe-inline'",
                                    "style-src 'self' 'unsafe-inline'") or all(
            s.startswith("'sha256-") for s in csp["style-src"].split()[1:])


def cors_route(app: Flask, path: str) -> bool:
    try:
        endpoint, _ = app.url_map.bind("localhost").match(path.partition("?")[0])
    except HTTPException:
        return False
    return headers.policy_for(endpoint).cors


@pytest.fixture
def swept(tmp_path: Path) -> Flask:
    """The app with every route's example (the fediverse's too: a base URL, a state dir)."""
    return every_route_app(tmp_path / "data")


def test_every_route_and_method_has_the_security_headers(swept: Flask) -> None:
    app, client = swept, swept.test_client()
    paths = [*example_paths(app), *example_paths(app, read=False)]
    assert len(paths) >= 14 and "/ap/inbox" in paths and "/ap/actors/th" in paths
    for path in [*paths, "/no/such/page", "/feeds/no-such.rss", "/feeds/countries/TH.rss"]:
        for method in METHODS:
            response = client.open(path, method=method)
            assert response.status_code < 500, (method, path)
            assert_common(response)
            cors = "Access-Control-Allow-Origin" in response.headers
            assert not cors or (method in ("GET", "HEAD") and cors_route(app, path)), (method, path)


def test_html_pages_may_not_be_framed_and_embed_routes_may(swept: Flask) -> None:
    app, client = swept, swept.test_client()
    pages = [p for p in example_paths(app) if not p.startswith(("/feeds/", "/static/"))]
    for path in pages:
        response = client.get(path)
        if response.mimetype != "text/html":
            continue
        endpoint, _ = app.url_map.bind("localhost").match(path)
        embed = headers.policy_for(endpoint) is headers.EMBED
        expected = "frame-ancestors *" if embed else "frame-ancestors 'none'"
        assert directives(response)["frame-ancestors"] == expected, path
    assert directives(client.get("/"))["frame-ancestors"] == "frame-ancestors 'none'"
    assert directives(client.get("/nope"))["frame-ancestors"] == "frame-ancestors 'none'"


def test_the_policy_table_decides_by_endpoint_then_blueprint() -> None:
    assert headers.policy_for("feeds.topic") is headers.FEED
    assert headers.policy_for("embed.anything") is headers.EMBED
    assert headers.policy_for("pages.home") is headers.PAGE
    assert headers.policy_for(None) is headers.PAGE
    assert "frame-ancestors *" in headers.EMBED.html_csp
    assert headers.EMBED.html_csp.replace("frame-ancestors *", "") == \
        headers.PAGE.html_csp.replace("frame-ancestors 'none'", "")


def test_cors_only_on_feed_gets_including_304_and_errors(client: FlaskClient, app: Flask) -> None:
    feeds = [p for p in example_paths(app) if p.startswith("/feeds/")]
    for path in feeds:
        response = client.get(path)
        if response.mimetype in FEED_TYPES:
            assert response.headers["Access-Control-Allow-Origin"] == "*", path
            again = client.get(path, headers={"If-None-Match": response.headers["ETag"]})
            assert again.status_code == 304
            assert_common(again)
            assert again.headers["Access-Control-Allow-Origin"] == "*"
    bad = client.get("/feeds/all.rss?limit=0")
    assert bad.status_code == 400 and bad.headers["Access-Control-Allow-Origin"] == "*"
    for path in ("/", "/countries/th", "/releases/pr-2004-001", "/nope"):
        assert "Access-Control-Allow-Origin" not in client.get(path).headers, path


def test_redirects_carry_the_headers(client: FlaskClient) -> None:
    response = client.get("/feeds/countries/TH.atom?q=x")
    assert response.status_code == 301
    assert_common(response)


def test_non_get_methods_get_405_with_allow(tmp_path: Path) -> None:
    app = every_route_app(tmp_path / "data")  # every route's example exists: none is a 404
    client = app.test_client()
    paths, inboxes = example_paths(app), example_paths(app, read=False)
    assert len(paths) + len(inboxes) >= len(list(app.url_map.iter_rules()))
    for path in paths:
        assert client.get(path).status_code == 200, path
        for method in ("POST", "PUT", "PATCH", "DELETE"):
            response = client.open(path, method=method)
            assert response.status_code == 405, (method, path)
            assert "GET" in response.headers["Allow"], path
            assert response.get_data(as_text=True).strip(), path
    assert inboxes, "the fediverse's inboxes are swept too"
    for path in inboxes:  # they take POSTs only: an unsigned one is told why it is refused
        unsigned = client.post(path, json={"type": "Follow"})
        assert unsigned.status_code == 401 and unsigned.get_data(as_text=True).strip(), path
        assert_common(unsigned)
        for method in ("GET", "PUT", "PATCH", "DELETE"):
            response = client.open(path, method=method)
            assert response.status_code == 405, (method, path)
            assert "POST" in response.headers["Allow"], path
            assert_common(response)


def test_activitystreams_answers_have_the_headers_and_vary(swept: Flask) -> None:
    app, client = swept, swept.test_client()
    negotiated = 0
    for path in example_paths(app):
        response = client.get(path, headers={"Accept": ACTIVITY})
        assert response.status_code == 200, path
        assert_common(response)
        page = client.get(path)
        if page.mimetype == "text/html" and response.mimetype == ACTIVITY:  # one URL, two answers
            negotiated += 1
            assert json.loads(response.data)["@context"], path
            for answer in (page, response):
                assert "Accept" in answer.headers["Vary"].replace(" ", "").split(","), path
    assert negotiated >= 4  # the home page, a release, a country, a topic


@pytest.fixture
def gunicorn(tmp_path: Path) -> Iterator[int]:
    """Run the shipped gunicorn settings on a free loopback port; yield the port."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    env = {**os.environ, "FEEDSVC_BIND": f"127.0.0.1:{port}", "FEEDSVC_WORKERS": "1",
           "FEEDSVC_BASE_URL": "https://feeds.example.org/", "FEEDSVC_RELOAD_INTERVAL": "0",
           "TMPDIR": str(tmp_path)}  # its temporary directories: not in /tmp if it is killed
    log = (tmp_path / "gunicorn.log").open("wb")
    server = subprocess.Popen(
        [sys.executable, "-m", "gunicorn", "-c", "deploy/gunicorn.conf.py", "wsgi:app"],
        cwd=ROOT, env=env, stdout=log, stderr=subprocess.STDOUT)
    try:
        deadline = time.monotonic() + 30
        while True:
            assert server.poll() is None, (tmp_path / "gunicorn.log").read_text()
            try:
                socket.create_connection(("127.0.0.1", port), timeout=1).close()
                break
            except OSError:
                assert time.monotonic() < deadline, "gunicorn did not start"
                time.sleep(0.05)  # polling for the port, not timing anything
        yield port
    finally:
        server.terminate()
        server.wait(timeout=30)
        log.close()


def test_gunicorn_does_not_disclose_the_server_software(gunicorn: int) -> None:
    for path in ("/feeds/all.rss", "/", "/nope"):
        connection = HTTPConnection("127.0.0.1", gunicorn, timeout=10)
        connection.request("GET", path)
        response = connection.getresponse()
        response.read()
        connection.close()
        assert response.status < 500
        assert response.getheader("Server") == "feedsvc", path
        everything = " ".join(f"{k}: {v}" for k, v in response.getheaders()).lower()
        assert "gunicorn" not in everything and "werkzeug" not in everything
        assert "python" not in everything
        assert response.getheader("X-Content-Type-Options") == "nosniff"
