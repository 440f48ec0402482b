"""Odd conditional headers and odd methods (issue 11, section 4): an If-Modified-Since or
If-None-Match that does not parse, or names a date no clock holds, is ignored (RFC 9110
13.1.3), on every cacheable route, whether the fast path or Flask answers; a 405 says what it
is in the type it is sent as, and which methods are allowed."""
from __future__ import annotations

import gzip

import pytest
from flask import Flask
from hypothesis import given
from hypothesis import strategies as st

from feedsvc.http.fastpath import fast_path

from .conftest import build
from .routes import example_paths

ABSURD_DATES = (
    "Fri, 31 Dec 99999999999 23:59:59 GMT",  # overflows a C int on its way to a datetime
    "Fri, 31 Dec 10000 23:59:59 GMT",
    "Sun, 06 Nov 1994 08:49:37 +9999",  # an offset of four days
    "Sun, 06 Nov 1994 99:99:99 GMT",
    "Thu, 31 Feb 2005 00:00:00 GMT",
    "yesterday",
    "",
    "0",
    "-1",
    "1e999",
    "Fri, 31 Dec " + "9" * 4000 + " 23:59:59 GMT",
)
# Bodies of the code (the bundled data names no icon), not of the dataset: no Last-Modified
# (test_last_modified.py).
UNDATED = ("/embed.js", "/feeds/feed.xsl", "/favicon.ico")
ODD_ETAGS = ('"unterminated', 'W/', ",,,,", "W/W/W/", '"a" "b"', "\x7f\xff", "x" * 8000,
             ", ".join(f'"{n}"' for n in range(1000)))


def cacheable_paths(app: Flask) -> list[str]:
    """Return the example path of every route whose answer carries validators: the cacheable ones."""
    client = app.test_client()
    found = [path for path in example_paths(app)
             if (response := client.get(path)).status_code == 200 and "ETag" in response.headers]
    return found


@pytest.fixture(params=["fast-path", "flask"], scope="module")
def app(request: pytest.FixtureRequest) -> Flask:
    return build(FEEDSVC_FAST_PATH=request.param == "fast-path")


def test_every_cacheable_route_is_checked(app: Flask) -> None:
    paths = cacheable_paths(app)
    for expected in ("/feeds/all.rss", "/feeds/all.atom", "/feeds/all.json", "/feeds/countries/th.rss",
                     "/feeds.opml", "/feeds/feed.xsl", "/embed.js", "/feeds/", "/",
                     "/countries/th", "/static/directory.css"):
        assert expected in paths
    assert any(p.startswith("/embed/topics/") for p in paths)
    assert any(p.startswith("/topics/") for p in paths)
    assert any(p.startswith("/releases/") for p in paths)


def test_an_absurd_or_unparsable_if_modified_since_is_ignored(app: Flask) -> None:
    client = app.test_client()
    fast = fast_path(app)
    assert (fast is not None) == app.config["FEEDSVC_FAST_PATH"]
    answered_fast = fast.answered if fast else 0
    for path in cacheable_paths(app):
        plain = client.get(path)
        # A valid date after the copy was made: 304; so the route does read the header (the
        # code's own assets have no date: the ETag alone validates them).
        assert ("Last-Modified" in plain.headers) == (path not in UNDATED), path
        assert client.get(path, headers={"If-Modified-Since": plain.headers.get(
            "Last-Modified", "Thu, 01 Jan 1970 00:00:00 GMT")}).status_code == \
            (200 if path in UNDATED else 304), path
        for value in ABSURD_DATES:
            response = client.get(path, headers={"If-Modified-Since": value,
                                                 "Accept-Encoding": "gzip"})
            assert response.status_code == 200, (path, value, response.status_code)
            body, etag = response.data, plain.headers["ETag"]
            if response.headers.get("Content-Encoding") == "gzip":  # not for images, say
                body, etag = gzip.decompress(body), f'{etag[:-1]}-gz"'
            assert response.headers["ETag"] == etag and body == plain.data, (path, value)
    if fast is not None:  # the feeds were answered by the fast path, not by Flask behind it
        feeds = [p for p in cacheable_paths(app) if p.endswith((".rss", ".atom", ".json"))]
        assert len(feeds) >= 9
        assert fast.answered >= answered_fast + len(feeds) * (2 + len(ABSURD_DATES))


