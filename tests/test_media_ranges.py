"""/media/ by the book: ranges (curl -r, a browser seeking), files streamed, and which types a
browser may show (pictures, audio, video, PDF) or must only download (HTML, SVG, the rest)."""
from __future__ import annotations

import hashlib
import os
import re
import subprocess
import tracemalloc
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
import yaml
from flask.testing import FlaskClient
from playwright.sync_api import Browser

from feedsvc import create_app

from .conftest import BASE_URL, release_yaml
from .mediafiles import pdf, wav
from .servers import Server, start_gunicorn
from .storedata import bundled_skeleton
from .test_browser import browser  # noqa: F401  (the module's Chromium)

REPORT = pdf("The annual report")
CLIP = wav(60)  # 960 KB: a browser fetches it in ranges as it seeks
BIG = os.urandom(3 << 20)
PAGE = b"<!doctype html><title>x</title><script>document.title = 'ran'</script>"
DRAWING = b'<svg xmlns="http://www.w3.org/2000/svg"><script>alert(1)</script></svg>'
FILES = {"report.pdf": REPORT, "clip.wav": CLIP, "big.bin": BIG, "page.html": PAGE,
         "drawing.svg": DRAWING, "dot.png": b"\x89PNG\r\n\x1a\n" + bytes(64)}


def short(body: bytes) -> str:
    return hashlib.sha256(body).hexdigest()[:16]


def write_dataset(root: Path) -> Path:
    bundled_skeleton(root)
    (root / "media").mkdir()
    for name, body in FILES.items():
        (root / "media" / name).write_bytes(body)
    release = release_yaml(1, "2005-01-01")
    release["attachments"] = [{"src": name, "title": name} for name in FILES]
    (root / "releases" / "t-001.yaml").write_text(yaml.safe_dump(release), encoding="utf-8")
    return root


