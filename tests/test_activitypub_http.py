"""The fediverse's HTTP surface through the Flask client: WebFinger, NodeInfo, actors, their
outboxes and followers, content negotiation of pages, and FEEDSVC_ACTIVITYPUB=off|elsewhere."""
from __future__ import annotations

import io
import json
import shutil
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from cryptography.hazmat.primitives.serialization import load_pem_public_key
from flask import Flask
from flask.testing import FlaskClient
from lxml import html as lxml_html
from PIL import Image
from werkzeug.test import TestResponse

from feedsvc import create_app
from feedsvc.config import BUNDLED_DATA
from feedsvc.views.activitypub import durable

from .conftest import BASE_URL, FakeClock, release_yaml

AS = "application/activity+json"
LD = 'application/ld+json; profile="https://www.w3.org/ns/activitystreams"'
BROWSER = "text/html,application/xhtml+xml,application/xml;q=0.9,*/*;q=0.8"


def fed_app(state: Path, data: Path = BUNDLED_DATA, **settings: object) -> Flask:
    return create_app({"FEEDSVC_DATA": str(data), "FEEDSVC_BASE_URL": BASE_URL,
                       "FEEDSVC_SNAPSHOT_DIR": str(state), **settings})


@pytest.fixture
def client(tmp_path: Path) -> FlaskClient:
    return fed_app(tmp_path / "state").test_client()


def varies_on_accept(response: TestResponse) -> bool:
    return "accept" in [name.strip().lower() for name in response.headers["Vary"].split(",")]


def as_json(response: TestResponse, status: int = 200) -> Any:
    assert response.status_code == status, response.get_data(as_text=True)
    assert response.mimetype == AS
    return json.loads(response.data)


def test_webfinger_finds_an_actor_whose_username_round_trips(client: FlaskClient) -> None:
    answer = client.get("/.well-known/webfinger?resource=acct:th@feeds.example.org")
    assert answer.status_code == 200 and answer.mimetype == "application/jrd+json"
    assert answer.headers["Access-Control-Allow-Origin"] == "*"
    jrd = json.loads(answer.data)
    assert jrd["subject"] == "acct:th@feeds.example.org"
    self_link = next(link for link in jrd["links"] if link["rel"] == "self")
    assert self_link["type"] == AS
    profile = next(link for link in jrd["links"]
                   if link["rel"] == "http://webfinger.net/rel/profile-page")
    assert profile["href"] == f"{BASE_URL}countries/th"
    actor = as_json(client.get(self_link["href"].removeprefix(BASE_URL.rstrip("/"))))
    assert actor["id"] == self_link["href"] and actor["preferredUsername"] == "th"
    typed = client.get("/.well-known/webfinger?resource=acct:TH@Feeds.Example.org")
    assert json.loads(typed.data)["subject"] == jrd["subject"]  # as a reader may type it
    # and by the actor's URL, as some servers ask
    by_url = client.get(f"/.well-known/webfinger?resource={self_link['href']}")
    assert json.loads(by_url.data)["subject"] == jrd["subject"]


@pytest.mark.parametrize("resource", ["acct:zz@feeds.example.org", "acct:th@elsewhere.example",
                                      "acct:fr@feeds.example.org",  # a country without releases
                                      "https://feeds.example.org/ap/actors/nobody"])
def test_webfinger_refuses_what_is_not_here(client: FlaskClient, resource: str) -> None:
    assert client.get(f"/.well-known/webfinger?resource={resource}").status_code == 404
    assert client.get("/.well-known/webfinger").status_code == 400


def test_nodeinfo(client: FlaskClient) -> None:
    links = json.loads(client.get("/.well-known/nodeinfo").data)["links"]
    assert links == [{"rel": "http://nodeinfo.diaspora.software/ns/schema/2.1",
                      "href": f"{BASE_URL}nodeinfo/2.1"}]
    info = json.loads(client.get("/nodeinfo/2.1").data)
    assert info["version"] == "2.1" and info["protocols"] == ["activitypub"]
    assert info["software"]["name"] == "feedsvc" and info["openRegistrations"] is False
    assert info["usage"]["localPosts"] == 10


