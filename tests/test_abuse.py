"""Header and cache abuse: forged hosts, junk parameters that would grow the cache, traversal."""
from __future__ import annotations

import re

import pytest
from flask import Flask

from feedsvc import create_app, state
from feedsvc.config import BUNDLED_DATA, ConfigError, from_env

PUBLIC = "https://feeds.example.org/"


def build(**config: object) -> Flask:
    return create_app({"FEEDSVC_DATA": str(BUNDLED_DATA), "FEEDSVC_BASE_URL": None, **config})


def entries(app: Flask) -> int:
    """Return how many bodies the worker's cache (its bounded local tier) holds."""
    return len(state.feed_cache(app).local)


def test_a_forged_host_is_in_the_cache_key_and_never_served_to_others() -> None:
    app = build()
    client = app.test_client()
    forged = client.get("/feeds/all.atom", headers={"Host": "evil.example"})
    assert b"http://evil.example/" in forged.data
    honest = client.get("/feeds/all.atom", headers={"Host": "feeds.example.org"})
    assert b"evil.example" not in honest.data and b"http://feeds.example.org/" in honest.data
    assert entries(app) == 2  # one per host


@pytest.mark.parametrize("path", ["/feeds/all.rss", "/feeds/countries/th.json", "/",
                                  "/releases/pr-2004-001"])
def test_x_forwarded_host_is_ignored_unless_a_proxy_is_trusted(path: str) -> None:
    forged = {"X-Forwarded-Host": "evil.example", "X-Forwarded-Proto": "https",
              "Host": "feeds.example.org"}
    body = build().test_client().get(path, headers=forged).data
    assert b"evil.example" not in body and b"http://feeds.example.org/" in body
    trusting = build(FEEDSVC_TRUST_PROXY=1).test_client().get(path, headers=forged).data
    assert b"https://evil.example/" in trusting  # the operator said a proxy sets it


def test_with_a_base_url_the_request_host_is_irrelevant() -> None:
    app = build(FEEDSVC_BASE_URL=PUBLIC)
    client = app.test_client()
    bodies = {client.get("/feeds/all.rss", headers={"Host": host, "X-Forwarded-Host": host}).data
              for host in ("evil.example", "feeds.example.org", "x.test:8080")}
    assert len(bodies) == 1 and b"evil" not in bodies.pop()
    assert entries(app) == 1


def test_allowed_hosts_refuse_other_hosts_with_400() -> None:
    app = build(FEEDSVC_ALLOWED_HOSTS=["feeds.example.org", ".example.net"])
    client = app.test_client()
    assert client.get("/feeds/all.rss", headers={"Host": "feeds.example.org"}).status_code == 200
    assert client.get("/", headers={"Host": "www.example.net"}).status_code == 200
    for path in ("/feeds/all.rss", "/", "/nope"):
        refused = client.get(path, headers={"Host": "evil.example"})
        assert refused.status_code == 400 and b"not trusted" in refused.data
    assert entries(app) == 2  # the feed and the home page


def test_allowed_hosts_are_checked_when_configured() -> None:
    assert from_env({"FEEDSVC_ALLOWED_HOSTS": " Feeds.example.org, .example.net "})[
        "FEEDSVC_ALLOWED_HOSTS"] == ["feeds.example.org", ".example.net"]
    assert from_env({"FEEDSVC_ALLOWED_HOSTS": "LOCALHOST:8000,[::1]:8000"})[
        "FEEDSVC_ALLOWED_HOSTS"] == ["localhost:8000", "[::1]:8000"]
    for bad in ("https://feeds.example.org", "feeds.example.org:0", "feeds.example.org:x",
                "feeds.example.org/feeds"):
        with pytest.raises(ConfigError, match="FEEDSVC_ALLOWED_HOSTS"):
            from_env({"FEEDSVC_ALLOWED_HOSTS": bad})
    with pytest.raises(ConfigError, match="FEEDSVC_TRUST_PROXY"):
        from_env({"FEEDSVC_TRUST_PROXY": "yes"})


def test_allowed_hosts_compare_names_in_any_case_and_ports_exactly() -> None:
    app = build(FEEDSVC_ALLOWED_HOSTS=["feeds.example.org", ".example.net", "localhost:8000",
                                       "[::1]:8000"])
    client = app.test_client()
    for host in ("FEEDS.EXAMPLE.ORG", "Feeds.Example.Org:80", "WWW.example.NET", "localhost:8000",
                 "LocalHost:8000", "[::1]:8000"):
        response = client.get("/feeds/all.atom", headers={"Host": host})
        assert response.status_code == 200, host
        links = {link for link in re.findall(rb'href="([^"]+)"', response.data)}
        assert links and all(link.startswith(f"http://{host.lower().removesuffix(':80')}/".encode())
                             for link in links), (host, links)
    for host in ("feeds.example.org:6666", "www.example.net:8080", "localhost", "localhost:8001",
                 "FEEDS.EXAMPLE.ORG:6666", "[::1]", "[::1]:8001", "evil.example"):
        for path in ("/feeds/all.rss", "/", "/healthz"):
            refused = client.get(path, headers={"Host": host})
            assert refused.status_code == 400, (host, path)


def test_without_allowed_hosts_any_case_is_the_same_host() -> None:
    client = build().test_client()
    upper = client.get("/feeds/all.atom", headers={"Host": "FEEDS.Example.ORG"})
    lower = client.get("/feeds/all.atom", headers={"Host": "feeds.example.org"})
    assert upper.status_code == 200 and upper.data == lower.data


