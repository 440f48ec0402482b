"""The feed directory, the OPML list of every feed, and the XSLT that shows a feed as a page."""
from __future__ import annotations

from pathlib import Path

import feedparser
import listparser
import pytest
import yaml
from flask import Flask
from flask.testing import FlaskClient
from lxml import etree, html

from feedsvc import create_app
from feedsvc.dataset import Dataset, load_dataset

from .conftest import BASE_URL, release_yaml


def _dataset(app: Flask) -> Dataset:
    return load_dataset(app.config["FEEDSVC_DATA"])  # what the files say


def _expected_feeds(app: Flask) -> set[str]:
    dataset = _dataset(app)
    countries = {c.lower() for r in dataset.releases for c in r.countries}
    paths = ["all", *(f"topics/{t}" for t in dataset.topics), *(f"countries/{c}" for c in countries)]
    return {f"{BASE_URL}feeds/{p}.rss" for p in paths}


def test_opml_lists_every_feed(app: Flask, client: FlaskClient) -> None:
    response = client.get("/feeds.opml")
    assert response.status_code == 200
    assert response.content_type == "text/x-opml; charset=utf-8"
    assert response.headers["Access-Control-Allow-Origin"] == "*"
    parsed = listparser.parse(response.data)
    assert parsed.bozo == 0, parsed.bozo_exception
    assert parsed.version == "opml2"
    urls = {feed.url for feed in parsed.feeds}
    assert urls == _expected_feeds(app)
    by_url = {feed.url: feed for feed in parsed.feeds}
    assert by_url[f"{BASE_URL}feeds/countries/th.rss"].title == "Thailand"
    assert by_url[f"{BASE_URL}feeds/topics/social-security.rss"].categories == [["Topics"]]
    # Dated by the data: the same bytes on every request.
    assert client.get("/feeds.opml").data == response.data


def test_directory_lists_every_feed_with_count_and_date(app: Flask, client: FlaskClient) -> None:
    response = client.get("/feeds/")
    assert response.status_code == 200
    page = html.fromstring(response.data)
    inputs = {i.get("value") for i in page.xpath("//input[starts-with(@id, 'url-')]")}
    for rss in _expected_feeds(app):
        assert {rss, rss[:-3] + "atom", rss[:-3] + "json"} <= inputs
    # Every field is labelled; every copy button says what it copies and waits for the script.
    for field in page.xpath("//input[@id] | //textarea[@id] | //select[@id]"):
        assert page.xpath(f"//label[@for='{field.get('id')}']"), field.get("id")
    buttons = page.xpath("//button[@data-copy]")
    assert buttons and all(b.get("hidden") is not None for b in buttons)
    # The bundled dataset: ten release files, the newest published on 17 January 2005.
    assert "10 releases, last updated 17 January 2005" in page.text_content()
    kinds = {link.get("type") for link in page.xpath("//head/link[@rel='alternate']")}
    assert kinds == {"application/rss+xml", "application/atom+xml", "application/feed+json",
                     "text/x-opml"}
    assert page.xpath("//meta[@name='viewport']")
    assert [h.text_content() for h in page.xpath("//h1 | //h2")] == [
        "Feeds", "All releases", "By topic", "By country"]


def test_directory_shows_embed_snippets_for_each_country(client: FlaskClient) -> None:
    page = html.fromstring(client.get("/feeds/").data)
    frame = page.xpath("//textarea[@id='embed-countries-th-iframe']")[0].text
    script = page.xpath("//textarea[@id='embed-countries-th-script']")[0].text
    assert f'<iframe src="{BASE_URL}embed/countries/th?limit=5"' in frame
    assert '<div data-feedsvc-country="th" data-limit="5"></div>' in script
    assert f'<script src="{BASE_URL}embed.js" async></script>' in script


def test_any_other_country(client: FlaskClient) -> None:
    page = html.fromstring(client.get("/feeds/?country=NZ").data)
    chosen = page.xpath("//div[@id='chosen']")[0]
    assert "New Zealand" in chosen.text_content() and "No releases yet" in chosen.text_content()
    assert chosen.xpath(".//input[@value='https://feeds.example.org/feeds/countries/nz.atom']")
    assert page.xpath("//option[@value='nz'][@selected]")
    response = client.get("/feeds/?country=xx")
    assert response.status_code == 400 and b"'country'" in response.data


