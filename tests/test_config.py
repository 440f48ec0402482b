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
from feedsvc.operations import cli

from .servers import GUNICORN_CONF, ROOT

BAD = [("FEEDSVC_LOG_LEVEL", "loud"), ("FEEDSVC_LOG_FORMAT", "xml"), ("FEEDSVC_WORKERS", "x"),
       ("FEEDSVC_WORKERS", "0"), ("FEEDSVC_BIND", "nowhere"), ("FEEDSVC_FAST_PATH", "maybe"),
       ("FEEDSVC_MAX_AGE", "-1"), ("FEEDSVC_CACHE_ENTRIES", "lots"), ("FEEDSVC_CACHE_BYTES", "64M"),
       ("FEEDSVC_CACHE_BYTES", "1000"), ("FEEDSVC_MEMO_BYTES", "-1"),
       ("FEEDSVC_BASE_URL", "feeds.example.org"), ("FEEDSVC_SNAPSHOT_DIR", "relative/dir"),
       ("FEEDSVC_BIND", "127.0.0.1:99999"), ("FEEDSVC_BIND", ":65536"),
       ("FEEDSVC_STATE_DIR", "relative/dir"),
       # Every link would be broken: no host, a query or fragment before every path, a
       # password in every link, a port no socket has, a space in the host.
       ("FEEDSVC_BASE_URL", "https://"), ("FEEDSVC_BASE_URL", "https://feeds.example.org/?utm=x"),
       ("FEEDSVC_BASE_URL", "https://feeds.example.org/#top"),
       ("FEEDSVC_BASE_URL", "https://editor:secret@feeds.example.org/"),
       ("FEEDSVC_BASE_URL", "https://feeds.example.org:99999/"),
       ("FEEDSVC_BASE_URL", "https://feeds example.org/")]


def test_defaults() -> None:
    settings = from_env({"XDG_CACHE_HOME": "/var/cache"})
    assert settings["FEEDSVC_DATA"] == str(BUNDLED_DATA)
    assert settings["FEEDSVC_BASE_URL"] is None and settings["FEEDSVC_CACHE_URL"] is None
    assert (settings["FEEDSVC_BIND"], settings["FEEDSVC_WORKERS"]) == (
        "127.0.0.1:8000", os.cpu_count())
    assert (settings["FEEDSVC_CACHE_ENTRIES"], settings["FEEDSVC_MEMO_ENTRIES"]) == (2000, 256)
    assert (settings["FEEDSVC_CACHE_BYTES"], settings["FEEDSVC_MEMO_BYTES"]) == (64 * 2**20, 16 * 2**20)
    assert "FEEDSVC_QUERY_RENDER_SHARE" not in settings
    assert settings["FEEDSVC_FAST_PATH"] is True
    assert settings["FEEDSVC_SNAPSHOT_DIR"] == "/var/cache/feedsvc"
    assert (settings["FEEDSVC_LOG_FORMAT"], settings["FEEDSVC_LOG_LEVEL"]) == ("text", "INFO")
    assert settings["PROMETHEUS_MULTIPROC_DIR"] is None


def test_values_are_parsed() -> None:
    settings = from_env({"FEEDSVC_BASE_URL": "https://feeds.example.org", "FEEDSVC_WORKERS": " 3 ",
                         "FEEDSVC_BIND": "0.0.0.0:8080", "FEEDSVC_FAST_PATH": "OFF",
                         "FEEDSVC_SNAPSHOT_DIR": "off", "FEEDSVC_LOG_LEVEL": "debug"})
    assert settings["FEEDSVC_BASE_URL"] == "https://feeds.example.org/"
    for base in ("https://example.org/news", "https://example.org/news/", "http://[::1]:8080"):
        assert from_env({"FEEDSVC_BASE_URL": base})["FEEDSVC_BASE_URL"] == base.rstrip("/") + "/"
    assert (settings["FEEDSVC_WORKERS"], settings["FEEDSVC_BIND"]) == (3, "0.0.0.0:8080")
    assert settings["FEEDSVC_FAST_PATH"] is False and settings["FEEDSVC_SNAPSHOT_DIR"] is None
    assert settings["FEEDSVC_LOG_LEVEL"] == "DEBUG"
    assert from_env({"FEEDSVC_BIND": "unix:/run/feedsvc.sock"})["FEEDSVC_BIND"] == "unix:/run/feedsvc.sock"
    assert from_env({"FEEDSVC_BIND": "[::1]:8000"})["FEEDSVC_BIND"] == "[::1]:8000"
    for url in ("redis://:pw@127.0.0.1:6379/2", "rediss://cache.internal/0", "unix:///run/r.sock"):
        assert from_env({"FEEDSVC_CACHE_URL": url})["FEEDSVC_CACHE_URL"] == url