@pytest.mark.parametrize("host", ["a b", "evil\x00.example", "<x>", "a\"b", "é.example", ""])
def test_a_host_that_is_not_a_host_name_gets_400_not_broken_links(host: str) -> None:
    client = build().test_client()
    for path in ("/feeds/all.rss", "/"):
        response = client.get(path, headers={"Host": host})
        assert response.status_code == 400, (path, host)
        assert b"Host header" in response.data


def test_thousands_of_junk_parameters_share_one_cache_entry() -> None:
    app = build(FEEDSVC_BASE_URL=PUBLIC)
    client = app.test_client()
    first = client.get("/feeds/all.json").data
    for n in range(3000):
        response = client.get(f"/feeds/all.json?utm_{n}={n}&junk{n}=%00{n}&fbclid={n}")
        assert response.data == first
    assert entries(app) == 1
    assert state.feed_cache(app).misses == 1


def test_thousands_of_valid_queries_stay_within_the_cache_bound() -> None:
    app = build(FEEDSVC_BASE_URL=PUBLIC, FEEDSVC_CACHE_ENTRIES=100)
    client = app.test_client()
    for n in range(2000):
        assert client.get(f"/feeds/all.rss?q=word{n}").status_code == 200
        assert entries(app) <= 100
    assert state.feed_cache(app).misses == 2000


@pytest.mark.parametrize("path", [
    "/feeds/countries/..%2f..%2fetc%2fpasswd.rss", "/feeds/countries/..%252f..%252fetc%252fpasswd.rss",
    "/feeds/countries/../../etc/passwd.rss", "/feeds/topics/..%2f..%2fetc%2fpasswd.atom",
    "/feeds/%2e%2e/%2e%2e/etc/passwd", "/releases/..%2f..%2fetc%2fpasswd",
    "/releases/..%252f..%252fetc%252fpasswd", "/releases/%2e%2e%2f%2e%2e%2fetc%2fpasswd",
    "/static/..%2f..%2fetc%2fpasswd", "/static/../../etc/passwd", "/static/%2e%2e/pyproject.toml",
    "/topics/..%2f..%2fdata%2fsite.yaml", "/countries/..%5c..%5cetc%5cpasswd",
    "/releases/....//....//etc/passwd", "/feeds/countries/%c0%ae%c0%ae%2fetc%2fpasswd.rss",
])
def test_path_traversal_gets_404(path: str) -> None:
    response = build(FEEDSVC_BASE_URL=PUBLIC).test_client().get(path)
    assert response.status_code == 404, path
    assert b"root:" not in response.data and b"[project]" not in response.data


@pytest.mark.parametrize("path", ["/", "/feeds/all.rss", "/healthz", "/embed.js",
                                  "/releases/pr-2005-001", "/feeds/"])
@pytest.mark.parametrize("accept", ["text/html", "*/*", ""])
def test_405_bodies_are_what_their_content_type_says(path: str, accept: str) -> None:
    client = build(FEEDSVC_BASE_URL=PUBLIC).test_client()
    response = client.post(path, headers={"Accept": accept} if accept else {})
    assert response.status_code == 405
    assert "GET" in response.headers["Allow"] and "POST" not in response.headers["Allow"]
    text = response.get_data(as_text=True)
    if response.mimetype == "text/html":
        assert text.lstrip().lower().startswith("<!doctype html>")
    else:
        assert response.mimetype == "text/plain" and text.startswith("405 Method Not Allowed")


@pytest.mark.parametrize("headers", [
    {"Host": "evil.example"},
    {"Host": "feeds.example.org", "X-Forwarded-Port": "6666"},
    {"Host": "feeds.example.org", "X-Forwarded-Host": "evil.example"},
])
@pytest.mark.parametrize("path", ["/feeds/all.rss", "/", "/nope"])
def test_a_refused_host_is_never_stored_by_a_shared_cache(headers: dict[str, str],
                                                          path: str) -> None:
    # A shared cache keys on the host at most, never on X-Forwarded-*: one forged request
    # must not have the cache refuse everyone. Other errors stay briefly cacheable.
    client = build(FEEDSVC_TRUST_PROXY=1,
                   FEEDSVC_ALLOWED_HOSTS=["feeds.example.org"]).test_client()
    refused = client.get(path, headers=headers)
    assert refused.status_code == 400 and refused.headers["Cache-Control"] == "no-store"
    missing = client.get("/nope", headers={"Host": "feeds.example.org"})
    assert missing.status_code == 404 and missing.headers["Cache-Control"].startswith("public")


def test_a_request_without_a_usable_host_is_refused_and_not_stored() -> None:
    refused = build().test_client().get("/feeds/all.rss", headers={"Host": ""})
    assert refused.status_code == 400 and refused.headers["Cache-Control"] == "no-store"


@pytest.mark.parametrize(("path", "target"), [
    ("/feeds", "feeds/"), ("/feeds//all.rss?country=th", "feeds/all.rss?country=th"),
    ("/releases//pr-2004-001", "releases/pr-2004-001")])
def test_werkzeugs_redirects_name_the_base_url_not_the_request_host(path: str,
                                                                     target: str) -> None:
    client = build(FEEDSVC_BASE_URL=PUBLIC + "news/").test_client()
    moved = client.get(path, headers={"Host": "evil.example", "X-Forwarded-Host": "evil.example"})
    assert (moved.status_code, moved.headers["Location"]) == (308, f"{PUBLIC}news/{target}")
    assert client.get("/" + target).status_code == 200
    # Without a base URL the request's host is the service's name, as in every link.
    moved = build().test_client().get(path, headers={"Host": "feeds.example.org"})
    assert moved.headers["Location"] == f"http://feeds.example.org/{target}"
