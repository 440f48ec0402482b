"""`feedsvc new`: a valid release file with a fresh id, checked before it is saved."""
from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import yaml

from feedsvc import create_app
from feedsvc.dataset import load_dataset

from .conftest import BASE_URL, release_yaml

OPTIONS = ["--title", "Decent work for domestic workers", "--country", "th", "--country", "KH",
           "--topic", "social-security", "--published", "2024-03-05T09:00:00+07:00",
           "--summary", "A new study on domestic workers.", "--dateline", "BANGKOK"]


def new(root: Path, *args: str, editor: str | None = None) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if k not in ("EDITOR", "VISUAL")}
    if editor is not None:
        env["EDITOR"] = editor
    env["TMPDIR"] = str(root.parent)  # where a failed --edit keeps its draft
    return subprocess.run([sys.executable, "-m", "feedsvc", "new", "--data", str(root), *args],
                          capture_output=True, text=True, env=env, timeout=60)


def files(root: Path) -> dict[str, bytes]:
    return {str(p.relative_to(root)): p.read_bytes() for p in sorted(root.rglob("*"))
            if p.is_file()}


def test_new_writes_a_valid_release_from_options(make_dataset: Callable[..., Path]) -> None:
    root = make_dataset([release_yaml(1, "2024-01-01"), {**release_yaml(2, "2024-02-01"),
                                                         "id": "pr-2024-007"}])
    done = new(root, *OPTIONS)
    assert done.returncode == 0, done.stderr
    path = root / "releases" / "pr-2024-008.yaml"
    assert done.stdout.strip() == f"{path}: release pr-2024-008"
    written = yaml.safe_load(path.read_text(encoding="utf-8"))
    assert written["countries"] == ["TH", "KH"] and written["dateline"] == "BANGKOK"
    release = load_dataset(root).releases[0]
    assert (release.id, release.title) == ("pr-2024-008", "Decent work for domestic workers")
    assert release.published.isoformat() == "2024-03-05T09:00:00+07:00"


def test_ids_of_deleted_releases_are_never_issued_again(make_dataset: Callable[..., Path]) -> None:
    root = make_dataset([{**release_yaml(1, "2024-01-01"), "id": "pr-2024-001"}])
    assert new(root, *OPTIONS).returncode == 0
    assert new(root, *OPTIONS).returncode == 0
    (root / "releases" / "pr-2024-003.yaml").unlink()
    (root / "releases" / "pr-2024-001.yaml").unlink()  # written by hand, before the ledger
    done = new(root, *OPTIONS)
    assert done.returncode == 0, done.stderr
    assert sorted(p.name for p in (root / "releases").iterdir()) == ["pr-2024-002.yaml",
                                                                     "pr-2024-004.yaml"]


def test_a_bad_release_is_reported_and_nothing_is_saved(make_dataset: Callable[..., Path]) -> None:
    root = make_dataset([release_yaml(1, "2024-01-01")])
    before = files(root)
    done = new(root, *[o if o != "social-security" else "no-such-topic" for o in OPTIONS])
    assert done.returncode == 1
    assert (f"{root / 'releases' / 'pr-2024-001.yaml'}:" in done.stderr
            and "release pr-2024-001: field topics: 'no-such-topic' is not a topic" in done.stderr)
    assert "nothing saved" in done.stderr
    assert files(root) == before


def test_new_with_the_editor(make_dataset: Callable[..., Path], tmp_path: Path) -> None:
    root = make_dataset([release_yaml(1, "2024-01-01")])
    editor = tmp_path / "editor.py"
    # A stand-in for a person: fills in the title the options left out, and saves.
    editor.write_text("import sys\n"
                      "path = sys.argv[1]\n"
                      "text = open(path, encoding='utf-8').read()\n"
                      "open(path, 'w', encoding='utf-8').write("
                      "text.replace('title: null', 'title: Written in the editor'))\n")
    options = [o for o in OPTIONS if o != "Decent work for domestic workers" and o != "--title"]
    done = new(root, *options, "--edit", editor=f"{sys.executable} {editor}")
    assert done.returncode == 0, done.stderr
    assert load_dataset(root).releases[0].title == "Written in the editor"
    saved = (root / "releases" / "pr-2024-001.yaml").read_text(encoding="utf-8")
    assert saved.startswith("id: pr-2024-001\n")  # the editor's help lines are not kept


def test_an_editor_that_breaks_the_file_saves_nothing(make_dataset: Callable[..., Path],
                                                      tmp_path: Path) -> None:
    root = make_dataset([release_yaml(1, "2024-01-01")])
    before = files(root)
    editor = tmp_path / "editor.sh"
    editor.write_text('#!/bin/sh\nprintf "id: pr-2024-001\\ntitle: [unclosed\\n" > "$1"\n')
    editor.chmod(0o755)
    done = new(root, *OPTIONS, "--edit", editor=str(editor))
    assert done.returncode == 1
    assert "malformed YAML" in done.stderr and "nothing saved" in done.stderr
    assert files(root) == before
    failed = tmp_path / "false.sh"
    failed.write_text("#!/bin/sh\nexit 3\n")
    failed.chmod(0o755)
    done = new(root, *OPTIONS, "--edit", editor=str(failed))
    assert done.returncode == 1 and "exited with status 3" in done.stderr
    assert files(root) == before
    assert new(root, *OPTIONS, "--edit").returncode == 2  # no $EDITOR


def test_draft_option(make_dataset: Callable[..., Path]) -> None:
    root = make_dataset([release_yaml(1, "2024-01-01")])
    done = new(root, *OPTIONS, "--draft")
    assert done.returncode == 0, done.stderr
    assert yaml.safe_load((root / "releases" / "pr-2024-001.yaml").read_text())["draft"] is True
    # A draft is checked and kept, and readers do not see it.
    assert "pr-2024-001" in {r.id for r in load_dataset(root).releases}
    app = create_app({"FEEDSVC_DATA": str(root), "FEEDSVC_BASE_URL": BASE_URL})
    assert b"pr-2024-001" not in app.test_client().get("/feeds/all.atom").data
    assert b"t-001" in app.test_client().get("/feeds/all.atom").data


def test_a_published_time_given_in_another_offset_is_written_in_the_sites(
        make_dataset: Callable[..., Path]) -> None:
    """Written from Washington at 20:00 on 31 December: 08:00 on 1 January in Bangkok, as the
    office's other releases are dated (docs/dataset.md: every date it writes is in
    site.timezone), and so the id's year too."""
    root = make_dataset([release_yaml(1, "2024-01-01")])
    options = [*OPTIONS[:OPTIONS.index("--published")], *OPTIONS[OPTIONS.index("--summary"):]]
    done = new(root, *options, "--published", "2024-12-31T20:00:00-05:00")
    assert done.returncode == 0, done.stderr
    path = root / "releases" / "pr-2025-001.yaml"
    assert done.stdout.strip() == f"{path}: release pr-2025-001"
    assert yaml.safe_load(path.read_text(encoding="utf-8"))["published"] \
        == "2025-01-01T08:00:00+07:00"
    feed = create_app({"FEEDSVC_DATA": str(root), "FEEDSVC_BASE_URL": BASE_URL}
                      ).test_client().get("/feeds/all.json").get_json()
    assert feed["items"][0]["date_published"] == "2025-01-01T08:00:00+07:00"
