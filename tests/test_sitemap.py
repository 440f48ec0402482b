"""/sitemap.xml and /robots.txt: every release and listing page, split past the URL limit."""
from __future__ import annotations

from collections.abc import Callable
from datetime import datetime
from pathlib import Path

import pytest
from flask import Flask
from flask.testing import FlaskClient
from lxml import etree

from feedsvc import create_app
from feedsvc.dataset.visible import StoreView
from feedsvc.feeds.sitemap import Sitemap
from feedsvc.feeds.urls import Urls

from .conftest import BASE_URL, FakeClock, release_yaml

NS = {"s": "http://www.sitemaps.org/schemas/sitemap/0.9"}


def xml(client: FlaskClient, path: str) -> etree._Element:
    response = client.get(path)
    assert response.status_code == 200, response.data
    assert response.headers["Content-Type"] == "application/xml; charset=utf-8"
    assert "ETag" in response.headers and "max-age" in response.headers["Cache-Control"]
    doc = etree.fromstring(response.data)
    # Written as text, byte for byte what lxml writes of the same document.
    assert etree.tostring(doc, encoding="UTF-8", xml_declaration=True,
                          pretty_print=True) == response.data
    return doc


def urls_of(doc: etree._Element) -> dict[str, str]:
    return {u.findtext("s:loc", namespaces=NS): u.findtext("s:lastmod", namespaces=NS)
            for u in doc.findall("s:url", NS)}


def test_sitemap_lists_releases_and_listings_with_lastmod(client: FlaskClient) -> None:
    doc = xml(client, "/sitemap.xml")
    assert doc.tag == "{http://www.sitemaps.org/schemas/sitemap/0.9}urlset"
    found = urls_of(doc)
    assert found[f"{BASE_URL}releases/pr-2004-005"] == "2004-11-23T17:00:00Z"
    assert f"{BASE_URL}" in found and f"{BASE_URL}countries/kh" in found
    assert f"{BASE_URL}topics/social-security" in found
    assert f"{BASE_URL}countries/fr" not in found  # no releases: no page worth listing
    releases = [u for u in found if "/releases/" in u]
    assert len(releases) == 10


def test_robots_txt_names_the_sitemap(client: FlaskClient) -> None:
    response = client.get("/robots.txt")
    assert response.status_code == 200
    assert response.headers["Content-Type"] == "text/plain; charset=utf-8"
    assert f"Sitemap: {BASE_URL}sitemap.xml" in response.get_data(as_text=True).splitlines()


def sitemap_app(make_dataset: Callable[..., Path], releases: int, per_file: int) -> Flask:
    root = make_dataset([release_yaml(n, f"2005-01-{n:02d}") for n in range(1, releases + 1)])
    return create_app({"FEEDSVC_DATA": str(root), "FEEDSVC_BASE_URL": BASE_URL,
                       "FEEDSVC_SITEMAP_URLS": per_file})


def test_above_the_limit_the_sitemap_is_an_index_of_parts(
        make_dataset: Callable[..., Path]) -> None:
    # 12 releases + 3 listings (home, Thailand, Social security) = 15 URLs, 4 to a file.
    client = sitemap_app(make_dataset, 12, 4).test_client()
    doc = xml(client, "/sitemap.xml")
    assert doc.tag == "{http://www.sitemaps.org/schemas/sitemap/0.9}sitemapindex"
    parts = [s.findtext("s:loc", namespaces=NS) for s in doc.findall("s:sitemap", NS)]
    assert parts == [f"{BASE_URL}sitemaps/{n}.xml" for n in (1, 2, 3, 4)]
    seen: list[str] = []
    for part in parts:
        found = urls_of(xml(client, part.removeprefix(BASE_URL.rstrip("/"))))
        assert 1 <= len(found) <= 4
        seen += found
    assert len(seen) == len(set(seen)) == 15
    assert {f"{BASE_URL}releases/t-{n:03d}" for n in range(1, 13)} <= set(seen)
    newest = doc.findall("s:sitemap", NS)[0].findtext("s:lastmod", namespaces=NS)
    assert newest == "2005-01-11T17:00:00Z"  # t-012, midnight in Bangkok
    for missing in ("/sitemaps/0.xml", "/sitemaps/5.xml", "/sitemaps/99999999.xml"):
        assert client.get(missing).status_code == 404


def test_the_sitemap_is_built_once_per_dataset_version(
        make_dataset: Callable[..., Path], monkeypatch: pytest.MonkeyPatch) -> None:
    app = sitemap_app(make_dataset, 3, 50_000)
    client = app.test_client()
    built: list[int] = []
    original = Sitemap.of

    def counting(view: StoreView, urls: Urls, per_file: int) -> Sitemap:
        built.append(1)
        return original(view, urls, per_file)

    monkeypatch.setattr(Sitemap, "of", counting)
    first = client.get("/sitemap.xml")
    assert client.get("/sitemap.xml").data == first.data
    again = client.get("/sitemap.xml", headers={"If-None-Match": first.headers["ETag"]})
    assert again.status_code == 304
    assert len(built) == 1


