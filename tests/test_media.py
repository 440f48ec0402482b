"""Pictures and attachments: checked by check-data, served from /media/, shown in every feed."""
from __future__ import annotations

import hashlib
import json
import os
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path
from urllib.parse import urlsplit

import feedparser
import pytest
import yaml
from flask import Flask
from flask.testing import FlaskClient
from lxml import etree, html

from feedsvc import create_app
from feedsvc.clock import set_clock
from feedsvc.operations.reload import reloader

from .conftest import BASE_URL, FakeClock, release_yaml

MRSS = "http://search.yahoo.com/mrss/"
ATOM = "http://www.w3.org/2005/Atom"
# The smallest GIF (1x1 pixel) and a made-up PDF.
GIF = (b"GIF89a\x01\x00\x01\x00\x80\x00\x00\xff\xff\xff\x00\x00\x00!\xf9\x04\x01\x00\x00\x00\x00"
       b",\x00\x00\x00\x00\x01\x00\x01\x00\x00\x02\x02D\x01\x00;")
PDF = b"%PDF-1.4\n% a made-up report\n"
REMOTE = {"src": "https://cdn.example.org/v.mp4", "title": "Video", "type": "video/mp4",
          "length": 12345}


def illustrated(**extra: object) -> dict[str, object]:
    release = release_yaml(1, "2005-01-01", title="With a picture")
    release.update({"image": {"src": "photos/dot.gif", "alt": "A white dot"},
                    "attachments": [{"src": "report.pdf", "title": "The report"}, REMOTE]})
    release.update(extra)
    return release


def with_media(root: Path) -> Path:
    (root / "media" / "photos").mkdir(parents=True)
    (root / "media" / "photos" / "dot.gif").write_bytes(GIF)
    (root / "media" / "report.pdf").write_bytes(PDF)
    return root


@pytest.fixture
def media_app(make_dataset: Callable[..., Path]) -> Flask:
    root = with_media(make_dataset([illustrated(), release_yaml(2, "2004-12-01")]))
    return create_app({"FEEDSVC_DATA": str(root), "FEEDSVC_BASE_URL": BASE_URL})


@pytest.fixture
def media_client(media_app: Flask) -> FlaskClient:
    return media_app.test_client()


def short(body: bytes) -> str:
    return hashlib.sha256(body).hexdigest()[:16]


GIF_URL = f"{BASE_URL}media/photos/dot.gif?v={short(GIF)}"
PDF_URL = f"{BASE_URL}media/report.pdf?v={short(PDF)}"


def test_rss_has_an_enclosure_and_media_rss(media_client: FlaskClient) -> None:
    response = media_client.get("/feeds/all.rss")
    item = etree.fromstring(response.data).find("channel/item")
    enclosure = item.find("enclosure")
    assert dict(enclosure.attrib) == {"url": GIF_URL, "length": str(len(GIF)), "type": "image/gif"}
    contents = {c.get("url"): (c.get("type"), c.get("fileSize"), c.get("medium"))
                for c in item.findall(f"{{{MRSS}}}content")}
    assert contents == {GIF_URL: ("image/gif", str(len(GIF)), "image"),
                        PDF_URL: ("application/pdf", str(len(PDF)), "document"),
                        REMOTE["src"]: ("video/mp4", "12345", "video")}
    assert item.find(f"{{{MRSS}}}thumbnail").get("url") == GIF_URL
    parsed = feedparser.parse(response.data)
    assert parsed.bozo == 0
    assert parsed.entries[0].enclosures[0].href == GIF_URL
    assert parsed.entries[0].media_thumbnail[0]["url"] == GIF_URL


