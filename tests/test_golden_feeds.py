"""Every feed and page keeps its bytes: digests captured from the code before the store moves to
SQLite (issue 19), so that the switch, or any change to the store, shows each URL it alters.

Two datasets: the bundled sample (data/) and a synthetic 10,000-release archive with every
lifecycle field (`feedsvc synth 10000 --lifecycle`: drafts, withdrawals with and without
notices, corrections, pictures and attachments), read at fixed instants: before and after the
first scheduled release goes live, and after every withdrawal notice has ended. For each URL of
a broad matrix (tests/golden/*.json keeps, per URL, the status, the content type and the
body's sha256) the test fails naming the URLs whose bytes changed, appeared or went.

The synthetic text is ASCII, so its digests do not depend on how `q` folds non-ASCII words;
the queries that do are a group of their own (`non_ascii`), to regenerate alone when that
folding changes on purpose.

Regenerate after an intended change of bytes (the commit message must say why the bytes
changed, and a reviewer should read the diff of tests/golden/ with it):
    .venv/bin/python -m tests.test_golden_feeds [GROUP ...]   (groups: seed, synth, non_ascii)
"""
from __future__ import annotations

import functools
import hashlib
import json
import os
import sys
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from urllib.parse import quote

import feedparser
import pytest
from flask import Flask
from flask.testing import FlaskClient
from lxml import etree

from feedsvc import create_app
from feedsvc.clock import set_clock
from feedsvc.config import BUNDLED_DATA
from feedsvc.dataset import Dataset, Release, load_dataset

from .conftest import BASE_URL

GOLDEN = Path(__file__).resolve().parent / "golden"
SYNTH_COUNT = 10_000
FORMATS = ("rss", "atom", "json")
# The synthetic archive ends on 2024-10-01: at this instant its last four months are scheduled.
SYNTH_NOW = datetime(2024, 6, 1, 3, 0, tzinfo=UTC)
SEED_NOW = datetime(2025, 1, 1, tzinfo=UTC)
LATER = timedelta(days=3650)  # every scheduled release live, every withdrawal notice ended
ASCII_QUERIES = ("workers", "safety workers", "women workers rights", "MIGRANT", "tripartite",
                 "child labour hazardous work", "zzzz")
NON_ASCII_QUERIES = ("Genève", "ＷＯＲＫＥＲＳ", "ﬁnance", "straße", "İstanbul", "ǅ", "mi\u0301grant")
EXTRA = ("", "?limit=5", "?limit=100", "?since=2020-01-01", "?since=2030-01-01",
         "?country=th,kh", "?country=th,kh&topic=social-security",
         "?topic=social-security,labour-migration", "?q=workers&country=th",
         "?q=social+security&topic=social-security&country=kh,la,vn&limit=50", "?limit=0",
         "?since=yesterday", "?before=nonsense")


def _q(words: str) -> str:
    return "?q=" + quote(words)


def feed_urls(countries: tuple[str, ...], topics: tuple[str, ...]) -> list[str]:
    """Return the feed matrix: every format, scope and parameter set; words in `q` on `all`."""
    scopes = ["all", *(f"countries/{c}" for c in countries), *(f"topics/{t}" for t in topics)]
    urls = [f"/feeds/{scope}.{fmt}{extra}" for scope in scopes for fmt in FORMATS
            for extra in EXTRA]
    urls += [f"/feeds/{scope}.{fmt}{_q(words)}" for scope in ("all", f"countries/{countries[0]}")
             for fmt in FORMATS for words in ASCII_QUERIES]
    return urls


def page_urls(countries: tuple[str, ...], topics: tuple[str, ...], ids: list[str]) -> list[str]:
    """Return the HTML pages, embeds, directory, sitemap index and robots; release pages by id."""
    urls = ["/", "/?limit=100", "/feeds/", "/feeds.opml", "/sitemap.xml", "/robots.txt",
            "/embed.js", f"/?q={quote('safety workers')}"]
    for country in countries:
        urls += [f"/countries/{country}", f"/countries/{country}?topic=social-security",
                 f"/embed/countries/{country}", f"/embed/countries/{country}?limit=3"]
    for topic in topics:
        urls += [f"/topics/{topic}", f"/topics/{topic}?q=workers", f"/embed/topics/{topic}"]
    return urls + [f"/releases/{rid}" for rid in ids] + ["/releases/no-such-release"]