def test_an_if_range_with_an_absurd_date_gets_the_whole_answer(app: Flask) -> None:
    client = app.test_client()
    for path in cacheable_paths(app):
        plain = client.get(path)
        if path.startswith("/static/"):  # a file werkzeug sends: the range is honoured...
            partial = client.get(path, headers={"Range": "bytes=0-3",
                                                "If-Range": plain.headers["Last-Modified"]})
            assert (partial.status_code, partial.data) == (206, plain.data[:4]), path
        for value in ABSURD_DATES:  # ...unless If-Range names no date (werkzeug raised: 500)
            response = client.get(path, headers={"Range": "bytes=0-3", "If-Range": value})
            assert (response.status_code, response.data) == (200, plain.data), (path, value)



def test_a_malformed_or_huge_if_none_match_is_no_match(app: Flask) -> None:
    client = app.test_client()
    for path in cacheable_paths(app):
        plain = client.get(path)
        for value in ODD_ETAGS:
            response = client.get(path, headers={"If-None-Match": value})
            assert response.status_code == 200 and response.data == plain.data, (path, value[:40])
        # If-None-Match decides even beside an absurd If-Modified-Since (RFC 9110 13.2.2).
        many = ", ".join([*(f'"{n}"' for n in range(500)), plain.headers["ETag"]])
        response = client.get(path, headers={"If-None-Match": many,
                                             "If-Modified-Since": ABSURD_DATES[0]})
        assert response.status_code == 304 and response.data == b"", path


header_text = st.text(st.characters(min_codepoint=0, max_codepoint=255,
                                    blacklist_characters="\r\n"), max_size=80)
dates = st.one_of(
    header_text,
    st.sampled_from(ABSURD_DATES),
    st.builds(lambda day, month, year, hms, zone: f"{day}, {month} {year} {hms} {zone}",
              st.sampled_from(["Mon", "Fri", "Xyz", ""]),
              st.sampled_from(["01 Jan", "31 Dec", "30 Feb", "99 Zzz"]),
              st.integers(-10**20, 10**20), st.sampled_from(["23:59:59", "99:99:99", "00:00"]),
              st.sampled_from(["GMT", "+9999", "-2400", "UTC", "+0100", ""])),
)
etags = st.one_of(header_text, st.lists(st.one_of(header_text, st.just("*")), max_size=20).map(", ".join))


@pytest.fixture(scope="module")
def fuzz_apps() -> dict[str, tuple[Flask, list[str]]]:
    apps = {name: build(FEEDSVC_FAST_PATH=fast) for name, fast in (("fast", True), ("flask", False))}
    return {name: (app, cacheable_paths(app)) for name, app in apps.items()}


@given(data=st.data(), since=dates, match=st.one_of(st.none(), etags))
def test_fuzzed_validators_never_get_a_5xx(fuzz_apps: dict[str, tuple[Flask, list[str]]],
                                           data: st.DataObject, since: str, match: str | None) -> None:
    app, paths = fuzz_apps[data.draw(st.sampled_from(sorted(fuzz_apps)))]
    path = data.draw(st.sampled_from(paths))
    headers = {"If-Modified-Since": since, **({"If-None-Match": match} if match is not None else {})}
    response = app.test_client().get(path, headers=headers)
    assert response.status_code in (200, 304), (path, headers, response.status_code)
    assert "ETag" in response.headers


@pytest.mark.parametrize("path", ["/feeds/all.rss", "/feeds/countries/th.json", "/feeds.opml", "/",
                                  "/embed.js", "/healthz"])
@pytest.mark.parametrize("accept", [None, "text/html"])
def test_a_405_body_is_what_its_content_type_says_and_allow_is_sent(
        app: Flask, path: str, accept: str | None) -> None:
    headers = {"Accept": accept} if accept else {}
    response = app.test_client().post(path, headers=headers)
    assert response.status_code == 405
    assert {m.strip() for m in response.headers["Allow"].split(",")} >= {"GET", "HEAD"}
    body = response.get_data(as_text=True)
    if response.mimetype == "text/html":
        assert body.lstrip().lower().startswith("<!doctype html>"), body[:80]
        assert "405" in body
    else:
        assert response.mimetype == "text/plain", response.headers["Content-Type"]
        assert body.startswith("405 Method Not Allowed"), body[:80]
    # The uniform error body: HTML only for pages asked for by a browser, never for feeds.
    assert (response.mimetype == "text/html") == (accept is not None and not path.startswith("/feeds/"))
