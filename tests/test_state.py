"""The state file: a restart serves it without reading the YAML, `feedsvc snapshot` builds
it ahead of a start, and it is the service's alone."""
from __future__ import annotations

import stat
from pathlib import Path

import pytest

from feedsvc import create_app
from feedsvc.config import ConfigError, from_env
from feedsvc.dataset.statedir import state_file
from feedsvc.operations.cli import main
from feedsvc.operations.reload import reloader

from .helpers import record_parses


def settings(data: Path, state: Path) -> dict[str, object]:
    return {"FEEDSVC_DATA": str(data), "FEEDSVC_SNAPSHOT_DIR": str(state),
            "FEEDSVC_START_CHECK": "background", "FEEDSVC_RELOAD_INTERVAL": 5}


def test_a_restart_after_a_publish_reads_no_file(dataset_dir: Path, tmp_path: Path,
                                                 monkeypatch: pytest.MonkeyPatch) -> None:
    app = create_app(settings(dataset_dir, tmp_path / "s"))
    release = dataset_dir / "releases" / "pr-2004-001.yaml"
    release.write_text(release.read_text().replace("special safety", "special"))
    (dataset_dir / "releases" / "pr-2004-002.yaml").unlink()
    assert reloader(app).check() == "reloaded"
    before = app.test_client().get("/feeds/all.rss")
    parsed = record_parses(monkeypatch)
    client = create_app(settings(dataset_dir, tmp_path / "s")).test_client()
    response = client.get("/feeds/all.rss")
    assert parsed == []  # the committed store, served at once
    assert response.headers["X-Dataset-Version"] == before.headers["X-Dataset-Version"]
    assert response.get_data() == before.get_data()
    assert b"to get special training" in response.data
    assert client.get("/releases/pr-2004-002").status_code == 404


def test_the_snapshot_command_prepares_the_next_start(dataset_dir: Path, tmp_path: Path,
                                                      monkeypatch: pytest.MonkeyPatch) -> None:
    assert main(["snapshot", str(dataset_dir), "--dir", str(tmp_path / "s")]) == 0
    parsed = record_parses(monkeypatch)
    client = create_app(settings(dataset_dir, tmp_path / "s")).test_client()
    assert client.get("/feeds/all.rss").status_code == 200 and parsed == []
    (dataset_dir / "site.yaml").write_text("site: {}\n")
    assert main(["snapshot", str(dataset_dir), "--dir", str(tmp_path / "other")]) == 1


def test_the_state_file_is_the_services_alone(dataset_dir: Path, tmp_path: Path) -> None:
    create_app(settings(dataset_dir, tmp_path / "s"))
    assert stat.S_IMODE((tmp_path / "s").stat().st_mode) == 0o700
    file = state_file(tmp_path / "s", dataset_dir, "sqlite")
    assert stat.S_IMODE(file.stat().st_mode) == 0o600


def test_snapshot_dir_setting() -> None:
    assert from_env({"FEEDSVC_SNAPSHOT_DIR": "off"})["FEEDSVC_SNAPSHOT_DIR"] is None
    assert from_env({"FEEDSVC_SNAPSHOT_DIR": "/srv/snap"})["FEEDSVC_SNAPSHOT_DIR"] == "/srv/snap"
    assert from_env({"XDG_CACHE_HOME": "/c"})["FEEDSVC_SNAPSHOT_DIR"] == "/c/feedsvc"
    with pytest.raises(ConfigError, match="absolute"):
        from_env({"FEEDSVC_SNAPSHOT_DIR": "relative/dir"})


@pytest.mark.parametrize("command", [["snapshot"], ["accept-removal"]])
def test_commands_without_a_state_directory_name_its_variable(
        command: list[str], dataset_dir: Path, monkeypatch: pytest.MonkeyPatch,
        capsys: pytest.CaptureFixture[str]) -> None:
    """The variable as the docs name it (FEEDSVC_SNAPSHOT_DIR is only its older name)."""
    monkeypatch.delenv("FEEDSVC_SNAPSHOT_DIR", raising=False)
    monkeypatch.setenv("FEEDSVC_STATE_DIR", "off")
    assert main([*command, str(dataset_dir)]) == 2
    assert "FEEDSVC_STATE_DIR is off" in capsys.readouterr().err
