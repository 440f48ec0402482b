"""Configuration: every FEEDSVC_* variable read in one place, with its default; a bad value is
one clear line and exit status 2, from the CLI and from gunicorn alike."""
from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from feedsvc import create_app
from feedsvc.config import BUNDLED_DATA, ConfigError, from_env

from .servers import GUNICORN_CONF, ROOT

BAD = [("FEEDSVC_LOG_LEVEL", "loud"), ("FEEDSVC_LOG_FORMAT", "xml"), ("FEEDSVC_WORKERS", "x"),
       ("FEEDSVC_WORKERS", "0"), ("FEEDSVC_BIND", "nowhere"), ("FEEDSVC_FAST_PATH", "maybe"),
       ("FEEDSVC_MAX_AGE", "-1"), ("FEEDSVC_CACHE_ENTRIES", "lots"), ("FEEDSVC_CACHE_BYTES", "64M"),
       ("FEEDSVC_CACHE_BYTES", "1000"), ("FEEDSVC_MEMO_BYTES", "-1"), ("FEEDSVC_QUERY_RENDER_SHARE", "0"),
       ("FEEDSVC_BASE_URL", "feeds.example.org"), ("FEEDSVC_SNAPSHOT_DIR", "relative/dir")]


def test_defaults() -> None:
    settings = from_env({"XDG_CACHE_HOME": "/var/cache"})
    assert settings["FEEDSVC_DATA"] == str(BUNDLED_DATA)
    assert settings["FEEDSVC_BASE_URL"] is None and settings["FEEDSVC_CACHE_URL"] is None
    assert (settings["FEEDSVC_BIND"], settings["FEEDSVC_WORKERS"]) == (
        "127.0.0.1:8000", os.cpu_count())
    assert (settings["FEEDSVC_CACHE_ENTRIES"], settings["FEEDSVC_MEMO_ENTRIES"]) == (2000, 256)
    assert (settings["FEEDSVC_CACHE_BYTES"], settings["FEEDSVC_MEMO_BYTES"]) == (64 * 2**20, 16 * 2**20)
    assert settings["FEEDSVC_QUERY_RENDER_SHARE"] == 100
    assert settings["FEEDSVC_FAST_PATH"] is True
    assert settings["FEEDSVC_SNAPSHOT_DIR"] == "/var/cache/feedsvc"
    assert (settings["FEEDSVC_LOG_FORMAT"], settings["FEEDSVC_LOG_LEVEL"]) == ("text", "INFO")
    assert settings["PROMETHEUS_MULTIPROC_DIR"] is None


def test_values_are_parsed() -> None:
    settings = from_env({"FEEDSVC_BASE_URL": "https://feeds.example.org", "FEEDSVC_WORKERS": " 3 ",
                         "FEEDSVC_BIND": "0.0.0.0:8080", "FEEDSVC_FAST_PATH": "OFF",
                         "FEEDSVC_SNAPSHOT_DIR": "off", "FEEDSVC_LOG_LEVEL": "debug"})
    assert settings["FEEDSVC_BASE_URL"] == "https://feeds.example.org/"
    assert (settings["FEEDSVC_WORKERS"], settings["FEEDSVC_BIND"]) == (3, "0.0.0.0:8080")
    assert settings["FEEDSVC_FAST_PATH"] is False and settings["FEEDSVC_SNAPSHOT_DIR"] is None
    assert settings["FEEDSVC_LOG_LEVEL"] == "DEBUG"
    assert from_env({"FEEDSVC_BIND": "unix:/run/feedsvc.sock"})["FEEDSVC_BIND"] == "unix:/run/feedsvc.sock"
    assert from_env({"FEEDSVC_BIND": "[::1]:8000"})["FEEDSVC_BIND"] == "[::1]:8000"


@pytest.mark.parametrize(("name", "raw"), BAD)
def test_a_bad_value_is_refused_naming_the_variable(name: str, raw: str) -> None:
    with pytest.raises(ConfigError, match=name) as refused:
        from_env({name: raw})
    assert "\n" not in str(refused.value) and raw in str(refused.value)


def test_settings_that_need_each_other_are_checked_after_a_tests_own() -> None:
    with pytest.raises(ConfigError, match="FEEDSVC_WEBSUB_HUB needs FEEDSVC_BASE_URL"):
        create_app({"FEEDSVC_DATA": str(BUNDLED_DATA), "FEEDSVC_WEBSUB_HUB": "https://hub.example/",
                    "FEEDSVC_BASE_URL": None})


def run(argv: list[str], **env: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(argv, capture_output=True, text=True, cwd=ROOT, timeout=60,
                          env={**os.environ, **env})


@pytest.mark.parametrize("command", [["check-data"], ["snapshot"], ["synth", "3", "/nonexistent"]])
def test_the_cli_says_one_line_and_exits_2(command: list[str]) -> None:
    done = run([sys.executable, "-m", "feedsvc", *command], FEEDSVC_LOG_LEVEL="loud")
    assert done.returncode == 2 and done.stdout == ""
    assert done.stderr == ("feedsvc: FEEDSVC_LOG_LEVEL must be one of DEBUG, INFO, WARNING, ERROR, "
                           "CRITICAL, got 'loud'\n")


def test_check_data_reads_the_configured_dataset_and_file_limit(tmp_path: Path) -> None:
    done = run([sys.executable, "-m", "feedsvc", "check-data"], FEEDSVC_DATA=str(BUNDLED_DATA))
    assert done.returncode == 0 and "10 releases" in done.stdout
    done = run([sys.executable, "-m", "feedsvc", "check-data"], FEEDSVC_DATA=str(BUNDLED_DATA),
               FEEDSVC_MAX_FILE_BYTES="1024")
    assert done.returncode == 1 and "1024" in done.stderr


@pytest.mark.parametrize(("name", "raw"), [("FEEDSVC_WORKERS", "x"), ("FEEDSVC_LOG_LEVEL", "loud")])
def test_gunicorn_says_one_line_and_exits_2(name: str, raw: str, tmp_path: Path) -> None:
    done = run([sys.executable, "-m", "gunicorn", "-c", str(GUNICORN_CONF), "wsgi:app"],
               **{name: raw, "FEEDSVC_BIND": "127.0.0.1:1", "TMPDIR": str(tmp_path)})
    assert done.returncode == 2, done.stderr
    (line,) = done.stderr.splitlines()
    assert line.startswith(f"feedsvc: not starting: {name} ") and repr(raw) in line
    assert list(tmp_path.iterdir()) == []  # nor a metrics directory left behind