@pytest.mark.parametrize("fmt,root", [("rss", "rss"), ("atom", "{http://www.w3.org/2005/Atom}feed")])
def test_feeds_carry_a_stylesheet_and_stay_valid(client: FlaskClient, fmt: str, root: str) -> None:
    body = client.get(f"/feeds/countries/th.{fmt}").data
    assert body.splitlines()[1] == (b'<?xml-stylesheet type="text/xsl" '
                                    b'href="https://feeds.example.org/feeds/feed.xsl"?>')
    assert etree.fromstring(body).tag == root
    parsed = feedparser.parse(body)
    assert parsed.bozo == 0 and parsed.entries
    xsl = client.get("/feeds/feed.xsl")
    assert xsl.status_code == 200 and xsl.content_type == "text/xsl; charset=utf-8"
    page = etree.XSLT(etree.fromstring(xsl.data))(etree.fromstring(body))
    text = str(page)
    assert "This is a web feed." in text and f"https://feeds.example.org/feeds/countries/th.{fmt}" in text
    links = html.fromstring(text).xpath("//li/a/@href")
    assert links == [e.link for e in parsed.entries]


def test_the_stylesheet_line_is_written_where_lxml_writes_it(client: FlaskClient) -> None:
    """The instruction goes into feedgen's text instead of a second parse: the bytes are what
    lxml writes for the document with it (Atom: RSS titles get character references after)."""
    body = client.get("/feeds/all.atom?limit=100").data
    tree = etree.fromstring(body).getroottree()
    assert tree.getroot().getprevious() is not None  # the instruction, before the root
    assert etree.tostring(tree, encoding="UTF-8", xml_declaration=True, pretty_print=True) == body


def test_json_feed_has_no_stylesheet(client: FlaskClient) -> None:
    assert client.get("/feeds/all.json").get_json()["version"].startswith("https://jsonfeed.org/")


HOSTILE_LABEL = 'Gender "><img src=x onerror=alert(1)> equality & <b>more</b>'


def test_a_hostile_topic_label_stays_text_in_every_snippet_a_partner_copies(
        dataset_dir: Path) -> None:
    topics = dataset_dir / "topics.yaml"
    quoted = HOSTILE_LABEL.replace("'", "''")
    topics.write_text(topics.read_text(encoding="utf-8").replace(
        "label: Gender equality", f"label: '{quoted}'"), encoding="utf-8")
    app = create_app({"FEEDSVC_DATA": str(dataset_dir), "FEEDSVC_BASE_URL": BASE_URL})
    client = app.test_client()
    page = html.fromstring(client.get("/feeds/").data)
    for kind in ("iframe", "script"):
        (area,) = page.xpath(f"//textarea[@id='embed-topics-gender-equality-{kind}']")
        # What the partner's page becomes once the copied text is pasted into it.
        pasted = html.fragment_fromstring(area.text, create_parent="div")
        assert not pasted.xpath("//img | //b"), area.text
        assert {el.tag for el in pasted.iter(tag=etree.Element)} <= {"div", "iframe", "script"}
        assert len(pasted.xpath("//script")) == 1
        if kind == "iframe":
            (frame,) = pasted.xpath("//iframe")
            assert frame.get("title") == f"Latest releases: {HOSTILE_LABEL}"
            assert frame.get("src") == f"{BASE_URL}embed/topics/gender-equality?limit=5"
        else:
            assert pasted.xpath("//div[@data-feedsvc-topic='gender-equality']")


def test_directory_counts_what_readers_see(dataset_dir: Path) -> None:
    release = release_yaml(11, "2005-02-01")
    draft = {**release_yaml(12, "2005-03-01"), "draft": True}
    for data in (release, draft):
        text = yaml.safe_dump(data, allow_unicode=True, sort_keys=False)
        (dataset_dir / "releases" / f"{data['id']}.yaml").write_text(text, encoding="utf-8")
    app = create_app({"FEEDSVC_DATA": str(dataset_dir), "FEEDSVC_BASE_URL": BASE_URL})
    text = html.fromstring(app.test_client().get("/feeds/").data).text_content()
    assert "11 releases, last updated 1 February 2005" in text  # the draft is nobody's yet
