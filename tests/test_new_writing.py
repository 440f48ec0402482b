"""Writing releases through the CLI with a controlled clock: the site's timezone, drafts that
survive a failed check, the lock, check-data's lifecycle counts, and the id ledger.

The command runs in-process (`cli.main`) so that the test's clock is the command's
(`newrelease.now`); the editor is a real process, as a writer's editor is.
"""
from __future__ import annotations

import fcntl
import os
import select
import subprocess
import sys
import textwrap
from collections.abc import Callable
from datetime import UTC, datetime
from email.utils import parsedate_to_datetime
from pathlib import Path

import pytest
import yaml
from lxml import etree

from feedsvc import create_app
from feedsvc.clock import set_clock
from feedsvc.operations import cli, newrelease

from .conftest import BASE_URL, FakeClock, release_yaml

# 06:04 on 7 December in Bangkok (the bundled site's timezone, UTC+7) is still 6 December in UTC.
BANGKOK_MORNING = datetime(2026, 12, 6, 23, 4, tzinfo=UTC)
OPTIONS = ["--title", "Decent work for domestic workers", "--country", "TH", "--topic",
           "social-security", "--summary", "A new study on domestic workers."]


@pytest.fixture
def clock(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> FakeClock:
    """The command's clock, standing at BANGKOK_MORNING; drafts go below tmp_path."""
    fake = FakeClock(BANGKOK_MORNING)
    monkeypatch.setattr(newrelease, "now", fake)
    monkeypatch.setenv("TMPDIR", str(tmp_path))
    monkeypatch.setattr("tempfile.tempdir", None)  # read TMPDIR again
    for name in ("EDITOR", "VISUAL", "FEEDSVC_DATA"):
        monkeypatch.delenv(name, raising=False)
    return fake


def run(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    code = cli.main(list(argv))
    out, err = capsys.readouterr()
    return code, out, err


def editor(tmp_path: Path, name: str, python: str) -> str:
    """Write a stand-in for a person at an editor: Python run on the file it is given."""
    script = tmp_path / f"{name}.py"
    script.write_text("import pathlib, sys\npath = pathlib.Path(sys.argv[1])\n"
                      "text = path.read_text(encoding='utf-8')\n" + textwrap.dedent(python))
    return f"{sys.executable} {script}"


def ledger(root: Path) -> list[str]:
    lines = (root / newrelease.LEDGER).read_text(encoding="utf-8").splitlines()
    return [line for line in lines if line and not line.startswith("#")]


def test_a_release_written_in_bangkok_is_dated_as_bangkok_sees_it(
        make_dataset: Callable[..., Path], clock: FakeClock,
        capsys: pytest.CaptureFixture[str]) -> None:
    root = make_dataset([release_yaml(1, "2026-11-02")])
    code, out, err = run(capsys, "new", "--data", str(root), *OPTIONS)
    assert code == 0, err
    path = root / "releases" / "pr-2026-001.yaml"
    assert out.strip() == f"{path}: release pr-2026-001"
    assert yaml.safe_load(path.read_text())["published"] == "2026-12-07T06:04:00+07:00"
    # A correction dated 7 December (Bangkok) is not "earlier than published".
    path.write_text(path.read_text() + "corrections:\n  - {date: 2026-12-07, note: A figure.}\n")
    code, out, err = run(capsys, "check-data", str(root))
    assert code == 0, err
    app = create_app({"FEEDSVC_DATA": str(root), "FEEDSVC_BASE_URL": BASE_URL})
    set_clock(app, FakeClock(BANGKOK_MORNING.replace(hour=23, minute=30)))
    page = app.test_client().get("/releases/pr-2026-001")
    assert page.status_code == 200
    dated = etree.HTML(page.data).xpath("//p[@class='meta']/time/text()")
    assert dated[0] == "7 December 2026"
    rss = etree.fromstring(app.test_client().get("/feeds/all.rss").data)
    (pub,) = rss.xpath("//item[guid[contains(., 'pr-2026-001')]]/pubDate/text()")
    published = parsedate_to_datetime(pub)
    assert (published.day, published.utcoffset()) == (7, BANGKOK_MORNING - BANGKOK_MORNING.replace(
        hour=16))
    # Late on 31 December in UTC is already the next year in Bangkok: so are the date and the id.
    clock.now = datetime(2026, 12, 31, 18, 0, tzinfo=UTC)
    code, out, err = run(capsys, "new", "--data", str(root), *OPTIONS)
    assert code == 0 and out.strip().endswith("release pr-2027-001"), err
    written = yaml.safe_load((root / "releases" / "pr-2027-001.yaml").read_text())
    assert written["published"] == "2027-01-01T01:00:00+07:00"


FIX_UK = "path.write_text(text.replace('UK', 'GB'), encoding='utf-8')\n"


def test_edit_keeps_a_draft_that_fails_the_check_and_resume_reopens_it(
        make_dataset: Callable[..., Path], clock: FakeClock, tmp_path: Path,
        capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch) -> None:
    root = make_dataset([release_yaml(1, "2026-11-02")])
    before = sorted(p.name for p in (root / "releases").iterdir())
    # The writer types the body and a country the check refuses (UK is GB), then quits.
    monkeypatch.setenv("EDITOR", editor(tmp_path, "typo", """
        text = text.replace("countries:\\n- TH", "countries:\\n- UK")
        path.write_text(text + "body: Three paragraphs of careful writing.\\n", encoding="utf-8")
    """))
    code, out, err = run(capsys, "new", "--data", str(root), "--edit", *OPTIONS)
    assert code == 1 and "UK" in err, err
    (draft_line,) = [line for line in err.splitlines() if "--resume" in line]
    draft = Path(draft_line.split("--resume ")[1])
    assert draft.parent == tmp_path and "Three paragraphs of careful writing." in draft.read_text()
    # The problem names the draft, at the line of the mistake (not a file that was never written).
    line = draft.read_text().splitlines().index("countries:") + 1
    assert f"{draft}:{line}: release pr-2026-001: field countries" in err, err
    assert str(root / "releases") not in err
    assert sorted(p.name for p in (root / "releases").iterdir()) == before
    assert not (root / newrelease.LEDGER).exists()
    # A second failure (the writer saves it unchanged) keeps the same draft.
    monkeypatch.setenv("EDITOR", editor(tmp_path, "unchanged", "pass\n"))
    code, out, err = run(capsys, "new", "--data", str(root), "--edit", "--resume", str(draft))
    assert code == 1 and str(draft) in err and draft.exists()
    # Fixed, an hour later: saved with the writer's text, the draft gone.
    clock.advance(hours=1)
    monkeypatch.setenv("EDITOR", editor(tmp_path, "fix", FIX_UK))
    code, out, err = run(capsys, "new", "--data", str(root), "--edit", "--resume", str(draft))
    assert code == 0, err
    saved = yaml.safe_load((root / "releases" / "pr-2026-001.yaml").read_text())
    assert saved["countries"] == ["GB"] and saved["body"] == "Three paragraphs of careful writing."
    assert saved["published"] == "2026-12-07T06:04:00+07:00"  # when it was first written
    assert not draft.exists() and ledger(root) == ["pr-2026-001"]
    code, out, err = run(capsys, "check-data", str(root))
    assert code == 0 and ": ok, 2 releases" in out


def test_a_draft_the_editor_removed_is_not_said_to_be_kept(
        make_dataset: Callable[..., Path], clock: FakeClock, tmp_path: Path,
        capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch) -> None:
    root = make_dataset([release_yaml(1, "2026-11-02")])
    monkeypatch.setenv("EDITOR", editor(tmp_path, "remove", "path.unlink()\n"))
    code, out, err = run(capsys, "new", "--data", str(root), "--edit", *OPTIONS)
    assert code == 1 and "is gone; nothing saved" in err, err
    assert "--resume" not in err and "kept" not in err
    assert not (root / "releases" / "pr-2026-001.yaml").exists()


def test_the_lock_is_not_held_while_the_editor_is_open(
        make_dataset: Callable[..., Path], clock: FakeClock, tmp_path: Path,
        capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch) -> None:
    root = make_dataset([release_yaml(1, "2026-11-02")])
    # While this writer's editor is open, a colleague runs `feedsvc new` on the same data: it
    # must finish (a lock held meanwhile would make it wait until the timeout).
    colleague = [sys.executable, "-m", "feedsvc", "new", "--data", str(root), "--published",
                 "2026-12-01", *OPTIONS]
    monkeypatch.setenv("EDITOR", editor(tmp_path, "meanwhile", f"""
        import subprocess
        try:
            done = subprocess.run({colleague!r}, capture_output=True, text=True, timeout=10,
                                  env={{"PATH": "/usr/bin:/bin"}})
            outcome = f"{{done.returncode}} {{done.stdout.strip()}}"
        except subprocess.TimeoutExpired:
            outcome = "timeout"
        (path.parent / "colleague.txt").write_text(outcome)
        path.write_text(text.replace("title: Decent", "title: Mine, decent"), encoding="utf-8")
    """))
    code, out, err = run(capsys, "new", "--data", str(root), "--edit", *OPTIONS)
    outcome = (tmp_path / "colleague.txt").read_text()
    assert outcome.startswith("0 ") and outcome.endswith("release pr-2026-001"), outcome
    # Both saved: this writer's id was taken meanwhile, so it got the next one.
    assert code == 0 and out.strip().endswith("release pr-2026-002"), err
    mine = yaml.safe_load((root / "releases" / "pr-2026-002.yaml").read_text())
    assert (mine["id"], mine["title"]) == ("pr-2026-002", "Mine, decent work for domestic workers")
    assert ledger(root) == ["pr-2026-001", "pr-2026-002"]


def test_new_records_only_the_id_it_issued(make_dataset: Callable[..., Path], clock: FakeClock,
                                           capsys: pytest.CaptureFixture[str]) -> None:
    quoting = {**release_yaml(1, "2026-11-02", title="Ledger id: pr-2026-060 explained"),
               "body": "Quoting an old file:\nid: pr-2026-050\n  - id: pr-2019-007\n"}
    root = make_dataset([quoting])
    code, out, err = run(capsys, "new", "--data", str(root), *OPTIONS)
    assert code == 0, err
    (issued,) = ledger(root)
    assert out.strip().endswith(f"release {issued}")
    code, out, err = run(capsys, "new", "--data", str(root), *OPTIONS)
    assert code == 0, err
    assert ledger(root) == [issued, out.strip().rsplit(" ", 1)[1]]


def test_check_data_counts_drafts_scheduled_and_withdrawn_and_warns_of_a_far_embargo(
        make_dataset: Callable[..., Path], clock: FakeClock,
        capsys: pytest.CaptureFixture[str]) -> None:
    root = make_dataset([
        release_yaml(1, "2026-11-02"),
        {**release_yaml(2, "2026-11-03"), "draft": True},
        {**release_yaml(3, "2026-12-24T09:00:00+07:00")},
        {**release_yaml(4, "2062-01-05")},
        {**release_yaml(5, "2026-10-01"), "withdrawn": "2026-11-01T10:00:00+07:00",
         "withdrawn_note": "The figures were provisional."},
    ])
    code, out, err = run(capsys, "check-data", str(root))
    assert code == 0
    lines = out.splitlines()
    assert lines[0].endswith(": ok, 5 releases, 7 topics, version " + lines[0].rsplit(" ", 1)[1])
    assert lines[1:] == ["  drafts: 1, scheduled: 2, withdrawn: 1",
                         "  scheduled: t-003 at 2026-12-24T09:00:00+07:00",
                         "  scheduled: t-004 at 2062-01-05T00:00:00+07:00"]
    assert err.splitlines() == ["warning: t-004 is scheduled for 2062-01-05T00:00:00+07:00, more "
                                "than a year ahead: is the year right?"]
    # At Christmas t-003 is out; in 2061 the embargo is no longer a year ahead.
    clock.now = datetime(2061, 3, 1, tzinfo=UTC)
    code, out, err = run(capsys, "check-data", str(root))
    assert code == 0 and err == ""
    assert out.splitlines()[1:] == ["  drafts: 1, scheduled: 1, withdrawn: 1",
                                    "  scheduled: t-004 at 2062-01-05T00:00:00+07:00"]


def test_a_writer_waiting_for_the_lock_is_told_so_and_then_saves(
        make_dataset: Callable[..., Path], tmp_path: Path) -> None:
    root = make_dataset([release_yaml(1, "2026-11-02")])
    held = os.open(root, os.O_RDONLY | os.O_DIRECTORY)
    fcntl.flock(held, fcntl.LOCK_EX)  # another writer, checking and saving
    try:
        waiting = subprocess.Popen([sys.executable, "-m", "feedsvc", "new", "--data", str(root),
                                    "--published", "2026-12-01", *OPTIONS], text=True,
                                   stdout=subprocess.PIPE, stderr=subprocess.PIPE)
        assert waiting.stderr is not None
        # Said before it blocks on the lock (a bound, not a pause: without the line, fail).
        assert select.select([waiting.stderr], [], [], 30)[0], "nothing said while waiting"
        said = waiting.stderr.readline()
        assert said.strip() == f"feedsvc new: waiting for another writer's lock on {root}"
        assert waiting.poll() is None
    finally:
        os.close(held)
    out, err = waiting.communicate(timeout=60)
    assert waiting.returncode == 0 and out.strip().endswith("release pr-2026-001"), err