def test_drafts_scheduled_and_withdrawn_releases_are_not_in_the_sitemap(
        make_dataset: Callable[..., Path]) -> None:
    scheduled = release_yaml(2, "2099-01-01T09:00:00+07:00")
    draft = {**release_yaml(3, "2005-01-03"), "draft": True}
    withdrawn = {**release_yaml(4, "2005-01-04"), "withdrawn": "2005-02-01T10:00:00+07:00",
                 "withdrawn_note": "Withdrawn."}
    root = make_dataset([release_yaml(1, "2005-01-01"), scheduled, draft, withdrawn])
    app = create_app({"FEEDSVC_DATA": str(root), "FEEDSVC_BASE_URL": BASE_URL})
    found = [u for u in urls_of(xml(app.test_client(), "/sitemap.xml")) if "/releases/" in u]
    assert found == [f"{BASE_URL}releases/t-001"]


def test_each_part_is_dated_by_its_newest_change_and_hidden_releases_take_no_place(
        make_dataset: Callable[..., Path]) -> None:
    """An old release updated late dates its part; drafts, withdrawn and scheduled releases
    between the visible ones neither appear nor shift the parts' edges."""
    releases = [release_yaml(n, f"2005-01-{n:02d}") for n in range(1, 21)]
    releases[2]["updated"] = "2006-03-04T05:06:07+07:00"  # t-003: in the last part
    releases[12]["updated"] = "2005-02-01T00:00:00+07:00"  # t-013: in the second
    for n in (5, 10, 15):
        releases[n - 1]["draft"] = True
    releases[7]["withdrawn"], releases[7]["withdrawn_note"] = "2005-02-01T10:00:00+07:00", "No."
    releases.append(release_yaml(21, "2099-01-01"))  # scheduled
    base = "https://feeds.example.org/a&b/"  # escaped in every loc
    app = create_app({"FEEDSVC_DATA": str(make_dataset(releases)), "FEEDSVC_BASE_URL": base,
                      "FEEDSVC_SITEMAP_URLS": 4})
    client = app.test_client()
    index = xml(client, "/sitemap.xml")
    parts = {s.findtext("s:loc", namespaces=NS): s.findtext("s:lastmod", namespaces=NS)
             for s in index.findall("s:sitemap", NS)}
    seen: dict[str, str] = {}
    for part, lastmod in parts.items():
        found = urls_of(xml(client, "/" + part.removeprefix(base)))
        assert lastmod == max(found.values())  # the part's newest page, rows or listings
        seen |= found
    visible = [n for n in range(1, 21) if n not in (5, 8, 10, 15)]
    assert [u for u in seen if "/releases/" in u] == [
        f"{base}releases/t-{n:03d}" for n in reversed(visible)]
    assert len(parts) == -(-len(seen) // 4) and all(u.startswith(base) for u in seen)
    assert seen[f"{base}releases/t-003"] == "2006-03-03T22:06:07Z"
    assert seen[f"{base}releases/t-013"] == "2005-01-31T17:00:00Z"


def test_the_index_reads_no_release_rows(make_dataset: Callable[..., Path],
                                         monkeypatch: pytest.MonkeyPatch) -> None:
    """The index asks the store for each part's last change: its cost is the number of parts,
    not the archive (a part's rows are read only for that part)."""
    client = sitemap_app(make_dataset, 12, 4).test_client()

    def refused(*_: object) -> None:
        raise AssertionError("the index read release rows")
    monkeypatch.setattr(StoreView, "listed", refused)
    index = xml(client, "/sitemap.xml")
    assert [s.findtext("s:lastmod", namespaces=NS) for s in index.findall("s:sitemap", NS)] == [
        "2005-01-11T17:00:00Z", "2005-01-10T17:00:00Z", "2005-01-06T17:00:00Z",
        "2005-01-02T17:00:00Z"]  # t-012 (with the 3 listings), t-011, t-007, t-003
    assert client.get("/sitemaps/1.xml").status_code == 500  # a part reads its own rows


def test_a_part_asked_first_and_a_release_going_live_keep_index_and_parts_in_step(
        clocked_app: Callable[..., Flask], clock: FakeClock) -> None:
    """A part asked before the index cuts the runs where the index does; a scheduled release
    going live (no reload) moves every part's edge by one, in the index and in the parts."""
    releases = [release_yaml(n, f"2030-05-{n:02d}") for n in range(1, 13)]
    releases.append(release_yaml(13, "2030-06-02T09:00:00+07:00"))  # after the clock's now
    client = clocked_app(releases, FEEDSVC_SITEMAP_URLS=4).test_client()

    def parts() -> list[list[str]]:
        index = xml(client, "/sitemap.xml")
        found = []
        for entry in index.findall("s:sitemap", NS):
            urls = urls_of(xml(client, entry.findtext("s:loc", namespaces=NS)
                               .removeprefix(BASE_URL.rstrip("/"))))
            assert entry.findtext("s:lastmod", namespaces=NS) == max(urls.values())
            found.append([u.rsplit("-", 1)[1] for u in urls if "/releases/" in u])
        return found

    second = [u.rsplit("-", 1)[1] for u in urls_of(xml(client, "/sitemaps/2.xml"))]
    before = parts()  # 3 listings and 12 releases, 4 URLs a file
    assert before == [["012"], ["011", "010", "009", "008"], ["007", "006", "005", "004"],
                      ["003", "002", "001"]] and before[1] == second
    clock.now = datetime.fromisoformat("2030-06-02T09:00:00+07:00")
    assert parts() == [["013"], ["012", "011", "010", "009"], ["008", "007", "006", "005"],
                       ["004", "003", "002", "001"]]
