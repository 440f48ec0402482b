"""`feedsvc export DIR`: every feed, byte-identical to what the HTTP endpoints return."""
from __future__ import annotations

import hashlib
import http.client
import json
from collections.abc import Callable, Iterator
from pathlib import Path
from urllib.parse import quote, urlsplit

import pytest
from lxml import etree

from feedsvc import create_app
from feedsvc.dataset import load_dataset
from feedsvc.operations.cli import main
from feedsvc.operations.export import export, feed_paths

from . import servers
from .conftest import release_yaml

BASE_URL = "https://feeds.example.org/"


@pytest.fixture
def env(monkeypatch: pytest.MonkeyPatch, dataset_dir: Path) -> Path:
    monkeypatch.setenv("FEEDSVC_DATA", str(dataset_dir))
    monkeypatch.setenv("FEEDSVC_BASE_URL", BASE_URL)
    return dataset_dir


def test_export_equals_what_http_returns(env: Path, tmp_path: Path,
                                         capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "site"
    assert main(["export", str(out)]) == 0
    assert "44 files" in capsys.readouterr().out
    manifest = json.loads((out / "manifest.json").read_text())
    client = create_app().test_client()  # a separate app, as a server process would be
    assert manifest["base_url"] == BASE_URL
    assert len(manifest["files"]) == 3 * (1 + 6 + 7) + 2  # and /feeds.opml, /feeds/feed.xsl
    for entry in manifest["files"]:
        response = client.get(f"/{quote(entry['path'])}")
        body = (out / entry["path"]).read_bytes()
        assert response.status_code == 200
        assert body == response.get_data(), entry["path"]
        assert entry == {"path": entry["path"], "content_type": response.content_type,
                         "sha256": hashlib.sha256(body).hexdigest(), "bytes": len(body),
                         "etag": response.headers["ETag"]}
    assert sorted(p.relative_to(out).as_posix() for p in out.rglob("*") if p.is_file()) == \
        sorted([e["path"] for e in manifest["files"]] + ["manifest.json"])


def test_countries_with_releases_and_every_topic(make_dataset: Callable[..., Path]) -> None:
    app = create_app({"FEEDSVC_DATA": str(make_dataset([release_yaml(1, "2005-01-01")])),
                      "FEEDSVC_BASE_URL": BASE_URL})
    index = load_dataset(app.config["FEEDSVC_DATA"])
    paths = feed_paths(app)
    assert "/feeds/all.rss" in paths and "/feeds/countries/th.atom" in paths
    assert not any(path.startswith("/feeds/countries/") and "/th." not in path for path in paths)
    unused = set(index.topics) - {t for r in index.releases for t in r.topics}
    assert unused  # the OPML list names their feeds too, so a static copy must hold them
    assert all(f"/feeds/topics/{slug}.rss" in paths for slug in index.topics)
    assert len(paths) == len(set(paths))


def test_the_opml_list_and_feed_stylesheet_are_exported(dataset_dir: Path, tmp_path: Path) -> None:
    app = create_app({"FEEDSVC_DATA": str(dataset_dir), "FEEDSVC_BASE_URL": BASE_URL})
    manifest = export(app, tmp_path / "out")
    assert [f["path"] for f in manifest["files"][-2:]] == ["feeds.opml", "feeds/feed.xsl"]
    client = app.test_client()
    for path in ("feeds.opml", "feeds/feed.xsl"):
        assert (tmp_path / "out" / path).read_bytes() == client.get(f"/{path}").data


def test_export_needs_a_base_url(env: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                 capsys: pytest.CaptureFixture[str]) -> None:
    monkeypatch.delenv("FEEDSVC_BASE_URL")
    assert main(["export", str(tmp_path / "out")]) == 1
    assert "FEEDSVC_BASE_URL must be set" in capsys.readouterr().err


def test_export_refuses_invalid_data(env: Path, tmp_path: Path,
                                     capsys: pytest.CaptureFixture[str]) -> None:
    (env / "topics.yaml").unlink()
    assert main(["export", str(tmp_path / "out")]) == 1
    assert capsys.readouterr().err.startswith("dataset invalid:")
    assert not (tmp_path / "out").exists()


def test_export_writes_through_no_link_planted_in_its_folder(env: Path, tmp_path: Path) -> None:
    out, elsewhere, victim = tmp_path / "site", tmp_path / "elsewhere", tmp_path / "victim"
    assert main(["export", str(out)]) == 0
    first = {p.relative_to(out): p.read_bytes() for p in out.rglob("*") if p.is_file()}
    elsewhere.mkdir()
    victim.write_bytes(b"precious")
    # Whoever can write to the export folder plants links to what the exporting user can write.
    (out / ".manifest.json.partial").symlink_to(victim)
    for name in ("manifest.json", "feeds.opml"):
        (out / name).unlink()
        (out / name).symlink_to(victim)
    (out / "feeds" / ".all.rss.partial").symlink_to(victim)
    (out / "feeds" / "countries").rename(tmp_path / "countries")
    (out / "feeds" / "countries").symlink_to(elsewhere, target_is_directory=True)
    assert main(["export", str(out)]) == 0
    assert victim.read_bytes() == b"precious" and list(elsewhere.iterdir()) == []
    assert not any(p.is_symlink() for p in out.rglob("*"))
    assert {p.relative_to(out): p.read_bytes() for p in out.rglob("*") if p.is_file()} == first
    assert [p.name for p in tmp_path.iterdir() if p.name.startswith(".")] == []  # no leftovers


def test_export_never_replaces_a_folder_that_is_not_an_export(
        env: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "public" / "www"
    out.mkdir(parents=True)
    (out / "index.html").write_text("the site's own page")
    assert main(["export", str(out)]) == 1
    assert "holds no manifest.json" in capsys.readouterr().err
    assert [p.name for p in out.iterdir()] == ["index.html"]
    assert [p.name for p in out.parent.iterdir()] == ["www"]


ODD = "photos/sp ace&x.jpg"  # a name a URL must escape
JPEG = b"\xff\xd8\xff\xe0 a made-up picture \xff\xd9"


LINK_ATTRIBUTES = {"href", "url", "src", "xmlUrl", "htmlUrl"}  # Atom, RSS, MRSS, OPML
LINK_ELEMENTS = {"link", "guid", "url", "icon", "logo", "comments"}  # RSS, Atom
JSON_LINKS = {"url", "external_url", "home_page_url", "feed_url", "next_url", "icon",
              "favicon", "image", "banner_image", "avatar"}  # JSON Feed 1.1


def named_urls(body: bytes, content_type: str) -> set[str]:
    """Return every absolute URL a feed or OPML list names as a link, as parsed."""
    found: set[str] = set()
    if content_type.startswith("application/feed+json"):
        def walk(value: object) -> None:
            if isinstance(value, dict):
                found.update(v for k, v in value.items() if k in JSON_LINKS and isinstance(v, str))
                for item in value.values():
                    walk(item)
            elif isinstance(value, list):
                for item in value:
                    walk(item)
        walk(json.loads(body))
    else:
        for element in etree.fromstring(body).iter(etree.Element):
            found.update(v for k, v in element.attrib.items() if k in LINK_ATTRIBUTES)
            if etree.QName(element).localname in LINK_ELEMENTS and element.text:
                found.add(element.text.strip())
    return {url for url in found if url.startswith(BASE_URL)}


@pytest.fixture
def static_export(make_dataset: Callable[..., Path], tmp_path: Path
                  ) -> Iterator[tuple[int, dict[str, object]]]:
    """An export of a dataset with an oddly named picture, served by a real static nginx."""
    release = release_yaml(1, "2005-01-01", title="With a picture")
    release["image"] = {"src": ODD, "alt": "A picture"}
    release["attachments"] = [{"src": "a report (final).pdf", "title": "The report"}]
    root = make_dataset([release, release_yaml(2, "2004-12-01")])
    (root / "media" / "photos").mkdir(parents=True)
    (root / "media" / ODD).write_bytes(JPEG)
    (root / "media" / "a report (final).pdf").write_bytes(b"%PDF-1.4\n% made up\n")
    manifest = export(create_app({"FEEDSVC_DATA": str(root), "FEEDSVC_BASE_URL": BASE_URL}),
                      tmp_path / "site")
    port = servers.free_port()
    conf = tmp_path / "static.conf"
    conf.write_text(servers.STATIC_NGINX.format(port=port, root=tmp_path / "site"))
    nginx = servers.start_nginx(tmp_path, conf, port)
    yield port, manifest
    nginx.stop()


def fetch(port: int, path: str) -> tuple[int, bytes]:
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
    try:
        conn.request("GET", path)
        response = conn.getresponse()
        return response.status, response.read()
    finally:
        conn.close()


def test_a_static_server_over_the_export_answers_every_url_its_files_name(
        static_export: tuple[int, dict[str, object]], tmp_path: Path) -> None:
    port, manifest = static_export
    files = manifest["files"]
    assert isinstance(files, list)
    assert (tmp_path / "site" / "media" / ODD).read_bytes() == JPEG  # its real name on disk
    named: set[str] = set()
    for entry in files:
        if not entry["path"].startswith("media/") and not entry["path"].endswith(".xsl"):
            status, body = fetch(port, f"/{quote(entry['path'])}")
            assert status == 200, entry["path"]
            named |= named_urls(body, entry["content_type"])
    # Release pages and the home page are the service's, not the export's; every feed,
    # list, stylesheet and media file a feed names must be there.
    exported = {url for url in named if urlsplit(url).path.startswith(("/feeds", "/media/"))}
    assert {urlsplit(url).path for url in exported} >= {
        "/feeds/all.rss", "/feeds/countries/th.atom", f"/media/{quote(ODD)}",
        "/media/a%20report%20%28final%29.pdf"}
    for url in sorted(exported):
        parts = urlsplit(url)
        status, body = fetch(port, parts.path + (f"?{parts.query}" if parts.query else ""))
        assert status == 200, url
    assert fetch(port, f"/media/{quote(ODD)}") == (200, JPEG)