def test_an_actor_document_says_everything_mastodon_reads(client: FlaskClient) -> None:
    actor = as_json(client.get("/ap/actors/social-security"))
    ident = f"{BASE_URL}ap/actors/social-security"
    assert actor["type"] == "Service" and actor["id"] == ident
    assert actor["name"] == "Social security" and actor["summary"].startswith("<p>Extending")
    assert actor["url"] == f"{BASE_URL}topics/social-security"
    assert actor["inbox"] == f"{ident}/inbox" and actor["outbox"] == f"{ident}/outbox"
    assert actor["followers"] == f"{ident}/followers"
    assert actor["endpoints"] == {"sharedInbox": f"{BASE_URL}ap/inbox"}
    assert actor["discoverable"] is True and actor["manuallyApprovesFollowers"] is False
    key = actor["publicKey"]
    assert key["id"] == f"{ident}#main-key" and key["owner"] == ident
    assert load_pem_public_key(key["publicKeyPem"].encode()).key_size == 2048  # type: ignore[union-attr]
    feeds = {item["name"]: item["value"] for item in actor["attachment"]}
    assert f"{BASE_URL}feeds/topics/social-security.rss" in feeds["RSS"]
    assert f"{BASE_URL}feeds/topics/social-security.atom" in feeds["Atom"]
    assert actor["icon"]["mediaType"] == "image/png"
    picture = client.get(actor["icon"]["url"].removeprefix(BASE_URL.rstrip("/")))
    assert picture.status_code == 200 and picture.mimetype == "image/png"
    assert Image.open(io.BytesIO(picture.data)).size == (400, 400)
    # every actor signs with the one site key
    site = as_json(client.get("/ap/actors/all"))
    assert site["publicKey"]["publicKeyPem"] == key["publicKeyPem"]
    assert site["type"] == "Service" and site["url"] == BASE_URL


@pytest.mark.parametrize("path", ["/ap/actors/zz", "/ap/actors/fr", "/ap/actors/TH",
                                  "/ap/actors/zz/outbox", "/ap/actors/zz/followers"])
def test_unknown_handles_are_404(client: FlaskClient, path: str) -> None:
    assert client.get(path).status_code == 404


@pytest.mark.parametrize("accept", [AS, LD, f"{AS}, {LD}", f"text/html;q=0.5, {AS}"])
def test_a_release_page_is_its_article_to_activitypub(client: FlaskClient, accept: str) -> None:
    html = client.get("/releases/pr-2004-005", headers={"Accept": BROWSER})  # fills the cache
    assert html.mimetype == "text/html" and varies_on_accept(html)
    assert (f'<link rel="alternate" type="application/activity+json" '
            f'href="{BASE_URL}releases/pr-2004-005">') in html.get_data(as_text=True)
    answer = client.get("/releases/pr-2004-005", headers={"Accept": accept})
    article = as_json(answer)
    assert varies_on_accept(answer)
    assert article["type"] == "Article" and article["id"] == f"{BASE_URL}releases/pr-2004-005"
    # and back: the cached Article is not the browser's answer
    again = client.get("/releases/pr-2004-005", headers={"Accept": BROWSER})
    assert again.mimetype == "text/html" and again.data == html.data


def test_country_and_topic_pages_are_their_actors(client: FlaskClient) -> None:
    for page, handle in (("/countries/th", "th"), ("/topics/gender-equality", "gender-equality"),
                         ("/", "all")):
        html = client.get(page)
        assert (f'<link rel="alternate" type="application/activity+json" '
                f'href="{BASE_URL}ap/actors/{handle}">') in html.get_data(as_text=True)
        answer = client.get(page, headers={"Accept": AS})
        assert as_json(answer) == as_json(client.get(f"/ap/actors/{handle}"))
        assert varies_on_accept(answer) and varies_on_accept(html)
    assert client.get("/countries/fr", headers={"Accept": AS}).status_code == 404


def test_a_withdrawn_release_is_a_tombstone(clocked_app: Callable[..., Flask], tmp_path: Path,
                                            clock: FakeClock) -> None:
    gone = {**release_yaml(1, "2030-05-01T00:00:00+00:00"),
            "withdrawn": "2030-05-02T00:00:00+00:00", "withdrawn_note": "Sent in error."}
    client = clocked_app([gone, release_yaml(2, "2030-05-01T00:00:00+00:00")],
                         FEEDSVC_SNAPSHOT_DIR=str(tmp_path / "state")).test_client()
    tomb = as_json(client.get("/releases/t-001", headers={"Accept": AS}), 410)
    assert tomb == {**tomb, "type": "Tombstone", "id": f"{BASE_URL}releases/t-001",
                    "deleted": "2030-05-02T00:00:00Z"}
    assert client.get("/releases/t-001").mimetype == "text/html"


