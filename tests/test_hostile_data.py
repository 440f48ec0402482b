"""Hostile datasets: each loads into a valid feed or is refused precisely, in bounded memory and time."""
from __future__ import annotations

import json
import os
import resource
import subprocess
import sys
from pathlib import Path
from typing import Any

import lxml.etree
import lxml.html
import pytest
from flask import Flask

from feedsvc import create_app
from feedsvc.dataset import DatasetError, load_dataset
from feedsvc.operations.reload import reloader

from .helpers import parse_feed

ROOT = Path(__file__).resolve().parent.parent
BASE = "https://feeds.example.org/"
RELEASE = """\
id: pr-hostile
type: press-release
title: {title}
published: {published}
countries: [TH]
topics: [social-security]
summary: {summary}
"""
GOOD = RELEASE.format(title="Fine", published="2005-02-01", summary="Fine.")
# Loads one dataset in a fresh interpreter with a 2 GB address-space cap (so that a regression
# fails this test instead of the machine) and says what happened, how long, and how much memory.
PROBE = """
import json, resource, sys, time
from feedsvc.config import from_env
from feedsvc.dataset import DatasetError, load_dataset
before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
start = time.perf_counter()
try:
    data = load_dataset(sys.argv[1], from_env()["FEEDSVC_MAX_FILE_BYTES"])
    out = {"ok": True, "releases": len(data.releases)}
except DatasetError as error:
    out = {"ok": False, "problems": [str(p) for p in error.problems[:5]], "count": len(error.problems)}
except BaseException as error:  # what the test must never see
    out = {"ok": False, "crash": f"{type(error).__name__}: {str(error)[:300]}"}
out["seconds"] = time.perf_counter() - start
out["rss_growth_mb"] = (resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - before) / 1024
print(json.dumps(out))
"""


def _cap_memory() -> None:
    resource.setrlimit(resource.RLIMIT_AS, (2 << 30, 2 << 30))


def probe(data: Path, **env: str) -> dict[str, Any]:
    """Load `data` in a subprocess; return its outcome, seconds and peak RSS growth (MB)."""
    done = subprocess.run([sys.executable, "-c", PROBE, str(data)], cwd=ROOT, capture_output=True,
                          text=True, timeout=120, env={**os.environ, **env},
                          preexec_fn=_cap_memory, check=False)
    assert done.returncode == 0, done.stderr[-2000:]
    outcome: dict[str, Any] = json.loads(done.stdout)
    assert "crash" not in outcome, outcome
    return outcome


def write_release(dataset_dir: Path, text: str | bytes) -> Path:
    path = dataset_dir / "releases" / "hostile.yaml"
    path.write_bytes(text if isinstance(text, bytes) else text.encode())
    return path


def refused(dataset_dir: Path) -> list[str]:
    with pytest.raises(DatasetError) as caught:
        load_dataset(dataset_dir)
    return [str(p) for p in caught.value.problems]


def laughs(levels: int, first: str) -> str:
    """Return the classic "billion laughs": each level a list of nine aliases of the last."""
    lines = [f"l0: &l0 [{', '.join([first] * 9)}]"]
    lines += [f"l{i}: &l{i} [{', '.join([f'*l{i - 1}'] * 9)}]" for i in range(1, levels)]
    return "\n".join(lines) + "\n"


BOMBS = {
    # 9**9 lists of strings, in a release's title: printing it in a problem would expand it.
    "lists": laughs(9, '"lol"') + GOOD.replace("title: Fine", "title: *l8"),
    # the strings version: a long anchored string, aliased 9**9 times.
    "strings": f"s: &s {'lol' * 1000}\n" + laughs(9, "*s")
    + GOOD.replace("title: Fine", "title: *l8"),
    # YAML 1.1 merge keys: each level merges nine copies of the one before.
    "merge keys": "m0: &m0 {a: 1, b: 2}\n" + "".join(
        f"m{i}: &m{i} {{<<: [{', '.join([f'*m{i - 1}'] * 9)}]}}\n" for i in range(1, 10)),
}