@pytest.fixture(scope="module")
def data(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return write_dataset(tmp_path_factory.mktemp("media") / "data")


@pytest.fixture(scope="module")
def server(data: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    started = start_gunicorn(tmp_path_factory.mktemp("gunicorn"),
                             env={"FEEDSVC_DATA": str(data), "FEEDSVC_RELOAD_INTERVAL": "0"})
    yield started
    started.stop()
    assert "dataset check failed" not in started.log.read_text()


@pytest.fixture(scope="module")
def gunicorn(server: Server) -> str:
    return f"http://127.0.0.1:{server.port}"


def statuses(server: Server, path: str) -> list[str]:
    """Return the status of each request for `path` in the server's access log, in order."""
    return re.findall(rf"path={re.escape(path)} query=\S* status=(\d+)", server.log.read_text())


def curl(*args: str) -> tuple[int, dict[str, str], bytes]:
    """Run curl; return the status, headers (lowercase names) and body of the last answer."""
    done = subprocess.run(["curl", "-sS", "-D", "-", "--max-time", "20", *args],
                          capture_output=True, check=True)
    head, _, body = done.stdout.partition(b"\r\n\r\n")
    lines = head.decode("latin-1").split("\r\n")
    headers = dict(line.split(": ", 1) for line in lines[1:])
    return int(lines[0].split()[1]), {k.lower(): v for k, v in headers.items()}, body


def test_curl_gets_a_range_with_the_full_files_validators(gunicorn: str) -> None:
    url = f"{gunicorn}/media/big.bin?v={short(BIG)}"
    status, full, body = curl(url)
    assert status == 200 and body == BIG and full["accept-ranges"] == "bytes"
    status, part, body = curl("-r", "1000-1999", url)
    assert status == 206 and body == BIG[1000:2000]
    assert part["content-range"] == f"bytes 1000-1999/{len(BIG)}"
    assert part["content-length"] == "1000"
    assert part["etag"] == full["etag"] == f'"{hashlib.sha256(BIG).hexdigest()[:32]}"'
    assert part["cache-control"] == full["cache-control"] == "public, max-age=31536000, immutable"
    status, tail, body = curl("-r", "-100", url)  # the last 100 bytes
    assert status == 206 and body == BIG[-100:]


def test_an_unsatisfiable_range_is_416_and_never_cached(gunicorn: str) -> None:
    status, headers, _ = curl("-r", f"{len(BIG)}-", f"{gunicorn}/media/big.bin")
    assert status == 416
    assert headers["content-range"] == f"bytes */{len(BIG)}"
    assert headers["cache-control"] == "no-store"


def test_curl_resumes_a_broken_download(gunicorn: str, tmp_path: Path) -> None:
    target = tmp_path / "big.bin"
    target.write_bytes(BIG[:1234567])  # what a dropped connection left
    done = subprocess.run(["curl", "-sS", "-C", "-", "-o", str(target), "-w", "%{http_code}",
                           f"{gunicorn}/media/big.bin"], capture_output=True, check=True)
    assert done.stdout == b"206"
    assert target.read_bytes() == BIG


def test_if_range_gives_the_part_only_while_the_file_is_the_same(data: Path) -> None:
    client = create_app({"FEEDSVC_DATA": str(data), "FEEDSVC_BASE_URL": BASE_URL}).test_client()
    first = client.get("/media/report.pdf", buffered=True)
    etag, modified = first.headers["ETag"], first.headers["Last-Modified"]
    for validator in (etag, modified):
        part = client.get("/media/report.pdf", buffered=True,
                          headers={"Range": "bytes=0-3", "If-Range": validator})
        assert part.status_code == 206 and part.data == b"%PDF"
    whole = client.get("/media/report.pdf", buffered=True,
                       headers={"Range": "bytes=0-3", "If-Range": '"an-older-version"'})
    assert whole.status_code == 200 and whole.data == REPORT
    fresh = client.get("/media/report.pdf", buffered=True, headers={"If-None-Match": etag})
    assert fresh.status_code == 304 and fresh.data == b""


def test_a_large_file_is_streamed_not_read_whole(data: Path) -> None:
    client: FlaskClient = create_app({"FEEDSVC_DATA": str(data),
                                      "FEEDSVC_BASE_URL": BASE_URL}).test_client()
    client.get("/media/big.bin", buffered=True)  # the first request hashes the file once
    tracemalloc.start()
    try:
        with client.get("/media/big.bin", buffered=False) as response:
            received = b"".join(hashlib.sha256(bytes(chunk)).digest()
                                for chunk in response.iter_encoded())
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert len(received) > 32 * 10  # it came in pieces
    assert peak < len(BIG) // 4, f"{peak} bytes held for a {len(BIG)}-byte file"


@pytest.mark.parametrize("name,mimetype", [("page.html", "text/html"),
                                           ("drawing.svg", "image/svg+xml"),
                                           ("big.bin", "application/octet-stream")])
def test_anything_but_pictures_sound_video_and_pdf_is_only_downloaded(
        data: Path, name: str, mimetype: str) -> None:
    client = create_app({"FEEDSVC_DATA": str(data), "FEEDSVC_BASE_URL": BASE_URL}).test_client()
    response = client.get(f"/media/{name}", buffered=True)
    assert response.status_code == 200 and response.mimetype == mimetype
    assert response.headers["Content-Disposition"] == f"attachment; filename={name}"
    policy = [d.strip() for d in response.headers["Content-Security-Policy"].split(";")]
    assert "sandbox" in policy and "default-src 'none'" in policy


@pytest.mark.parametrize("name", ["report.pdf", "clip.wav", "dot.png"])
def test_pictures_sound_video_and_pdf_are_shown(data: Path, name: str) -> None:
    client = create_app({"FEEDSVC_DATA": str(data), "FEEDSVC_BASE_URL": BASE_URL}).test_client()
    response = client.get(f"/media/{name}", buffered=True)
    assert response.status_code == 200
    assert response.headers["Content-Disposition"] == f"inline; filename={name}"


def test_chromium_opens_a_pdf_in_its_viewer(gunicorn: str, browser: Browser) -> None:  # noqa: F811
    context = browser.new_context()
    page = context.new_page()
    downloads: list[object] = []
    page.on("download", lambda download: downloads.append(download))
    with page.expect_event("framenavigated",
                           lambda frame: frame.url.startswith("chrome-extension://")) as opened:
        response = page.goto(f"{gunicorn}/media/report.pdf?v={short(REPORT)}")
    assert response is not None and response.status == 200
    viewer = opened.value
    # The viewer says how the load ended ('success' or 'failed') once it has.
    state = viewer.evaluate("""() => new Promise(ok => { const timer = setInterval(() => {
        const state = document.querySelector('pdf-viewer')?.loadState_;
        if (state && state !== 'loading') { clearInterval(timer); ok(state); } }, 50); })""")
    assert state == "success"
    assert viewer.evaluate("document.querySelector('pdf-viewer').docLength_") == 1
    assert downloads == []
    context.close()


def test_chromium_plays_a_clip_by_ranges(server: Server, gunicorn: str,
                                                     browser: Browser) -> None:  # noqa: F811
    context = browser.new_context()
    page = context.new_page()
    page.goto(f"{gunicorn}/media/clip.wav")  # a media document: Chromium's own <video>
    video = page.locator("video")
    # Resolves when the clip can be played, rejects when the browser gives up on it.
    ready = """v => new Promise((ok, fail) => {
        const failed = () => fail(new Error('the player gave up: network state ' + v.networkState));
        v.onloadedmetadata = () => ok();
        v.querySelector('source').onerror = failed;
        if (v.readyState >= 1) ok(); else if (v.networkState === 3) failed(); })"""
    video.evaluate(ready)
    assert video.evaluate("v => v.duration") == pytest.approx(60, abs=0.1)
    assert video.evaluate("v => v.seekable.length") == 1
    assert video.evaluate("v => v.seekable.end(0)") == pytest.approx(60, abs=0.1)
    context.close()
    answered = statuses(server, "/media/clip.wav")
    # The navigation, then the player's own requests: ranges.
    assert answered[0] == "200" and answered[1:] and set(answered[1:]) == {"206"}


def test_a_replaced_file_is_served_afresh_and_an_old_range_is_refused(
        make_dataset: Callable[..., Path], tmp_path: Path) -> None:
    root = write_dataset(tmp_path / "edited")
    client = create_app({"FEEDSVC_DATA": str(root), "FEEDSVC_BASE_URL": BASE_URL}).test_client()
    old = client.get("/media/report.pdf", buffered=True).headers["ETag"]
    new = pdf("The annual report, corrected")
    (root / "media" / "report.pdf").write_bytes(new)
    os.utime(root / "media" / "report.pdf", ns=(1, 1))
    resumed = client.get("/media/report.pdf", buffered=True,
                         headers={"Range": "bytes=100-", "If-Range": old})
    assert resumed.status_code == 200 and resumed.data == new  # not a piece of the old file
    assert resumed.headers["ETag"] == f'"{hashlib.sha256(new).hexdigest()[:32]}"'
    part = client.get("/media/report.pdf", buffered=True,
                      headers={"Range": "bytes=100-", "If-Range": resumed.headers["ETag"]})
    assert part.status_code == 206 and part.data == new[100:]
