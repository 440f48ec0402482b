"""Fuzz every route of the URL map: paths, query strings and headers. Never a 5xx; every 4xx
says why; every 200 feed parses."""
from __future__ import annotations

import gzip
import json
from pathlib import Path
from urllib.parse import quote, urlencode

import feedparser
import pytest
from flask import Flask
from hypothesis import given
from hypothesis import strategies as st
from werkzeug.routing import AnyConverter, Rule
from werkzeug.test import TestResponse

from feedsvc import create_app
from feedsvc.config import BUNDLED_DATA

from .routes import ACTIVITY, BASE_URL, every_route_app, path, reads, rules, values

KNOWN = ("country", "topic", "q", "since", "limit", "before", "page", "format", "callback",
         "resource")
JSON_FEED_KEYS = {"version", "title", "items"}
JSON_ITEM_KEYS = {"id"}

# Text a client may send: any code point, including NUL, controls, surrogates' neighbours, RTL.
junk = st.one_of(
    st.text(max_size=40),
    st.sampled_from(["", "..", "../..", "%00", "%zz", "%", "%2f", "%252e", "\x00", "th,", ",,",
                     "TH", "ıt", "ſe", "0000-01-01", "9999-12-31", "-1", "1e3", "٣", "nan",
                     "<script>", "]]>", "\u202e", "\ufeff", "a" * 5000]),
    st.integers(-10**30, 10**30).map(str),
)
# Header values travel as latin-1 and cannot hold CR or LF.
header_text = st.text(st.characters(min_codepoint=0, max_codepoint=255,
                                    blacklist_characters="\r\n"), max_size=60)


@pytest.fixture(scope="module")
def fuzz_app() -> Flask:
    # No base URL: the Host header decides every link, the most exposed configuration.
    return create_app({"FEEDSVC_DATA": str(BUNDLED_DATA), "FEEDSVC_BASE_URL": None})


@pytest.fixture(scope="module")
def federated_app(tmp_path_factory: pytest.TempPathFactory) -> Flask:
    # The fediverse's routes exist only with a public base URL and a state directory.
    return create_app({"FEEDSVC_DATA": str(BUNDLED_DATA), "FEEDSVC_BASE_URL": BASE_URL,
                       "FEEDSVC_SNAPSHOT_DIR": str(tmp_path_factory.mktemp("state"))})


@st.composite
def paths(draw: st.DrawFn, app: Flask, rule: Rule | None = None) -> str:
    """Draw a route (or take `rule`) and fill each argument with a valid value or junk,
    quoted in some way."""
    rule = rule or draw(st.sampled_from(rules(app)))
    arguments = values(app, rule, draw(st.integers(0, 2)))
    for name, converter in rule._converters.items():
        if isinstance(converter, AnyConverter) and draw(st.booleans()):
            continue
        if draw(st.booleans()):
            raw = draw(junk)
            arguments[name] = draw(st.sampled_from([
                quote(raw, safe=""), quote(raw, safe="/%"), quote(quote(raw, safe=""), safe="")]))
    path = rule.rule
    for name in rule.arguments:
        start = path.index("<")
        path = path[:start] + arguments[name] + path[path.index(">", start) + 1:]
    return path


queries = st.lists(st.tuples(st.one_of(st.sampled_from(KNOWN), junk), junk), max_size=8)
raw_queries = st.sampled_from(["", "q=%zz", "limit=%00", "country=%ff%fe", "&&&==&", "q=" + "%" * 50,
                               "topic=" + ",".join(["x"] * 200), "a[]=1&a[]=2", "since=%2B"])
headers = st.fixed_dictionaries({}, optional={
    "If-None-Match": st.one_of(header_text, st.just('"abc", W/"def", *')),
    "If-Modified-Since": st.one_of(header_text, st.sampled_from([
        "Mon, 01 Jan 0001 00:00:00 GMT", "Fri, 31 Dec 9999 23:59:59 GMT",
        "Fri, 31 Dec 99999999999 23:59:59 GMT", "Sat, 30 Feb 2005 00:00:00 GMT"])),
    "Accept-Encoding": st.one_of(header_text, st.sampled_from(["gzip;q=nan", "gzip;q=1e999", "*"])),
    "Accept": st.one_of(header_text, st.just("text/html;q=abc")),
    "Host": st.one_of(header_text, st.sampled_from(["evil.example", "[::1]:80", "a:b:c", "x" * 300])),
    "X-Forwarded-Host": header_text,
    "X-Forwarded-Proto": header_text,
})


