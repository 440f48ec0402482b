"""HTML pages: the release permalink, the listings, and autodiscovery of the feeds."""
from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from flask.testing import FlaskClient
from lxml import html

from feedsvc import create_app

from .conftest import BASE_URL, release_yaml
from .seed import SEED


def page(client: FlaskClient, path: str) -> html.HtmlElement:
    response = client.get(path, headers={"Accept": "text/html"})
    assert response.status_code == 200, response.data
    assert response.headers["Content-Type"] == "text/html; charset=utf-8"
    return html.fromstring(response.data)


def alternates(doc: html.HtmlElement) -> dict[str, str]:
    return {link.get("href"): link.get("type") for link in doc.xpath('//link[@rel="alternate"]')}


def test_release_page_shows_the_release_and_links_to_its_feeds(client: FlaskClient) -> None:
    doc = page(client, "/releases/pr-2004-005")
    assert doc.findtext(".//h1") == "ILO Director-General on official visit to India"
    meta = doc.xpath("//article//p[@class='meta']")[1].text_content()
    assert meta == "24 November 2004, NEW DELHI"
    assert doc.xpath("//time/@datetime")[0] == "2004-11-24T00:00:00+07:00"
    hrefs = doc.xpath("//article//a/@href")
    assert f"{BASE_URL}countries/in" in hrefs and f"{BASE_URL}feeds/countries/in.rss" in hrefs
    assert f"{BASE_URL}feeds/topics/social-dialogue.rss" in hrefs
    found = alternates(doc)
    assert found[f"{BASE_URL}feeds/all.atom"] == "application/atom+xml"
    assert found[f"{BASE_URL}feeds/countries/in.rss"] == "application/rss+xml"
    assert found[f"{BASE_URL}feeds/topics/social-dialogue.json"] == "application/feed+json"


def test_unknown_release_is_a_404_page(client: FlaskClient) -> None:
    response = client.get("/releases/pr-1999-999", headers={"Accept": "text/html"})
    assert response.status_code == 404
    assert "pr-1999-999" in html.fromstring(response.data).text_content()


def test_home_lists_latest_releases_and_every_feed(client: FlaskClient) -> None:
    doc = page(client, "/")
    titles = [a.text_content() for a in doc.xpath("//ul[@class='releases']//h2/a")]
    assert [t[:20] for t in titles] == [SEED[rid][0][:20] for rid in SEED]
    hrefs = set(doc.xpath("//a/@href"))
    assert {f"{BASE_URL}feeds/all.rss", f"{BASE_URL}feeds/all.atom", f"{BASE_URL}feeds/all.json"} <= hrefs
    for slug in ("gender-equality", "social-security", "labour-migration"):
        assert f"{BASE_URL}feeds/topics/{slug}.rss" in hrefs
    for code in ("th", "kh", "la", "in", "kr", "cn"):
        assert f"{BASE_URL}feeds/countries/{code}.rss" in hrefs
    assert f"{BASE_URL}feeds/countries/fr.rss" not in hrefs  # nothing published yet
    assert alternates(doc)[f"{BASE_URL}feeds/all.rss"] == "application/rss+xml"
    assert {f"{BASE_URL}feeds/", f"{BASE_URL}feeds.opml"} <= hrefs  # the directory and OPML


def test_country_page_lists_only_that_country(client: FlaskClient) -> None:
    doc = page(client, "/countries/kh")
    links = doc.xpath("//ul[@class='releases']//h2/a/@href")
    assert links == [f"{BASE_URL}releases/pr-2005-002", f"{BASE_URL}releases/pr-2004-002"]
    assert f"{BASE_URL}feeds/countries/kh.atom" in alternates(doc)


def test_a_release_in_another_language_says_so_in_its_page(make_dataset: Callable[..., Path]
                                                           ) -> None:
    """Its words in its language (a screen reader reads Thai as Thai), the page's in the site's."""
    thai = {**release_yaml(1, "2024-03-05"), "title": "แรงงานข้ามชาติ", "summary": "สรุปข่าว",
            "body": "ย่อหน้าแรก\n\nย่อหน้าที่สอง", "language": "th"}
    english = release_yaml(2, "2024-03-06")
    client = create_app({"FEEDSVC_DATA": str(make_dataset([thai, english])),
                         "FEEDSVC_BASE_URL": BASE_URL}).test_client()
    page = html.fromstring(client.get("/releases/t-001").data)
    assert page.get("lang") == "en"
    assert [e.get("lang") for e in page.xpath("//article/*[contains(., 'สรุปข่าว') or "
                                              "contains(., 'ย่อหน้า') or self::h1]")] == ["th"] * 4
    other = html.fromstring(client.get("/releases/t-002").data)
    assert other.xpath("//article//*[@lang]") == []  # the site's language: said once, at the top
    # Listed: the home page, a frame on a partner's site, a feed opened in a browser tab.
    for path, headers in (("/", {}), ("/embed/countries/th", {}),
                          ("/feeds/all.rss", {"Sec-Fetch-Dest": "document"})):
        listed = html.fromstring(client.get(path, headers=headers).data)
        titled = {e.text_content().strip(): e.get("lang") for e in listed.xpath("//a[@href]")}
        assert (titled["แรงงานข้ามชาติ"], titled["Test release number 2"]) == ("th", None), path