def test_atom_has_enclosure_links_and_keeps_the_alternate(media_client: FlaskClient) -> None:
    response = media_client.get("/feeds/all.atom")
    root = etree.fromstring(response.data)
    first, second = root.findall(f"{{{ATOM}}}entry")
    links = [dict(link.attrib) for link in first.findall(f"{{{ATOM}}}link")]
    assert links == [
        {"href": f"{BASE_URL}releases/t-001", "rel": "alternate", "type": "text/html"},
        {"href": PDF_URL, "rel": "enclosure", "type": "application/pdf",
         "length": str(len(PDF)), "title": "The report"},
        {"href": REMOTE["src"], "rel": "enclosure", "type": "video/mp4", "length": "12345",
         "title": "Video"},
        {"href": GIF_URL, "rel": "enclosure", "type": "image/gif", "length": str(len(GIF)),
         "title": "A white dot"}]
    # An entry without media has its page link only, still rel=alternate.
    assert [dict(link.attrib) for link in second.findall(f"{{{ATOM}}}link")] == [
        {"href": f"{BASE_URL}releases/t-002", "rel": "alternate", "type": "text/html"}]
    parsed = feedparser.parse(response.data)
    assert parsed.bozo == 0
    assert [e.href for e in parsed.entries[0].enclosures] == [PDF_URL, REMOTE["src"], GIF_URL]
    assert parsed.entries[0].link == f"{BASE_URL}releases/t-001"


def test_json_feed_has_image_and_attachments(media_client: FlaskClient) -> None:
    item = json.loads(media_client.get("/feeds/all.json").data)["items"][0]
    assert item["image"] == GIF_URL
    assert [(a["url"], a["mime_type"], a["size_in_bytes"], a["title"]) for a in
            item["attachments"]] == [(PDF_URL, "application/pdf", len(PDF), "The report"),
                                     (REMOTE["src"], "video/mp4", 12345, "Video"),
                                     (GIF_URL, "image/gif", len(GIF), "A white dot")]


def test_release_page_shows_the_picture_and_attachments(media_client: FlaskClient) -> None:
    doc = html.fromstring(media_client.get("/releases/t-001").data)
    image = doc.xpath("//article//img")[0]
    assert (image.get("src"), image.get("alt")) == (GIF_URL, "A white dot")
    links = {a.get("href"): a.text_content() for a in doc.xpath("//ul[@class='attachments']//a")}
    assert links == {PDF_URL: "The report", REMOTE["src"]: "Video"}


def test_media_files_are_served_with_type_length_and_validators(
        media_client: FlaskClient) -> None:
    hashed = media_client.get(GIF_URL.removeprefix(BASE_URL.rstrip("/")), buffered=True,
                              headers={"Accept-Encoding": "gzip"})
    assert hashed.status_code == 200 and hashed.data == GIF
    assert hashed.headers["Content-Type"] == "image/gif"
    assert hashed.headers["Content-Length"] == str(len(GIF))
    assert "Content-Encoding" not in hashed.headers
    assert hashed.headers["ETag"] == f'"{hashlib.sha256(GIF).hexdigest()[:32]}"'
    assert hashed.headers["Cache-Control"] == "public, max-age=31536000, immutable"
    plain = media_client.get("/media/report.pdf", buffered=True)
    assert plain.status_code == 200 and plain.data == PDF
    assert plain.headers["Content-Type"] == "application/pdf"
    assert plain.headers["Cache-Control"] == "public, max-age=86400"
    assert "Last-Modified" in plain.headers
    again = media_client.get("/media/report.pdf", buffered=True,
                             headers={"If-None-Match": plain.headers["ETag"]})
    assert again.status_code == 304 and again.data == b""
    stale = media_client.get("/media/report.pdf?v=0000000000000000", buffered=True)
    assert stale.status_code == 200 and stale.headers["Cache-Control"] == "public, max-age=86400"


def test_media_route_serves_only_files_the_releases_name(media_app: Flask, tmp_path: Path) -> None:
    client = media_app.test_client()
    root = Path(media_app.config["FEEDSVC_DATA"])
    (tmp_path / "secret.txt").write_text("secret")
    os.symlink(tmp_path / "secret.txt", root / "media" / "leak.txt")
    (root / "media" / "unnamed.gif").write_bytes(GIF)  # e.g. the picture of a coming release
    for path in ("/media/unnamed.gif", "/media/../site.yaml", "/media/%2e%2e/site.yaml", "/media/leak.txt",
                 "/media/photos", "/media/missing.gif", "/media/.hidden", "/media//etc/passwd"):
        response = client.get(path)
        if "//" in path:  # merged by a redirect, to the base URL: follow it here
            assert response.status_code == 308, path
            response = client.get(urlsplit(response.headers["Location"]).path)
        assert response.status_code == 404, path
        assert b"secret" not in response.data and b"tag_authority" not in response.data