@dataclass
class Capture:
    """What one app serves at one instant: URL -> "status content-type sha256"."""

    client: FlaskClient
    seen: dict[str, str]
    media: set[str] = field(default_factory=set)  # local media URLs the JSON feeds name

    def get(self, url: str) -> bytes:
        response = self.client.get(url)
        body = response.get_data()
        digest = hashlib.sha256(body).hexdigest()
        self.seen[url] = f"{response.status_code} {response.content_type} {digest}"
        if response.status_code == 200 and url.partition("?")[0].endswith(".json"):
            local = BASE_URL + "media/"
            self.media |= {a["url"].removeprefix(BASE_URL.rstrip("/"))
                           for item in json.loads(body)["items"]
                           for a in item.get("attachments", ()) if a["url"].startswith(local)}
        return body

    def walk(self, url: str, limit: int = 60) -> None:
        """Follow a feed's `next` links to its last page, and ask each page's HTML twin."""
        pages = 0
        while url and pages < limit:
            body, pages = self.get(url), pages + 1
            path, _, query = url.partition("?")
            if "?" in url and "/feeds/" in path:
                scope = path.removeprefix("/feeds/").rsplit(".", 1)[0]
                if scope != "all":
                    self.get(f"/{scope}?{query}")
            if path.endswith(".json"):
                following = json.loads(body).get("next_url", "")
            else:
                links = feedparser.parse(body).feed.get("links", [])
                following = next((link.href for link in links if link.rel == "next"), "")
            url = following.removeprefix(BASE_URL.rstrip("/"))

    def sitemap(self) -> None:
        """Ask the sitemap index, then every part it names."""
        index = etree.fromstring(self.get("/sitemap.xml"))
        for loc in index.iterfind(".//{*}sitemap/{*}loc"):
            self.get((loc.text or "").removeprefix(BASE_URL.rstrip("/")))


def _releases(app: Flask) -> tuple[Dataset, list[Release]]:
    """Return the app's dataset as the YAML loader reads it, newest first as feeds list it:
    the URL matrix depends on the YAML alone, never on how the store keeps it."""
    return _read(str(app.config["FEEDSVC_DATA"]))


@functools.cache
def _read(data: str) -> tuple[Dataset, list[Release]]:
    # Once per folder: a test reads its dataset for the matrix and for the instants, and the
    # restart test reads the same archive again (10,000 releases: seconds each time). No test
    # here writes to a dataset folder once an app has been built from it.
    dataset = load_dataset(data)
    return dataset, sorted(dataset.releases, key=lambda r: (r.published, r.id), reverse=True)