def _outbox(client: FlaskClient, handle: str) -> tuple[int, list[dict[str, Any]]]:
    collection = as_json(client.get(f"/ap/actors/{handle}/outbox"))
    items: list[dict[str, Any]] = []
    url: str | None = collection["first"]
    while url:
        page = as_json(client.get(url.removeprefix(BASE_URL.rstrip("/"))))
        assert page["partOf"] == collection["id"]
        items += page["orderedItems"]
        url = page.get("next")
    return collection["totalItems"], items


def test_the_outbox_pages_through_what_the_feed_holds(clocked_app: Callable[..., Flask],
                                                      tmp_path: Path, clock: FakeClock) -> None:
    releases = [release_yaml(n, f"2030-0{1 + n // 28}-{1 + n % 28:02d}T00:00:00+00:00")
                for n in range(45)]
    later = release_yaml(90, "2030-06-02T00:00:00+00:00")  # scheduled: the clock is 1 June
    draft = {**release_yaml(91, "2030-05-01T00:00:00+00:00"), "draft": True}
    client = clocked_app([*releases, later, draft],
                         FEEDSVC_SNAPSHOT_DIR=str(tmp_path / "state")).test_client()
    total, items = _outbox(client, "all")
    assert total == len(items) == 45
    assert [i["object"]["id"].rsplit("/", 1)[1] for i in items] == \
        [f"t-{n:03d}" for n in reversed(range(45))]
    assert {i["type"] for i in items} == {"Create"}
    total, items = _outbox(client, "th")
    assert total == 45 and {i["type"] for i in items} == {"Announce"}
    clock.advance(days=2)  # the scheduled release goes live: first in the outbox
    total, items = _outbox(client, "all")
    assert total == 46 and items[0]["object"]["id"] == f"{BASE_URL}releases/t-090"
    assert client.get("/ap/actors/all/outbox?page=nonsense").status_code == 400


def test_followers_say_how_many_never_who(tmp_path: Path) -> None:
    app = fed_app(tmp_path / "state")
    client = app.test_client()
    assert as_json(client.get("/ap/actors/th/followers"))["totalItems"] == 0
    with app.app_context():
        durable().follow("th", "https://social.example/users/ann",
                         "https://social.example/users/ann/inbox", "https://social.example/inbox")
    collection = as_json(client.get("/ap/actors/th/followers"))
    assert collection == {**collection, "type": "OrderedCollection", "totalItems": 1}
    assert "orderedItems" not in collection and "first" not in collection


AP_PATHS = ["/.well-known/webfinger?resource=acct:th@feeds.example.org", "/.well-known/nodeinfo",
            "/nodeinfo/2.1", "/ap/actors/th", "/ap/actors/th/outbox",
            "/ap/actors/th/followers"]


def test_off_answers_no_activitypub_and_makes_no_keys(tmp_path: Path) -> None:
    client = fed_app(tmp_path / "state", FEEDSVC_ACTIVITYPUB="off").test_client()
    for path in [*AP_PATHS, "/ap/icon.png"]:
        assert client.get(path).status_code == 404, path
    for path in ("/releases/pr-2004-005", "/countries/th"):
        page = client.get(path, headers={"Accept": AS})
        assert page.mimetype == "text/html" and not varies_on_accept(page)
        assert "application/activity+json" not in page.get_data(as_text=True)
    assert not (tmp_path / "state" / "activitypub.sqlite3").exists()


def test_elsewhere_serves_objects_and_leaves_actors_to_the_owner(tmp_path: Path) -> None:
    client = fed_app(tmp_path / "state", FEEDSVC_ACTIVITYPUB="elsewhere").test_client()
    for path in AP_PATHS:
        assert client.get(path).status_code == 404, path
    assert as_json(client.get("/releases/pr-2004-005", headers={"Accept": AS}))["type"] == "Article"
    moved = client.get("/countries/th", headers={"Accept": AS})
    assert moved.status_code == 302 and moved.headers["Location"] == f"{BASE_URL}ap/actors/th"
    assert not (tmp_path / "state" / "activitypub.sqlite3").exists()


# Each page that is also an ActivityPub object, and the actor it is (None: the release itself).
PAGES = {"/": "all", "/countries/th": "th", "/topics/gender-equality": "gender-equality",
         "/releases/pr-2004-005": None}


def alternates(page: TestResponse) -> list[str]:
    """Return the hrefs of a page's ActivityStreams alternate links."""
    tree = lxml_html.fromstring(page.data)
    return [str(href) for href in
            tree.xpath('//link[@rel="alternate"][@type="application/activity+json"]/@href')]