def check(root: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "feedsvc", "check-data", str(root)],
                          capture_output=True, text=True, timeout=60)


@pytest.mark.parametrize(("image", "message"), [
    ({"src": "../site.yaml", "alt": "x"}, "must not contain '..'"),
    ({"src": "/etc/passwd", "alt": "x"}, "must be a path below media/"),
    ({"src": "photos/none.gif", "alt": "x"}, "'photos/none.gif' is not a file in"),
    ({"src": "link.gif", "alt": "x"}, "'link.gif' leaves media/ through a link"),
    ({"src": "report.pdf", "alt": "x"}, "'report.pdf' is not a picture (application/pdf)"),
    ({"src": "https://cdn.example.org/a.jpg", "alt": "x", "length": 5},
     "field image.type: is required"),
    ({"src": "http://cdn.example.org/a.jpg", "alt": "x", "type": "image/jpeg", "length": 3},
     "a remote file must be an https:// URL"),
    ({"src": "photos/dot.gif"}, "missing required field 'alt'"),
    ({"src": "photos/dot.gif", "alt": "x", "length": 3}, "field image.length: is taken from the file"),
])
def test_check_data_names_file_line_release_and_field(
        make_dataset: Callable[..., Path], tmp_path: Path, image: dict[str, object],
        message: str) -> None:
    root = with_media(make_dataset([illustrated(image=image)]))
    (tmp_path / "outside.gif").write_bytes(GIF)
    os.symlink(tmp_path / "outside.gif", root / "media" / "link.gif")
    done = check(root)
    assert done.returncode == 1, done.stdout
    file = root / "releases" / "t-001.yaml"
    line = file.read_text().splitlines().index("image:") + 1
    problems = [p.strip() for p in done.stderr.splitlines()[1:]]
    assert len(problems) == 1, problems
    where, _, rest = problems[0].removeprefix(f"{file}:").partition(": ")
    assert line < int(where) <= line + len(image), problems  # the line of the bad key
    assert rest.startswith("release t-001: field image"), problems
    assert message in problems[0]


def test_a_media_entry_s_own_keys_are_named_with_its_path(make_dataset: Callable[..., Path]
                                                          ) -> None:
    """A key given twice or unknown inside an image or attachment is named by its full path."""
    root = with_media(make_dataset([illustrated(attachments=[
        {"src": "report.pdf", "title": "The report", "caption": "x"}])]))
    file = root / "releases" / "t-001.yaml"
    text = file.read_text(encoding="utf-8")
    assert "image:\n  src: photos/dot.gif\n" in text
    file.write_text(text.replace("image:\n", "image:\n  alt: Again\n", 1), encoding="utf-8")
    done = check(root)
    assert done.returncode == 1, done.stdout
    problems = [p.strip().partition(": ")[2] for p in done.stderr.splitlines()[1:]]
    assert sorted(problems) == sorted([
        "release t-001: field image.alt: given twice",
        "release t-001: field attachments[1].caption: unknown field (allowed: length, src, "
        "title, type)"]), problems


def test_check_data_accepts_valid_media(make_dataset: Callable[..., Path]) -> None:
    done = check(with_media(make_dataset([illustrated()])))
    assert done.returncode == 0, done.stderr


def test_a_missing_attachment_is_located(make_dataset: Callable[..., Path]) -> None:
    root = make_dataset([illustrated()])
    (root / "media" / "photos").mkdir(parents=True)
    (root / "media" / "photos" / "dot.gif").write_bytes(GIF)
    done = check(root)
    assert done.returncode == 1
    assert "release t-001: field attachments[1].src: 'report.pdf' is not a file in" in done.stderr