@pytest.mark.parametrize("kind", BOMBS)
def test_alias_bombs_are_refused_at_the_anchor_quickly(dataset_dir: Path, kind: str) -> None:
    write_release(dataset_dir, BOMBS[kind])
    outcome = probe(dataset_dir)
    assert outcome["ok"] is False
    problems = outcome["problems"]
    assert isinstance(problems, list) and len(problems) == 1
    assert "hostile.yaml:" in problems[0] and "aliases are not allowed" in problems[0]
    assert float(outcome["seconds"]) < 5 and float(outcome["rss_growth_mb"]) < 100, outcome


def test_an_alias_is_refused_with_its_line(dataset_dir: Path) -> None:
    write_release(dataset_dir, GOOD.replace("countries: [TH]", "countries: &c [TH]")
                  + "dateline: *c\n")
    [problem] = refused(dataset_dir)
    assert problem.endswith("hostile.yaml:5: malformed YAML: this value is used again by an alias "
                            "(*name): aliases are not allowed, write the value out in full")


@pytest.mark.parametrize("opening", ["[", "{a: ", "- ", "{? "])
def test_10000_levels_of_nesting_are_refused(dataset_dir: Path, opening: str) -> None:
    write_release(dataset_dir, "summary: " + opening * 10_000 + "x\n")
    outcome = probe(dataset_dir)
    problems = outcome["problems"]
    assert isinstance(problems, list) and len(problems) == 1
    assert "hostile.yaml:1: malformed YAML:" in problems[0]
    assert float(outcome["seconds"]) < 5 and float(outcome["rss_growth_mb"]) < 100, outcome


def test_nesting_within_the_parser_limit_is_refused_before_recursion(dataset_dir: Path) -> None:
    write_release(dataset_dir, GOOD + "body:\n" + "".join(
        "  " * (i + 1) + "a:\n" for i in range(900)) + "  " * 901 + "x\n")
    [problem] = refused(dataset_dir)
    assert "hostile.yaml:" in problem and "nested more than 32 levels deep" in problem


@pytest.mark.parametrize(("value", "message"), [
    ("!!map [a, b]", "expected a mapping node, but found sequence"),
    ("!!seq {a: b}", "expected a sequence node, but found mapping"),
])
def test_a_tag_that_does_not_fit_its_node_is_refused_with_its_line(
        dataset_dir: Path, value: str, message: str) -> None:
    write_release(dataset_dir, GOOD.replace("title: Fine", f"title: {value}"))
    assert refused(dataset_dir) == [f"{dataset_dir}/releases/hostile.yaml:3: malformed YAML: "
                                    f"{message}"]


def test_a_100_mb_file_is_refused_by_its_size_without_reading_it(dataset_dir: Path) -> None:
    path = write_release(dataset_dir, GOOD)
    with path.open("ab") as out:
        out.write(b"# " + b"x" * (100 * 2**20) + b"\n")
    outcome = probe(dataset_dir)
    assert outcome["problems"] == [
        f"{path}: larger than {64 * 2**20} bytes (FEEDSVC_MAX_FILE_BYTES); split it into several files"]
    assert float(outcome["seconds"]) < 5 and float(outcome["rss_growth_mb"]) < 200, outcome


def test_a_100_mb_file_under_a_raised_limit_loads_in_bounded_memory_and_time(
        dataset_dir: Path) -> None:
    path = write_release(dataset_dir, RELEASE.format(title="Big", published="2005-02-01",
                                                     summary="x" * (100 * 2**20)))
    outcome = probe(dataset_dir, FEEDSVC_MAX_FILE_BYTES=str(200 * 2**20))
    assert outcome["problems"] == [f"{path}:7: release pr-hostile: field summary: is "
                                   f"{100 * 2**20} characters long; at most 5000 allowed"]
    assert float(outcome["seconds"]) < 30 and float(outcome["rss_growth_mb"]) < 1024, outcome