@pytest.mark.parametrize("mode", ["owner", "elsewhere", "off"])
def test_pages_link_to_and_answer_activitystreams_as_the_mode_says(tmp_path: Path,
                                                                   mode: str) -> None:
    client = fed_app(tmp_path / "state", FEEDSVC_ACTIVITYPUB=mode).test_client()
    for page, handle in PAGES.items():
        html = client.get(page, headers={"Accept": BROWSER})
        answer = client.get(page, headers={"Accept": AS})
        assert html.status_code == 200 and html.mimetype == "text/html", page
        if mode == "off":  # no link, and the Accept header changes nothing
            assert alternates(html) == [] and not varies_on_accept(html), page
            assert answer.mimetype == "text/html" and answer.data == html.data, page
            continue
        target = f"{BASE_URL}releases/pr-2004-005" if handle is None else \
            f"{BASE_URL}ap/actors/{handle}"
        assert alternates(html) == [target], page
        assert varies_on_accept(html) and varies_on_accept(answer), page
        if handle is None:  # a release's Article, from any instance
            assert as_json(answer)["id"] == target
        elif mode == "owner":
            assert as_json(answer)["id"] == target
        else:  # elsewhere: the owner answers actors (the shipped nginx routes /ap/ there)
            assert answer.status_code == 302 and answer.headers["Location"] == target, page
    for inbox in ("/ap/inbox", "/ap/actors/th/inbox"):  # only the owner has inboxes
        posted = client.post(inbox, json={"type": "Follow"}, base_url=BASE_URL)
        assert posted.status_code == (401 if mode == "owner" else 404), (mode, inbox)


def test_without_a_base_url_there_is_no_federation(tmp_path: Path) -> None:
    client = create_app({"FEEDSVC_DATA": str(BUNDLED_DATA),
                         "FEEDSVC_SNAPSHOT_DIR": str(tmp_path / "state")}).test_client()
    assert client.get("/ap/actors/th", base_url="https://feeds.example.org").status_code == 404


def test_readyz_says_why_federation_is_off(tmp_path: Path) -> None:
    off = create_app({"FEEDSVC_DATA": str(BUNDLED_DATA), "FEEDSVC_BASE_URL": BASE_URL,
                      "FEEDSVC_SNAPSHOT_DIR": None}).test_client().get("/readyz")
    assert off.status_code == 200 and json.loads(off.data)["activitypub"] == {
        "mode": "owner", "federating": False,
        "off_because": "federation needs a state directory (FEEDSVC_STATE_DIR is off)"}
    on = fed_app(tmp_path / "state").test_client().get("/readyz")
    assert json.loads(on.data)["activitypub"] == {"mode": "owner", "federating": True,
                                                  "off_because": None}


def test_owner_and_elsewhere_share_cache_entries_off_does_not(tmp_path: Path) -> None:
    from feedsvc.feeds.urls import Urls
    from feedsvc.views.common import settings_of

    apps = {mode: fed_app(tmp_path / mode, FEEDSVC_ACTIVITYPUB=mode)
            for mode in ("owner", "elsewhere", "off")}
    keyed = {mode: settings_of(app.config, Urls(BASE_URL)) for mode, app in apps.items()}
    assert keyed["owner"] == keyed["elsewhere"] != keyed["off"]
    # the bodies are indeed the same: an HTML page with its alternate link
    pages = {mode: app.test_client().get("/countries/th").data for mode, app in apps.items()}
    assert pages["owner"] == pages["elsewhere"] != pages["off"]


def test_the_site_logo_is_the_actors_picture(tmp_path: Path) -> None:
    data = tmp_path / "data"
    shutil.copytree(BUNDLED_DATA, data)
    (data / "media").mkdir()
    Image.new("RGB", (512, 512), "navy").save(data / "media" / "logo.png")
    site = data / "site.yaml"
    site.write_text(site.read_text() + "  logo: logo.png\n")
    client = fed_app(tmp_path / "state", data).test_client()
    icon = as_json(client.get("/ap/actors/all"))["icon"]
    assert icon["mediaType"] == "image/png" and "/media/logo.png?v=" in icon["url"]
    picture = client.get(icon["url"].removeprefix(BASE_URL.rstrip("/")))
    assert picture.status_code == 200
    assert Image.open(io.BytesIO(picture.data)).size == (512, 512)