def test_export_writes_the_media_files(make_dataset: Callable[..., Path], tmp_path: Path) -> None:
    root = with_media(make_dataset([illustrated()]))
    out = tmp_path / "out"
    done = subprocess.run([sys.executable, "-m", "feedsvc", "export", str(out)], capture_output=True,
                          text=True, timeout=60,
                          env={**os.environ, "FEEDSVC_DATA": str(root), "FEEDSVC_BASE_URL": BASE_URL})
    assert done.returncode == 0, done.stderr
    assert (out / "media" / "photos" / "dot.gif").read_bytes() == GIF
    assert (out / "media" / "report.pdf").read_bytes() == PDF
    rss = etree.parse(str(out / "feeds" / "all.rss"))
    assert rss.find("channel/item/enclosure").get("url") == GIF_URL


def test_a_large_file_is_served_whole_and_revalidated(make_dataset: Callable[..., Path]) -> None:
    big = os.urandom(3 << 20)  # past what a worker keeps in memory
    root = make_dataset([illustrated(image={"src": "photos/dot.gif", "alt": "A dot"},
                                     attachments=[{"src": "big.pdf", "title": "Annex"}])])
    with_media(root)
    (root / "media" / "big.pdf").write_bytes(big)
    client = create_app({"FEEDSVC_DATA": str(root), "FEEDSVC_BASE_URL": BASE_URL}).test_client()
    url = f"/media/big.pdf?v={short(big)}"
    response = client.get(url, buffered=True)
    assert response.status_code == 200 and response.data == big
    assert response.headers["Cache-Control"] == "public, max-age=31536000, immutable"
    assert response.headers["ETag"] == f'"{hashlib.sha256(big).hexdigest()[:32]}"'
    since = client.get(url, buffered=True, headers={"If-Modified-Since": response.headers["Last-Modified"]})
    assert since.status_code == 304
    (root / "media" / "big.pdf").write_bytes(big[:1000])  # replaced in place: read afresh
    os.utime(root / "media" / "big.pdf", ns=(1, 1))
    assert client.get("/media/big.pdf", buffered=True).data == big[:1000]


def _enclosures(client: FlaskClient) -> dict[str, tuple[int, str]]:
    """Return the attachments of release t-001 as a JSON Feed reader sees them: url -> (size,
    type)."""
    item = next(i for i in json.loads(client.get("/feeds/all.json").data)["items"]
                if i["id"].endswith(":t-001"))
    return {a["url"]: (a["size_in_bytes"], a["mime_type"]) for a in item["attachments"]}


@pytest.mark.parametrize("notified", [False, True], ids=["looked-at", "notified"])
def test_a_media_file_changed_in_place_reloads_the_releases_naming_it(
        media_app: Flask, notified: bool) -> None:
    from feedsvc.dataset import load_dataset
    from feedsvc.operations.reload import reloader

    client = media_app.test_client()
    root = Path(media_app.config["FEEDSVC_DATA"])
    for path in root.rglob("*.*"):  # older than a write that could share its mtime tick
        os.utime(path, ns=(path.stat().st_atime_ns, path.stat().st_mtime_ns - 3600 * 10**9))
    assert reloader(media_app).check() == "unchanged"  # nothing is racy from now on
    before = client.get("/readyz").get_json()["dataset"]["version"]
    assert _enclosures(client)[PDF_URL] == (len(PDF), "application/pdf")
    report = root / "media" / "report.pdf"
    bigger = PDF + b"% a second page, added in place\n"
    with report.open("r+b") as stream:  # the same file (inode), new bytes: no YAML file changed
        stream.write(bigger)
    paths = {str(report)} if notified else None
    assert reloader(media_app).check(paths=paths) == "reloaded"
    url = f"{BASE_URL}media/report.pdf?v={short(bigger)}"
    assert _enclosures(client)[url] == (len(bigger), "application/pdf")
    assert PDF_URL not in _enclosures(client)
    served = client.get("/media/report.pdf", buffered=True)
    assert served.data == bigger and served.headers["Content-Length"] == str(len(bigger))
    version = client.get("/readyz").get_json()["dataset"]["version"]
    assert version != before and version == load_dataset(root).version  # as a restart says
    assert reloader(media_app).check(paths=paths) == "unchanged"


