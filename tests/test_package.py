"""feedsvc as a package: the built wheel, installed into a new venv, serves from any folder.

One wheel and one venv for the module (the venv is kept for the next run of the same wheel);
every server is real gunicorn started from that venv, in a temporary folder outside the
repository.
"""
from __future__ import annotations

import hashlib
import os
import re
import shutil
import socket
import subprocess
import sys
import time
import urllib.request
import zipfile
from collections.abc import Iterator
from pathlib import Path

import feedparser
import pytest
from flask.testing import FlaskClient

from feedsvc import create_app
from feedsvc.config import ConfigError
from feedsvc.dataset import DatasetError

from .servers import ROOT, Server, free_port

# A line gunicorn writes itself: in feedsvc's format (the packaged settings) or its own.
GUNICORN_LINE = re.compile(r"^(\d{4}-\d\d-\d\dT\S+Z [A-Z]+ (gunicorn\.|feedsvc\.reload )|"
                           r"\[\d{4}-\d\d-\d\d [\d:]+ [+-]\d{4}\] \[\d+\] \[[A-Z]+\] )")


@pytest.fixture(scope="module")
def venv(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Build the wheel from this checkout and install it into a fresh venv (no test tools).

    The venv is kept in pytest's cache under the wheel's contents (each file's name and bytes,
    its dependencies with them) and this Python's version: a run whose wheel is the same
    installs it into the venv the last one made (creating and installing cost half a minute,
    several under load); any change to what the wheel holds makes a new one."""
    work = tmp_path_factory.mktemp("package")
    wheels = work / "wheels"
    subprocess.run([sys.executable, "-m", "pip", "wheel", "--no-deps", "--quiet", "-w", str(wheels),
                    str(ROOT)], check=True, cwd=work)
    (wheel,) = wheels.glob("feedsvc-*.whl")
    cache = getattr(request.config, "cache", None)  # None under -p no:cacheprovider
    kept = cache.mkdir("feedsvc-wheel-venv") if cache is not None else work / "kept"
    target = kept / wheel_key(wheel)
    if not (target / "installed-wheel").is_file():  # written last: a venv made to the end
        shutil.rmtree(kept, ignore_errors=True)  # older wheels' venvs, or one left half-made
        kept.mkdir(parents=True)
        subprocess.run([sys.executable, "-m", "venv", str(target)], check=True)
        subprocess.run([str(target / "bin" / "pip"), "install", "--quiet", str(wheel)],
                       check=True, cwd=work)
        (target / "installed-wheel").write_text(wheel.name, encoding="utf-8")
    (target / "bin" / ".installed").touch()  # as the Makefile's serving venv marks itself
    return target


def wheel_key(wheel: Path) -> str:
    """Name what a wheel installs: every member's name and bytes, and the Python it is for."""
    digest = hashlib.sha256(sys.version.encode())
    with zipfile.ZipFile(wheel) as archive:
        for member in sorted(archive.namelist()):
            digest.update(member.encode() + b"\0" + hashlib.sha256(archive.read(member)).digest())
    return digest.hexdigest()[:32]


@pytest.fixture
def elsewhere(tmp_path: Path) -> Path:
    """A folder with nothing of the repository in it, to run commands from."""
    folder = tmp_path / "elsewhere"
    folder.mkdir()
    return folder


def clean_env(**settings: str) -> dict[str, str]:
    """The environment without any FEEDSVC_ or metrics setting of the test run, plus `settings`."""
    env = {k: v for k, v in os.environ.items()
           if not k.startswith(("FEEDSVC_", "_FEEDSVC_", "PROMETHEUS_", "PYTHON"))}
    return {**env, **settings}


def start(venv: Path, argv: list[str], cwd: Path, port: int, **settings: str) -> Server:
    log = cwd / f"server-{port}.log"
    with log.open("wb") as out:
        process = subprocess.Popen([str(venv / "bin" / argv[0]), *argv[1:]], cwd=cwd, stdout=out,
                                   stderr=subprocess.STDOUT, env=clean_env(**settings))
    return Server(argv[0], process, port, log)


def fetch(port: int, path: str) -> bytes:
    with urllib.request.urlopen(f"http://127.0.0.1:{port}{path}", timeout=10) as response:
        body: bytes = response.read()
        return body


def entry_ids(body: bytes) -> list[str]:
    parsed = feedparser.parse(body)
    assert not parsed.bozo, parsed.bozo_exception
    return [entry.id for entry in parsed.entries]


@pytest.fixture
def served(venv: Path, elsewhere: Path) -> Iterator[tuple[Server, Path]]:
    port = free_port()
    server = start(venv, ["feedsvc", "serve", "--bind", f"127.0.0.1:{port}", "--workers", "2"],
                   elsewhere, port)
    try:
        server.wait_ready("/readyz", deadline_s=60)
        yield server, elsewhere
    finally:
        server.stop()


def test_feedsvc_serve_from_the_wheel_serves_the_shipped_sample_and_says_so(
        served: tuple[Server, Path], venv: Path, client: FlaskClient) -> None:
    server, _ = served
    body = fetch(server.port, "/feeds/all.rss")
    # The sample as the repository's data/ serves it (the in-process app reads data/).
    assert entry_ids(body) == entry_ids(client.get("/feeds/all.rss").data)
    assert len(entry_ids(body)) >= 5
    assert b"<html" in fetch(server.port, "/releases/pr-2004-001")
    server.stop()
    assert server.process.returncode == 0
    log = server.log.read_text()
    assert "Traceback" not in log
    said = [line for line in log.splitlines() if "serving the sample dataset shipped" in line]
    packaged = venv.resolve() / "lib"
    assert len(said) == 1 and str(packaged) in said[0] and "sample_data" in said[0], log
    # gunicorn ran the packaged production settings: gevent workers, 2 of them.
    assert "Using worker: gevent" in log and log.count("Booting worker") == 2


def test_gunicorn_with_the_factory_serves_the_same_from_any_folder(
        venv: Path, elsewhere: Path, client: FlaskClient) -> None:
    port = free_port()
    server = start(venv, ["gunicorn", "--bind", f"127.0.0.1:{port}", "feedsvc:create_app()"],
                   elsewhere, port)
    try:
        server.wait_ready("/readyz", deadline_s=60)
        assert entry_ids(fetch(port, "/feeds/all.atom")) == \
            entry_ids(client.get("/feeds/all.atom").data)
    finally:
        server.stop()
    assert "Traceback" not in server.log.read_text()


def feedsvc_lines(output: str) -> list[str]:
    """The lines of a failed start that gunicorn did not write."""
    return [line for line in output.splitlines() if line.strip() and not GUNICORN_LINE.match(line)]


def invalid_copy(folder: Path) -> Path:
    data = folder / "data"
    shutil.copytree(ROOT / "data", data)
    release = data / "releases" / "pr-2004-002.yaml"
    release.write_text(release.read_text().replace("countries: [", "countries: [UK, "))
    return data


@pytest.mark.parametrize("command", ["serve", "gunicorn"])
@pytest.mark.parametrize("problem", ["no data", "invalid data", "bad variable", "port in use"])
def test_a_start_up_problem_is_one_line_and_a_failure_never_a_traceback(
        venv: Path, elsewhere: Path, command: str, problem: str) -> None:
    settings: dict[str, str] = {}
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1] if problem == "port in use" else free_port()
        if problem == "no data":
            settings["FEEDSVC_DATA"] = str(elsewhere / "missing")
        elif problem == "invalid data":
            settings["FEEDSVC_DATA"] = str(invalid_copy(elsewhere))
        elif problem == "bad variable":
            settings["FEEDSVC_MAX_REMOVAL"] = "lots"
        argv = ["feedsvc", "serve", "--bind", f"127.0.0.1:{port}", "--workers", "1"] \
            if command == "serve" else ["gunicorn", "--bind", f"127.0.0.1:{port}",
                                        "feedsvc:create_app()"]
        done = subprocess.run([str(venv / "bin" / argv[0]), *argv[1:]], cwd=elsewhere,
                              env=clean_env(**settings), capture_output=True, text=True,
                              timeout=60)
    output = done.stdout + done.stderr
    assert done.returncode != 0, output
    assert "Traceback" not in output
    if command == "gunicorn" and problem == "port in use":
        return  # gunicorn's own retries and message: it binds before feedsvc is loaded
    lines = feedsvc_lines(done.stderr)
    assert len(lines) == 1 and lines[0].startswith("feedsvc: not starting: "), output
    expected = {"no data": "missing", "invalid data": "pr-2004-002",
                "bad variable": "FEEDSVC_MAX_REMOVAL", "port in use": f"127.0.0.1:{port}"}
    assert expected[problem] in lines[0]