def _dataset(app: Flask) -> tuple[tuple[str, ...], tuple[str, ...], list[str]]:
    dataset, releases = _releases(app)
    ids = [releases[n].id for n in range(0, len(releases), max(1, len(releases) // 150))]
    # And a third of the drafts and withdrawn releases: their pages are 404 and 410.
    ids += [r.id for r in releases if r.draft or r.withdrawn][::3]
    codes = sorted({c for r in releases for c in r.countries})
    topics = tuple(sorted(dataset.topics))
    # The busiest and some rare countries, lower case as readers write them; one unknown.
    common = [c.lower() for c in ("TH", "KH", "CN", "LA", "MN", "US") if c in codes]
    return (*common, *[c.lower() for c in codes if c.lower() not in common][:2], "zz"), topics, ids


def _fixed(instant: datetime) -> datetime:
    return instant


def capture_group(app: Flask, instants: dict[str, datetime], walks: list[str],
                  queries_only: tuple[str, ...] = ()) -> dict[str, dict[str, str]]:
    """Return, per instant, what every URL of the matrix gives (only `q` words if given)."""
    countries, topics, ids = _dataset(app)
    found: dict[str, dict[str, str]] = {}
    for label, instant in instants.items():
        set_clock(app, functools.partial(_fixed, instant))
        capture = Capture(app.test_client(), {})
        if queries_only:
            for words in queries_only:
                for fmt in FORMATS:
                    capture.get(f"/feeds/all.{fmt}{_q(words)}")
                capture.get(f"/countries/{countries[0]}{_q(words)}")
        else:
            for url in feed_urls(countries, topics) + page_urls(countries, topics, ids):
                capture.get(url)
            for url in walks:
                capture.walk(url)
            capture.sitemap()
            for url in sorted(capture.media) + ["/favicon.ico"]:
                capture.get(url)
        found[label] = dict(sorted(capture.seen.items()))
    return found


def first_scheduled(app: Flask, after: datetime) -> datetime:
    """Return when the first release scheduled after `after` goes live (drafts never do)."""
    return min(r.published for r in _releases(app)[1] if r.published > after and not r.draft)


def synth_instants(app: Flask) -> dict[str, datetime]:
    live = first_scheduled(app, SYNTH_NOW)
    return {"before-scheduled": SYNTH_NOW, "scheduled-live": live,
            "later": SYNTH_NOW + LATER}


SYNTH_WALKS = ["/feeds/countries/la.rss?limit=100", "/feeds/countries/mn.atom?limit=50",
               "/feeds/topics/social-dialogue.json?country=th&limit=100",
               f"/feeds/all.atom?q={quote('child labour')}&limit=100",
               "/feeds/topics/gender-equality.rss?since=2023-01-01&limit=30"]
SEED_WALKS = [f"/feeds/all.{fmt}?limit=3" for fmt in FORMATS] + ["/feeds/countries/th.rss?limit=1"]


def seed_app() -> Flask:
    return create_app({"FEEDSVC_DATA": str(BUNDLED_DATA), "FEEDSVC_BASE_URL": BASE_URL})


def synth_archive(where: Path) -> Path:
    from feedsvc.operations.synth import write_archive

    return write_archive(SYNTH_COUNT, where / "synth" / "archive.yaml", lifecycle=True)


def synth_app(archive: Path, **settings: object) -> Flask:
    # The sitemap in one file, as its bytes were captured (parts: tests/test_sitemap.py).
    return create_app({"FEEDSVC_DATA": str(archive), "FEEDSVC_BASE_URL": BASE_URL,
                       "FEEDSVC_SITEMAP_URLS": 50_000, **settings})


def compute(group: str, app: Flask, only: str | None = None) -> dict[str, dict[str, str]]:
    """Return the digests of one group, as tests/golden/<group>.json keeps them (or of its
    instant `only`)."""
    if group == "seed":
        return capture_group(app, {"now": SEED_NOW}, SEED_WALKS)
    if group == "synth":
        instants = {k: v for k, v in synth_instants(app).items() if only in (None, k)}
        return capture_group(app, instants, SYNTH_WALKS)
    return capture_group(app, {"now": SEED_NOW}, [], NON_ASCII_QUERIES)


def differences(expected: dict[str, dict[str, str]], got: dict[str, dict[str, str]]) -> list[str]:
    """Name each URL whose status, type or bytes changed, or that is new or gone."""
    lines = []
    for label in sorted(set(expected) | set(got)):
        want, have = expected.get(label, {}), got.get(label, {})
        for url in sorted(set(want) | set(have)):
            if want.get(url) != have.get(url):
                lines.append(f"[{label}] {url}: expected {want.get(url, 'no such URL')}, "
                             f"got {have.get(url, 'not requested')}")
    return lines


def check(group: str, app: Flask, only: str | None = None) -> None:
    expected = json.loads((GOLDEN / f"{group}.json").read_text(encoding="utf-8"))
    if only is not None:
        expected = {only: expected[only]}
    changed = differences(expected, compute(group, app, only))
    assert not changed, (f"{len(changed)} URLs changed their bytes (if on purpose, regenerate: "
                         f"python -m tests.test_golden_feeds {group}):\n" + "\n".join(changed[:40]))


@pytest.fixture(scope="module")
def synth_dirs(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    """The synthetic archive (made once per module) and a state directory of its own."""
    where = tmp_path_factory.mktemp("golden")
    return synth_archive(where), where / "state"


@pytest.fixture(scope="module")
def synth(synth_dirs: tuple[Path, Path]) -> Iterator[Flask]:
    archive, state_dir = synth_dirs
    yield synth_app(archive, FEEDSVC_SNAPSHOT_DIR=str(state_dir))


def test_the_sample_dataset_keeps_its_bytes() -> None:
    check("seed", seed_app())


def test_a_synthetic_archive_with_every_lifecycle_field_keeps_its_bytes(synth: Flask) -> None:
    check("synth", synth)


def test_a_restart_from_the_kept_state_serves_the_same_bytes(
        synth: Flask, synth_dirs: tuple[Path, Path]) -> None:
    """The cold start above kept its state; a restart serves from it (start check pending)."""
    archive, state_dir = synth_dirs  # the cold start committed its store before serving
    restarted = synth_app(archive, FEEDSVC_SNAPSHOT_DIR=str(state_dir),
                          FEEDSVC_START_CHECK="background", FEEDSVC_RELOAD_INTERVAL=5)
    readiness = restarted.test_client().get("/readyz").get_json()["dataset"]
    assert readiness["start_check"] == "pending", readiness
    check("synth", restarted, only="scheduled-live")


def test_queries_with_non_ascii_words_keep_their_bytes() -> None:
    check("non_ascii", seed_app())


def test_the_matrix_reaches_every_kind_of_answer(synth: Flask) -> None:
    """The digests cover what they claim: scheduled, withdrawn, draft and bad-request answers."""
    golden = json.loads((GOLDEN / "synth.json").read_text(encoding="utf-8"))
    before, live = golden["before-scheduled"], golden["scheduled-live"]
    statuses = {entry.split()[0] for entry in before.values()}
    assert {"200", "400", "404", "410"} <= statuses
    assert any(before[url] != live[url] for url in before if url.startswith("/feeds/all."))
    assert sum("/feeds/" in url and "before=" in url for url in before) >= 20


def test_synth_lifecycle_adds_every_lifecycle_field_and_keeps_the_rest(tmp_path: Path) -> None:
    from feedsvc.operations.cli import main as cli

    assert cli(["synth", "2000", str(tmp_path / "life"), "--split", "--lifecycle"]) == 0
    assert cli(["synth", "2000", str(tmp_path / "plain.yaml")]) == 0
    life, plain = load_dataset(tmp_path / "life"), load_dataset(tmp_path / "plain.yaml")
    releases = life.releases
    assert sum(r.draft for r in releases) >= 10
    assert sum(r.withdrawn is not None for r in releases) >= 20
    assert any(r.withdrawn_note for r in releases) and any(r.corrections for r in releases)
    media = [m for r in releases for m in ((r.image,) if r.image else ()) + r.attachments]
    assert {m.remote for m in media} == {True, False} and any(r.attachments for r in releases)
    assert all(m.digest for m in media if not m.remote)  # the files below media/ exist
    bare = [(r.id, r.title, r.published, r.countries, r.topics, r.summary) for r in releases]
    assert bare == [(r.id, r.title, r.published, r.countries, r.topics, r.summary)
                    for r in plain.releases]


def main(groups: list[str]) -> None:
    """Write tests/golden/<group>.json from the code as it is now."""
    with tempfile.TemporaryDirectory(prefix="feedsvc-golden-") as tmp:
        os.environ["FEEDSVC_SNAPSHOT_DIR"] = tmp  # as tests/conftest.py has it
        os.environ.setdefault("FEEDSVC_LOG_LEVEL", "WARNING")
        for group in groups or ["seed", "synth", "non_ascii"]:
            app = synth_app(synth_archive(Path(tmp))) if group == "synth" else seed_app()
            found = compute(group, app)
            GOLDEN.mkdir(exist_ok=True)
            (GOLDEN / f"{group}.json").write_text(json.dumps(found, indent=0, ensure_ascii=False)
                                                  + "\n", encoding="utf-8")
            print(f"{GOLDEN / group}.json: {sum(map(len, found.values()))} URLs")


if __name__ == "__main__":
    main(sys.argv[1:])
