"""What the rendered feeds hold: feedgen's known traps are absent, output is deterministic."""
from __future__ import annotations

import json
from pathlib import Path

from flask.testing import FlaskClient
from lxml import etree

from feedsvc import create_app

from .conftest import BASE_URL
from .helpers import entry_ids, parse_feed

ATOM = "{http://www.w3.org/2005/Atom}"


def xml(client: FlaskClient, path: str) -> etree._Element:
    response = client.get(path)
    assert response.status_code == 200
    return etree.fromstring(response.data)


def test_rss_channel_link_is_the_html_page_and_self_link_is_the_feed(client: FlaskClient) -> None:
    channel = xml(client, "/feeds/countries/th.rss?topic=social-security").find("channel")
    assert channel.findtext("link") == f"{BASE_URL}countries/th?topic=social-security"
    selfs = [ln for ln in channel.iter(f"{ATOM}link") if ln.get("rel") == "self"]
    assert [ln.get("href") for ln in selfs] == [
        f"{BASE_URL}feeds/countries/th.rss?topic=social-security"]


def test_atom_feed_links(client: FlaskClient) -> None:
    feed = xml(client, "/feeds/topics/social-security.atom")
    links = {ln.get("rel"): ln.get("href") for ln in feed.findall(f"{ATOM}link")}
    assert links == {"self": f"{BASE_URL}feeds/topics/social-security.atom",
                     "alternate": f"{BASE_URL}topics/social-security"}


def test_feed_dates_are_the_newest_release_never_the_time_of_rendering(client: FlaskClient) -> None:
    channel = xml(client, "/feeds/all.rss").find("channel")
    assert channel.findtext("lastBuildDate") == "Mon, 17 Jan 2005 00:00:00 +0700"
    assert xml(client, "/feeds/countries/cn.atom").findtext(f"{ATOM}updated") == (
        "2004-10-18T00:00:00+07:00")
    data = json.loads(client.get("/feeds/countries/in.json").data)
    assert data["items"][0]["date_modified"] == "2004-11-24T00:00:00+07:00"


def test_empty_feed_date_is_fixed(client: FlaskClient) -> None:
    first = xml(client, "/feeds/countries/fr.atom").findtext(f"{ATOM}updated")
    assert first == "1970-01-01T00:00:00+00:00"


def test_atom_entry_links_keep_rel_and_type(client: FlaskClient) -> None:
    for entry in xml(client, "/feeds/all.atom").iter(f"{ATOM}entry"):
        (link,) = entry.findall(f"{ATOM}link")
        assert link.get("rel") == "alternate"
        assert link.get("type") == "text/html"
        assert link.get("href").startswith(f"{BASE_URL}releases/")


def test_every_link_is_absolute(client: FlaskClient) -> None:
    for fmt in ("rss", "atom"):
        root = xml(client, f"/feeds/all.{fmt}")
        hrefs = [e.get("href") for e in root.iter(f"{ATOM}link")]
        hrefs += [e.text for e in root.iter("link") if e.text]
        hrefs += [e.get("domain") for e in root.iter("category")]
        assert hrefs and all(h.startswith(BASE_URL) for h in hrefs), hrefs
    data = json.loads(client.get("/feeds/all.json").data)
    urls = [data["home_page_url"], data["feed_url"], *(i["url"] for i in data["items"])]
    assert all(u.startswith(BASE_URL) for u in urls)


def test_guids_are_tag_uris_from_the_release_id(client: FlaskClient) -> None:
    items = xml(client, "/feeds/all.rss").iter("item")
    guids = [(i.find("guid").text, i.find("guid").get("isPermaLink")) for i in items]
    assert guids[0] == ("tag:ilo.org,2004:release:pr-2005-002", "false")


def test_ids_survive_edits_of_title_url_and_base_url(dataset_dir: Path) -> None:
    path = dataset_dir / "releases" / "pr-2004-005.yaml"
    before = create_app({"FEEDSVC_DATA": str(dataset_dir), "FEEDSVC_BASE_URL": BASE_URL})
    old = parse_feed(before.test_client().get("/feeds/countries/in.atom")).entries[0]
    text = path.read_text().replace("official visit to India", "official visit to the Republic of India")
    path.write_text(text + "url: https://www.ilo.org/asia/media-centre/news/WCMS_100001/\n")
    after = create_app({"FEEDSVC_DATA": str(dataset_dir), "FEEDSVC_BASE_URL": "https://news.example.com/"})
    new = parse_feed(after.test_client().get("/feeds/countries/in.atom")).entries[0]
    assert new.title != old.title and new.link != old.link
    assert new.link == "https://www.ilo.org/asia/media-centre/news/WCMS_100001/"
    assert new.id == old.id


def test_same_dataset_and_query_give_the_same_bytes_in_another_app(dataset_dir: Path) -> None:
    config = {"FEEDSVC_DATA": str(dataset_dir), "FEEDSVC_BASE_URL": BASE_URL}
    one, two = create_app(config).test_client(), create_app(config).test_client()
    for path in ("/feeds/all.rss", "/feeds/all.atom", "/feeds/all.json",
                 "/feeds/countries/th.rss?q=safety", "/feeds/topics/social-security.json"):
        first, second = one.get(path), two.get(path)
        assert first.data == second.data, path
        assert first.headers["ETag"] == second.headers["ETag"]


def test_hostile_text_is_escaped_and_forbidden_characters_removed(dataset_dir: Path) -> None:
    (dataset_dir / "releases" / "hostile.yaml").write_text(
        'id: hostile-1\ntype: press-release\npublished: 2006-01-01\ncountries: [TH]\n'
        'topics: [social-security]\n'
        'title: "<script>alert(1)</script> & \\x01bell\\x0b \\uFFFE done"\n'
        'summary: "ends with ]]> and <b>bold</b>"\n', encoding="utf-8")
    app = create_app({"FEEDSVC_DATA": str(dataset_dir), "FEEDSVC_BASE_URL": BASE_URL})
    test = app.test_client()
    for fmt in ("rss", "atom"):
        entry = parse_feed(test.get(f"/feeds/all.{fmt}")).entries[0]
        root = xml(test, f"/feeds/all.{fmt}")
        titles = [t.text for t in root.iter("title", f"{ATOM}title")]
        assert "<script>alert(1)</script> & bell done" in titles
        assert entry.id.endswith("hostile-1")
    item = json.loads(test.get("/feeds/all.json").data)["items"][0]
    assert item["title"] == "<script>alert(1)</script> & bell done"
    assert item["summary"] == "ends with ]]> and <b>bold</b>"


def test_entries_link_to_the_release_page_unless_it_has_its_own_url(client: FlaskClient) -> None:
    assert entry_ids(client.get("/feeds/all.rss"), "rss")
    items = xml(client, "/feeds/all.rss").iter("item")
    assert all(i.findtext("link") == f"{BASE_URL}releases/{i.findtext('guid').rsplit(':', 1)[1]}"
               for i in items)