def test_the_state_directory_has_two_names_and_one_value() -> None:
    def state_dir(**env: str) -> str | None:
        return from_env(env)["FEEDSVC_SNAPSHOT_DIR"]  # type: ignore[no-any-return]

    assert state_dir(FEEDSVC_STATE_DIR="/srv/state") == "/srv/state"
    assert state_dir(FEEDSVC_SNAPSHOT_DIR="/srv/snap") == "/srv/snap"  # the older name
    assert state_dir(FEEDSVC_STATE_DIR="/srv/s", FEEDSVC_SNAPSHOT_DIR="/srv/s") == "/srv/s"
    assert state_dir(FEEDSVC_STATE_DIR="off") is None
    assert state_dir(FEEDSVC_STATE_DIR="OFF", FEEDSVC_SNAPSHOT_DIR="OFF") is None
    assert state_dir(FEEDSVC_STATE_DIR="", FEEDSVC_SNAPSHOT_DIR="off") is None
    assert state_dir(XDG_CACHE_HOME="/c") == "/c/feedsvc"
    for other in ("/srv/snap", "off"):
        with pytest.raises(ConfigError) as refused:
            state_dir(FEEDSVC_STATE_DIR="/srv/state", FEEDSVC_SNAPSHOT_DIR=other)
        message = str(refused.value)
        assert "FEEDSVC_STATE_DIR='/srv/state'" in message and f"FEEDSVC_SNAPSHOT_DIR={other!r}" \
            in message and "\n" not in message


@pytest.mark.parametrize(("name", "raw"), BAD)
def test_a_bad_value_is_refused_naming_the_variable(name: str, raw: str) -> None:
    with pytest.raises(ConfigError, match=name) as refused:
        from_env({name: raw})
    assert "\n" not in str(refused.value) and raw in str(refused.value)


@pytest.mark.parametrize(("raw", "said"), [
    ("localhost:6379", "schemes (redis://, rediss://, unix://)"),
    ("redis://:secret@127.0.0.1:port/0", "Port could not be cast to integer"),
    ("redis://:secret@127.0.0.1:6379/0?socket_timeout=soon", "socket_timeout")])
def test_a_bad_cache_url_stops_the_start_with_one_line_that_keeps_the_password(
        monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str], raw: str,
        said: str) -> None:
    monkeypatch.setenv("FEEDSVC_CACHE_URL", raw)
    with pytest.raises(SystemExit) as stopped:
        create_app()  # as a server calls it: the Redis client's parser ran on the first request
    assert stopped.value.code == 4
    (line,) = capsys.readouterr().err.splitlines()
    assert line.startswith("feedsvc: not starting: FEEDSVC_CACHE_URL: ") and said in line, line
    assert "secret" not in line


def test_a_port_out_of_range_is_one_line_from_feedsvc_serve(
        monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> None:
    monkeypatch.setenv("FEEDSVC_BIND", "127.0.0.1:8000")  # serve --bind sets it: undone after
    # Refused before gunicorn runs: the probe for a port in use raised OverflowError on 99999.
    assert cli.main(["serve", "--bind", "127.0.0.1:99999"]) == 2
    assert capsys.readouterr().err == ("feedsvc: not starting: FEEDSVC_BIND must be HOST:PORT or "
                                       "unix:/PATH, got '127.0.0.1:99999'\n")
    assert from_env({"FEEDSVC_BIND": "[::]:65535"})["FEEDSVC_BIND"] == "[::]:65535"


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


def test_a_removed_variable_is_accepted_ignored_and_named(tmp_path: Path) -> None:
    from .servers import start_gunicorn

    # 0 was refused while it meant something; any value is now accepted, and does nothing.
    server = start_gunicorn(tmp_path, workers=1, env={"FEEDSVC_QUERY_RENDER_SHARE": "0",
                                                      "FEEDSVC_RELOAD_INTERVAL": "0"})
    try:
        port = server.port
        for n in range(1, 31):  # distinct queried misses: never refused
            done = subprocess.run(["curl", "-sS", "-o", "/dev/null", "-w", "%{http_code}",
                                   f"http://127.0.0.1:{port}/feeds/all.rss?limit={n}"],
                                  capture_output=True, text=True, check=True)
            assert done.stdout == "200"
    finally:
        server.stop()
    warnings = [line for line in server.log.read_text().splitlines()
                if "FEEDSVC_QUERY_RENDER_SHARE is no longer used and is ignored" in line]
    assert len(warnings) == 1 and "WARNING" in warnings[0]