def test_make_check_data_and_the_cli_need_only_the_serving_venv(
        venv: Path, elsewhere: Path) -> None:
    no_test_venv = elsewhere / "test-venv"  # make check-data must not build the test toolset
    make = ["make", "--no-print-directory", "-C", str(ROOT), f"SERVE_VENV={venv}",
            f"VENV={no_test_venv}"]
    done = subprocess.run([*make, "check-data"], env=clean_env(), capture_output=True, text=True,
                          timeout=120)
    assert done.returncode == 0, done.stdout + done.stderr
    assert f"{ROOT / 'data'}: ok, " in done.stdout
    bad = invalid_copy(elsewhere)
    done = subprocess.run([*make, "check-data", f"DATA={bad}"], env=clean_env(),
                          capture_output=True, text=True, timeout=120)
    assert done.returncode != 0 and "pr-2004-002" in done.stderr
    assert not no_test_venv.exists()
    # The README's `feedsvc new`, then `feedsvc check-data`, from the serving venv alone.
    data = elsewhere / "mine"
    shutil.copytree(ROOT / "data", data)
    new = subprocess.run([str(venv / "bin" / "feedsvc"), "new", "--data", str(data), "--title",
                          "From the wheel", "--country", "TH", "--topic",
                          "social-security", "--summary", "Written with the serving venv."],
                         cwd=elsewhere, env=clean_env(), capture_output=True, text=True, timeout=60)
    assert new.returncode == 0, new.stderr
    check = subprocess.run([str(venv / "bin" / "feedsvc"), "check-data", str(data)], cwd=elsewhere,
                           env=clean_env(), capture_output=True, text=True, timeout=60)
    assert check.returncode == 0 and ": ok, 11 releases" in check.stdout, check.stdout