def test_non_utf8_bytes_are_refused_with_their_line(dataset_dir: Path) -> None:
    write_release(dataset_dir, GOOD.replace("Fine.", "Caf\xe9").encode("latin-1"))
    assert refused(dataset_dir) == [
        f"{dataset_dir}/releases/hostile.yaml:7: not UTF-8 text (byte {GOOD.index('Fine.') + 3})"]


def test_a_fifo_or_a_broken_link_is_reported_not_waited_for(dataset_dir: Path) -> None:
    os.mkfifo(dataset_dir / "releases" / "pipe.yaml")
    (dataset_dir / "releases" / "gone.yaml").symlink_to(dataset_dir / "nowhere.yaml")
    assert refused(dataset_dir) == [f"{dataset_dir}/releases/gone.yaml: not a regular file",
                                    f"{dataset_dir}/releases/pipe.yaml: not a regular file"]


def test_links_out_of_the_dataset_folder_are_refused_unread(dataset_dir: Path,
                                                            tmp_path: Path) -> None:
    outside = tmp_path / "elsewhere"
    outside.mkdir()
    (outside / "pr-elsewhere.yaml").write_text(GOOD.replace("pr-hostile", "pr-elsewhere"))
    (dataset_dir / "releases" / "status.yaml").symlink_to("/proc/self/status")
    (dataset_dir / "releases" / "up.yaml").symlink_to(outside / "pr-elsewhere.yaml")
    (dataset_dir / "releases" / "more").symlink_to(outside)
    problems = refused(dataset_dir)
    assert problems == [f"{dataset_dir}/releases/{name}: links to a file outside the dataset "
                        "folder: refused" for name in ("more/pr-elsewhere.yaml", "status.yaml",
                                                       "up.yaml")]
    assert not any("VmRSS" in p or "Name" in p for p in problems)  # /proc/self/status unread


def test_links_that_stay_inside_the_dataset_folder_load(dataset_dir: Path, tmp_path: Path) -> None:
    # As a Kubernetes ConfigMap volume: name -> ..data/name -> ..<timestamp>/name, all inside.
    payload = dataset_dir / "..2026_11_30_00_00_00.000000000"
    payload.mkdir()
    (payload / "pr-hostile.yaml").write_text(GOOD)
    (dataset_dir / "..data").symlink_to(payload.name)
    (dataset_dir / "releases" / "pr-hostile.yaml").symlink_to("../..data/pr-hostile.yaml")
    (tmp_path / "linked-root").symlink_to(dataset_dir)  # the folder given may itself be a link
    for root in (dataset_dir, tmp_path / "linked-root"):
        assert "pr-hostile" in {r.id for r in load_dataset(root).releases}


def serve(dataset_dir: Path) -> Flask:
    return create_app({"FEEDSVC_DATA": str(dataset_dir), "FEEDSVC_BASE_URL": BASE})


def test_control_characters_are_removed_from_titles(dataset_dir: Path) -> None:
    write_release(dataset_dir, RELEASE.format(title=r'"Bell\x01 \x07and\x1b[31m red\x7f"',
                                              published="2005-02-01", summary=r'"Nul\0 here"'))
    client = serve(dataset_dir).test_client()
    entry = parse_feed(client.get("/feeds/all.atom")).entries[0]
    assert entry.title == "Bell and[31m red\x7f" and entry.summary == "Nul here"
    item = json.loads(client.get("/feeds/all.json").data)["items"][0]
    assert item["title"] == "Bell and[31m red\x7f"


def test_lone_surrogates_are_refused_with_their_line(dataset_dir: Path) -> None:
    write_release(dataset_dir, RELEASE.format(title=r'"Half \ud800 a pair"',
                                              published="2005-02-01", summary="Fine."))
    [problem] = refused(dataset_dir)
    assert problem.startswith(f"{dataset_dir}/releases/hostile.yaml:3: malformed YAML:")
    assert "invalid Unicode character escape code" in problem