def check(response: TestResponse) -> None:
    """Assert what holds for every response, whatever was asked."""
    status = response.status_code
    assert status < 500, response.get_data(as_text=True)[:500]
    assert response.headers.get("X-Content-Type-Options") == "nosniff"
    body = response.data
    if response.headers.get("Content-Encoding") == "gzip":
        body = gzip.decompress(body)
    if 400 <= status < 500 and response.request.method != "HEAD":
        assert body.strip(), f"{status} without a message"
    if status == 200 and response.request.method != "HEAD":
        mimetype = response.mimetype
        if mimetype in ("application/rss+xml", "application/atom+xml"):
            parsed = feedparser.parse(body)
            assert parsed.bozo == 0, parsed.get("bozo_exception")
        elif mimetype == "application/feed+json":
            feed = json.loads(body)
            assert JSON_FEED_KEYS <= feed.keys()
            assert all(JSON_ITEM_KEYS <= item.keys() for item in feed["items"])
        elif mimetype == ACTIVITY:
            assert {"@context", "id", "type"} <= json.loads(body).keys()
        elif (mimetype or "").endswith("json"):  # WebFinger's JRD, NodeInfo, health
            assert isinstance(json.loads(body), dict)


@given(data=st.data(), query=queries, raw=raw_queries, sent=headers)
def test_no_request_gets_a_5xx_and_every_answer_is_well_formed(
        fuzz_app: Flask, data: st.DataObject, query: list[tuple[str, str]], raw: str,
        sent: dict[str, str]) -> None:
    path = data.draw(paths(fuzz_app))
    query_string = "&".join(q for q in (urlencode(query), raw) if q)
    client = fuzz_app.test_client()
    check(client.get(path, query_string=query_string, headers=sent))


@given(data=st.data(), query=queries)
def test_repeated_and_huge_parameters_on_every_route(
        fuzz_app: Flask, data: st.DataObject, query: list[tuple[str, str]]) -> None:
    path = data.draw(paths(fuzz_app))
    name = data.draw(st.sampled_from(KNOWN))
    repeated = [(name, data.draw(junk)) for _ in range(data.draw(st.integers(2, 60)))]
    huge = [(data.draw(st.sampled_from(KNOWN)), "x" * 100_000)]
    client = fuzz_app.test_client()
    for pairs in (query + repeated, huge):
        check(client.get(path, query_string=urlencode(pairs)))
        check(client.head(path, query_string=urlencode(pairs)))


# What a fediverse server may send: ActivityStreams asked for in its forms, or junk.
activity_accept = st.one_of(header_text, st.sampled_from([
    ACTIVITY, 'application/ld+json; profile="https://www.w3.org/ns/activitystreams"',
    f"{ACTIVITY};q=nan", f"text/html;q=0.9, {ACTIVITY};q=0.9", f"{ACTIVITY};q=0, */*",
    "application/ld+json", "application/json"]))
signature = st.one_of(header_text, st.sampled_from([
    'keyId="https://social.example/users/a#main-key",headers="(request-target) host date",'
    'signature="AAAA"', 'keyId="http://10.0.0.1/k",signature="x"', 'keyId=""', 'keyId="#"',
    'sig1=("@method");keyid="https://social.example/k"']))


@given(data=st.data(), query=queries, sent=headers, accept=activity_accept, signed=signature,
       body=st.one_of(st.binary(max_size=200), st.sampled_from(
           [b"{}", b"[]", b"null", b'{"type": "Follow", "actor": 1}', b"{" * 5000])))
def test_no_fediverse_request_gets_a_5xx(
        federated_app: Flask, data: st.DataObject, query: list[tuple[str, str]],
        sent: dict[str, str], accept: str, signed: str, body: bytes) -> None:
    # The fediverse's routes and the pages that are also its objects, as a fediverse server
    # asks for them: with an ActivityStreams Accept; inboxes with a POST, a signature and a
    # body that are junk or nearly right.
    rule = data.draw(st.sampled_from([r for r in rules(federated_app)
                                      if r.endpoint.startswith(("activitypub.", "pages."))]))
    target = data.draw(paths(federated_app, rule))
    client = federated_app.test_client()
    sent = {**sent, "Accept": accept}
    if reads(rule):
        check(client.get(target, query_string=urlencode(query), headers=sent))
    else:
        sent = {**sent, data.draw(st.sampled_from(["Signature", "Signature-Input"])): signed}
        check(client.post(target, data=body, headers=sent, base_url=BASE_URL))


def test_every_route_answers_its_valid_example(tmp_path: Path) -> None:
    # A dataset in which every route's example exists (a picture, sitemap parts), federation
    # on: each is a 200, and an inbox (POSTs only) a 405 with the POST it allows.
    app = every_route_app(tmp_path / "data")
    client = app.test_client()
    for rule in rules(app):
        for choice in range(3):
            built = path(rule, values(app, rule, choice))
            response = client.get(built)
            if not reads(rule):
                assert response.status_code == 405 and "POST" in response.headers["Allow"]
                continue
            assert response.status_code == 200, (built, response.status_code)
            check(response)
            if response.mimetype == "text/html":  # a page that is also an ActivityPub object?
                check(client.get(built, headers={"Accept": ACTIVITY}))