@pytest.mark.parametrize(("variable", "value", "named"), [
    ("FEEDSVC_DATA", "{tmp}/missing", "{tmp}/missing"),
    ("FEEDSVC_WORKERS", "many", "FEEDSVC_WORKERS")])
def test_the_factory_called_as_a_server_calls_it_stops_with_one_line(
        monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str], tmp_path: Path,
        variable: str, value: str, named: str) -> None:
    monkeypatch.setenv(variable, value.format(tmp=tmp_path))
    with pytest.raises(SystemExit) as stopped:
        create_app()
    assert stopped.value.code == 4  # gunicorn's "application failed to load": no respawning
    (line,) = capsys.readouterr().err.splitlines()
    assert line.startswith("feedsvc: not starting: ") and named.format(tmp=tmp_path) in line
    with pytest.raises((DatasetError, ConfigError)):  # tests and the CLI get the error itself
        create_app({"FEEDSVC_BASE_URL": "https://feeds.example.org/"})


def test_a_release_published_with_the_wheels_cli_is_served_and_the_log_has_no_traceback(
        venv: Path, elsewhere: Path) -> None:
    data = elsewhere / "data"
    shutil.copytree(ROOT / "data", data)
    port = free_port()
    server = start(venv, ["feedsvc", "serve", "--bind", f"127.0.0.1:{port}", "--workers", "2"],
                   elsewhere, port, FEEDSVC_DATA=str(data), FEEDSVC_RELOAD_INTERVAL="1")
    try:
        server.wait_ready("/readyz", deadline_s=60)
        before = entry_ids(fetch(port, "/feeds/all.atom"))
        new = subprocess.run([str(venv / "bin" / "feedsvc"), "new", "--data", str(data), "--title",
                              "Published from the wheel", "--country", "TH", "--topic",
                              "social-security", "--summary", "Served after a reload."],
                             cwd=elsewhere, env=clean_env(), capture_output=True, text=True,
                             timeout=60)
        assert new.returncode == 0, new.stderr
        rid = new.stdout.strip().rsplit(" ", 1)[1]
        deadline = time.monotonic() + 60
        while not (after := entry_ids(fetch(port, "/feeds/all.atom")))[0].endswith(rid):
            assert time.monotonic() < deadline, server.tail()
            time.sleep(0.1)  # polling a real server's reload (not timing it): no busy loop
        assert after[1:] == before  # the newest first, then the sample as it was
    finally:
        server.stop()
    # The workers forked before the reload (their copy of the master's watcher woke after an
    # interval and found it was not theirs) and after it: no traceback from either.
    assert "Traceback" not in server.log.read_text(), server.tail(60)