def test_an_unprintable_key_does_not_break_the_report(dataset_dir: Path) -> None:
    write_release(dataset_dir, GOOD + '"\\x1b[2Jbad\\nkey": 1\n')
    done = subprocess.run([sys.executable, "-m", "feedsvc", "check-data", str(dataset_dir)],
                          cwd=ROOT, capture_output=True, timeout=60, check=False,
                          env={**os.environ, "PYTHONIOENCODING": "utf-8:strict"})
    assert done.returncode == 1, done.stderr
    report = done.stderr.decode()
    assert "hostile.yaml:8: release pr-hostile: field \\x1b[2Jbad\\nkey: unknown field" in report
    assert "\x1b" not in report and report.count("\n") == 2


def shown(detail: dict[str, str]) -> str:
    """Return the text a feed reader shows for a feedparser text construct."""
    if detail["type"] != "text/html":
        return detail["value"]
    return str(lxml.html.fragment_fromstring(detail["value"], create_parent="div").text_content())


@pytest.mark.parametrize("value", ["<script>alert(1)</script> ]]> & <![CDATA[x]]>",
                                   "]]>]]><!-- --></summary></entry><b>"])
def test_markup_in_text_is_text_in_every_format_and_page(dataset_dir: Path, value: str) -> None:
    quoted = json.dumps(value)
    write_release(dataset_dir, RELEASE.format(title=quoted, published="2005-02-01", summary=quoted))
    client = serve(dataset_dir).test_client()
    for fmt in ("rss", "atom"):
        entry = parse_feed(client.get(f"/feeds/all.{fmt}")).entries[0]
        assert entry.title == value and shown(entry.summary_detail) == value, fmt
    item = json.loads(client.get("/feeds/all.json").data)["items"][0]
    assert item["title"] == value and item["summary"] == value
    for page in ("/", "/releases/pr-hostile"):
        html = client.get(page).get_data(as_text=True)
        assert "<script>" not in html and "</summary>" not in html, page
        assert "&lt;script&gt;" in html or "&lt;/summary&gt;" in html


@pytest.mark.parametrize(("published", "message"), [
    ("0000-01-01", "year 0 is out of range"),
    ("9999-12-31", "the year must be from 1900 to 2999"),
    ("9999-12-31T23:59:59+14:00", "the year must be from 1900 to 2999"),
    ("0001-01-01T00:00:00-12:00", "the year must be from 1900 to 2999"),
])
def test_dates_in_year_0_and_9999_are_refused_with_field_and_line(
        dataset_dir: Path, published: str, message: str) -> None:
    write_release(dataset_dir, RELEASE.format(title="Old", published=published, summary="Old."))
    [problem] = refused(dataset_dir)
    assert problem.startswith(f"{dataset_dir}/releases/hostile.yaml:4: release pr-hostile: "
                              f"field published: '{published}' is not a valid date")
    assert message in problem


@pytest.mark.parametrize("url", ["https://[::1/x", "http://exa\uff0fmple.org/"])
def test_a_url_that_urlsplit_refuses_is_a_problem_with_its_line(dataset_dir: Path,
                                                                url: str) -> None:
    write_release(dataset_dir, GOOD + f"url: {json.dumps(url)}\n")
    assert refused(dataset_dir) == [f"{dataset_dir}/releases/hostile.yaml:8: release "
                                    f"pr-hostile: field url: {url!r} is not an absolute "
                                    "http(s) URL"]


@pytest.mark.parametrize("url", ["https://[::1/x.png", "http://exa\uff0fmple.org/x.png"])
def test_a_site_picture_url_that_urlsplit_refuses_is_a_problem_with_its_line(dataset_dir: Path,
                                                                             url: str) -> None:
    site = dataset_dir / "site.yaml"
    text = site.read_text()
    site.write_text(text + f"  icon: {json.dumps(url)}\n")
    line = text.count("\n") + 1
    assert refused(dataset_dir) == [f"{site}:{line}: field icon: {url!r} is not an absolute "
                                    "http(s) URL"]