def test_a_media_file_deleted_is_rejected_and_its_return_recovers(media_app: Flask) -> None:
    from feedsvc.operations.reload import reloader

    client = media_app.test_client()
    report = Path(media_app.config["FEEDSVC_DATA"]) / "media" / "report.pdf"
    report.unlink()
    assert reloader(media_app).check() == "rejected"
    ready = client.get("/readyz").get_json()
    assert ready["status"] == "degraded" and "report.pdf" in ready["dataset"]["last_reload_error"]
    assert _enclosures(client)[PDF_URL] == (len(PDF), "application/pdf")  # the last good data
    served = client.get("/readyz").get_json()["dataset"]["version"]
    report.write_bytes(PDF)
    # The same bytes again: what is on disk is what is served, so nothing is reloaded.
    assert reloader(media_app).check() == "recovered"
    ready = client.get("/readyz").get_json()
    assert ready["status"] == "ok" and ready["dataset"]["version"] == served


def test_a_draft_or_scheduled_releases_files_are_not_served_until_it_is(
        make_dataset: Callable[..., Path], clock: FakeClock) -> None:
    """Only the files a visible release names are served: a draft's picture never, a
    scheduled release's attachment from its publication on (time moved by the clock)."""
    draft = release_yaml(1, "2005-01-01", title="A draft")
    draft.update({"draft": True, "image": {"src": "photos/dot.gif", "alt": "A white dot"}})
    scheduled = release_yaml(2, "2030-06-01T13:00:00+00:00", title="Scheduled")
    scheduled["attachments"] = [{"src": "report.pdf", "title": "The report"}]
    root = with_media(make_dataset([draft, scheduled, release_yaml(3, "2004-12-01")]))
    app = create_app({"FEEDSVC_DATA": str(root), "FEEDSVC_BASE_URL": BASE_URL})
    set_clock(app, clock)
    client = app.test_client()
    assert client.get("/media/photos/dot.gif").status_code == 404
    assert client.get("/media/report.pdf").status_code == 404
    clock.advance(hours=2)
    found = client.get("/media/report.pdf")
    assert (found.status_code, found.data) == (200, PDF)
    assert client.get("/media/photos/dot.gif").status_code == 404


def test_in_a_bundle_file_only_the_visible_releases_files_are_served(
        make_dataset: Callable[..., Path]) -> None:
    """Media are per release, not per file: a bundle holding a draft with a picture and a
    visible release with an attachment serves the attachment only, until the draft is
    published (an edit of the bundle), and a restart serves the same."""
    draft = release_yaml(1, "2005-01-01", title="A draft")
    draft.update({"draft": True, "image": {"src": "photos/dot.gif", "alt": "A white dot"}})
    visible = release_yaml(2, "2004-12-01", title="Visible")
    visible["attachments"] = [{"src": "report.pdf", "title": "The report"}]
    root = with_media(make_dataset([]))
    bundle = root / "releases" / "bundle.yaml"
    bundle.write_text(yaml.safe_dump({"releases": [draft, visible]}), encoding="utf-8")
    app = create_app({"FEEDSVC_DATA": str(root), "FEEDSVC_BASE_URL": BASE_URL})
    client = app.test_client()
    assert client.get("/media/report.pdf").status_code == 200
    assert client.get("/media/photos/dot.gif").status_code == 404
    draft["draft"] = False
    bundle.write_text(yaml.safe_dump({"releases": [draft, visible]}), encoding="utf-8")
    assert reloader(app).check() == "reloaded"
    found = client.get("/media/photos/dot.gif")
    assert (found.status_code, found.data) == (200, GIF)
    again = create_app({"FEEDSVC_DATA": str(root), "FEEDSVC_BASE_URL": BASE_URL}).test_client()
    assert again.get("/media/photos/dot.gif").status_code == 200