def test_10000_topics_on_one_release_load_into_valid_feeds(dataset_dir: Path) -> None:
    slugs = [f"topic-{n:05d}" for n in range(10_000)]
    (dataset_dir / "more-topics.yaml").write_text("topics:\n" + "".join(
        f"  - {{slug: {s}, label: Topic {s}, description: About {s}.}}\n" for s in slugs))
    write_release(dataset_dir, GOOD.replace("[social-security]", f"[{', '.join(slugs)}]"))
    client = serve(dataset_dir).test_client()
    for fmt in ("rss", "atom"):
        entry = parse_feed(client.get(f"/feeds/topics/topic-09999.{fmt}")).entries[0]
        assert len([t for t in entry.tags if "/topics/" in (t.scheme or "")]) == 10_000
    item = json.loads(client.get("/feeds/all.json?topic=topic-00000").data)["items"][0]
    assert len(item["_feedsvc"]["topics"]) == 10_000


def test_10000_unknown_topics_are_each_reported(dataset_dir: Path) -> None:
    slugs = ", ".join(f"nope-{n}" for n in range(10_000))
    write_release(dataset_dir, GOOD.replace("[social-security]", f"[{slugs}]"))
    problems = refused(dataset_dir)
    assert len(problems) == 10_000
    assert problems[-1].startswith(f"{dataset_dir}/releases/hostile.yaml:6: release pr-hostile: "
                                   "field topics: 'nope-9999' is not a topic of the vocabulary")


def test_hostile_data_never_stops_a_running_service(dataset_dir: Path, tmp_path: Path) -> None:
    app = serve(dataset_dir)
    client = app.test_client()
    before = client.get("/feeds/all.rss").data
    for kind, text in BOMBS.items():
        write_release(dataset_dir, text)
        # What the watcher does on the change: the reload path, which must refuse it.
        assert reloader(app).check() == "rejected", kind
        assert client.get("/feeds/all.rss").data == before, kind
        ready = client.get("/readyz").get_json()
        assert ready["status"] == "degraded" and "hostile.yaml" in \
            ready["dataset"]["last_reload_error"], kind
    # Still reloading: a valid file in its place is served.
    write_release(dataset_dir, RELEASE.format(title='"After the bombs"', published="2005-02-01",
                                              summary="Fine."))
    assert reloader(app).check() == "reloaded"
    assert b"After the bombs" in client.get("/feeds/all.rss").data
    assert client.get("/readyz").get_json()["status"] == "ok"


@pytest.mark.parametrize("title", ['Gender <img src=x onerror="alert(1)"> equality',
                                   "Safety & health: 1 < 2 > 0", "Use <b>bold</b> &amp; more"])
def test_rss_titles_are_plain_text_with_hex_references(dataset_dir: Path, title: str) -> None:
    # RSS Best Practices Profile: titles are plain text; "&", "<", ">" as &#x26; &#x3C; &#x3E;.
    write_release(dataset_dir, RELEASE.format(title=json.dumps(title), published="2005-02-01",
                                              summary="Fine."))
    body = serve(dataset_dir).test_client().get("/feeds/all.rss").data
    item = lxml.etree.fromstring(body).find("channel/item")
    assert item.findtext("title") == title  # what any XML parser reads: the text itself
    raw = body.split(b"<item>")[1].split(b"</title>")[0]
    assert b"&lt;" not in raw and b"&amp;" not in raw and b"&gt;" not in raw, raw
    assert b"&#x3C;" in raw or b"&#x26;" in raw
    entry = parse_feed(serve(dataset_dir).test_client().get("/feeds/all.rss")).entries[0]
    if entry.title_detail["type"] == "text/plain":  # feedparser's guess: the literal text
        assert entry.title == title
    else:  # it guessed HTML (a closing tag): the literal is lost there, but nothing runs
        assert entry.title_detail["type"] == "text/html" and "</b>" in title
        assert "onerror" not in entry.title and "<script" not in entry.title
