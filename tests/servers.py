"""Start real servers on loopback (redis-server, gunicorn, nginx) for the tests and the benchmarks."""
from __future__ import annotations

import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
NGINX_DIR = ROOT / "deploy" / "nginx"
GUNICORN_CONF = ROOT / "deploy" / "gunicorn.conf.py"
# nginx serving files from {root}: the benchmark's "limit", tuned like deploy/nginx/nginx.conf.
STATIC_NGINX = """worker_processes auto;
pid nginx.pid;
error_log stderr warn;
events {{ worker_connections 1024; }}
http {{
    default_type application/rss+xml;
    server_tokens off;
    access_log off;
    sendfile on;
    tcp_nopush on;
    keepalive_requests 10000;
    client_body_temp_path body-temp;
    proxy_temp_path proxy-temp;
    fastcgi_temp_path fastcgi-temp;
    uwsgi_temp_path uwsgi-temp;
    scgi_temp_path scgi-temp;
    server {{
        listen 127.0.0.1:{port};
        root {root};
    }}
}}
"""


def free_port() -> int:
    """Return a TCP port on 127.0.0.1 that nothing listens on right now."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def gunicorn_workers(master: int) -> set[int]:
    """Return the pids of a gunicorn master's workers: its children but the fediverse's
    deliverer (`feedsvc deliver`, which the shipped config starts beside them)."""
    found: set[int] = set()
    for pid in Path(f"/proc/{master}/task/{master}/children").read_text().split():
        try:
            argv = Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")
        except FileNotFoundError:  # ended meanwhile
            continue
        if argv[1:4] != [b"-m", b"feedsvc", b"deliver"]:
            found.add(int(pid))
    return found


def executable(name: str) -> str:
    """Find a server binary on PATH or in /usr/sbin (nginx lives there on Debian)."""
    found = shutil.which(name) or shutil.which(name, path="/usr/sbin:/usr/local/sbin")
    if found is None:
        raise RuntimeError(f"{name} not found: run `make system-deps`")
    return found


@dataclass
class Server:
    """A server process started by us, its port and its log file."""

    name: str
    process: subprocess.Popen[bytes]
    port: int
    log: Path
    # A test that makes a reload fail on purpose; any other fails if its log shows one.
    expect_failure: bool = False

    def wait_ready(self, path: str | None = None, deadline_s: float = 30.0) -> None:
        """Poll until the port accepts connections (and `path` answers), or fail with the log."""
        deadline = time.monotonic() + deadline_s
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"{self.name} exited {self.process.returncode}:\n{self.tail()}")
            if _answers(self.port, path):
                return
            time.sleep(0.05)
        raise RuntimeError(f"{self.name} not ready after {deadline_s} s:\n{self.tail()}")

    def tail(self, lines: int = 30) -> str:
        return "\n".join(self.log.read_text(errors="replace").splitlines()[-lines:])

    def stop(self, deadline_s: float = 10.0) -> None:
        """Stop the process (SIGTERM, then SIGKILL at the deadline) and reap it."""
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(deadline_s)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        if self.name.startswith("gunicorn") and not self.expect_failure:
            assert_no_failed_reload(self.log)


# What the master logs when a look at the dataset failed unexpectedly (not: rejected invalid
# data, which tests provoke on purpose): a bug, which every test under gunicorn must catch.
FAILED_RELOAD = ("dataset check failed", "dataset reload failed", "HUP: dataset reload failed")


def assert_no_failed_reload(log: Path) -> None:
    """Fail if a gunicorn log shows a failed dataset check or reload."""
    text = log.read_text(errors="replace") if log.exists() else ""
    found = [line for line in text.splitlines() if any(f in line for f in FAILED_RELOAD)]
    assert not found, f"{log}: a dataset reload failed:\n" + "\n".join(found[:5])


def _answers(port: int, path: str | None) -> bool:
    try:
        if path is None:
            with socket.create_connection(("127.0.0.1", port), timeout=0.5):
                return True
        with urllib.request.urlopen(f"http://127.0.0.1:{port}{path}", timeout=2) as response:
            return bool(response.status == 200)
    except (OSError, urllib.error.URLError):
        return False


def _start(name: str, argv: list[str], workdir: Path, env: Mapping[str, str] | None = None,
           port: int = 0, root: Path = ROOT) -> Server:
    log = workdir / f"{name}.log"
    with log.open("wb") as out:
        process = subprocess.Popen(argv, stdout=out, stderr=subprocess.STDOUT, cwd=root,
                                   env={**os.environ, **(env or {})})
    return Server(name, process, port, log)


def _ready(server: Server, path: str | None = None, deadline_s: float = 30.0) -> Server:
    """Wait until the server answers; one that does not is stopped, not left running (and
    holding its port and memory) after the test that started it has failed."""
    try:
        server.wait_ready(path, deadline_s)
    except RuntimeError:
        server.stop()
        raise
    return server


def start_redis(workdir: Path, port: int | None = None) -> Server:
    """Start a throw-away redis-server: loopback only, no persistence."""
    port = port or free_port()
    argv = [executable("redis-server"), "--port", str(port), "--bind", "127.0.0.1",
            "--save", "", "--appendonly", "no", "--dir", str(workdir)]
    return _ready(_start(f"redis-{port}", argv, workdir, port=port))


def start_gunicorn(workdir: Path, app: str = "wsgi:app", workers: int = 2,
                   env: Mapping[str, str] | None = None, ready_path: str | None = "/feeds/all.rss",
                   extra: Iterable[str] = (), root: Path = ROOT, ready_s: float = 30.0
                   ) -> Server:
    """Start gunicorn on a free loopback port: feedsvc with the shipped config; another app
    (a benchmark baseline) with the same server settings but none of feedsvc's hooks.
    `root`: another source tree of feedsvc (a benchmark's baseline), run with its own config."""
    port = free_port()
    # Its temporary directories (metrics, WebSub claims) in workdir: a server that is killed
    # leaves them there, not in /tmp.
    temp = workdir / f"gunicorn-{port}-tmp"
    temp.mkdir(exist_ok=True)
    settings = {"FEEDSVC_BIND": f"127.0.0.1:{port}", "FEEDSVC_WORKERS": str(workers),
                "TMPDIR": str(temp), **(env or {})}
    if root != ROOT:  # its feedsvc package first, ahead of the installed one
        settings["PYTHONPATH"] = str(root)
    conf = root / GUNICORN_CONF.relative_to(ROOT)
    config = ["-c", str(conf)] if app == "wsgi:app" else [
        "--worker-class", "gevent", "--workers", str(workers), "--preload",
        "--bind", f"127.0.0.1:{port}"]
    argv = [sys.executable, "-m", "gunicorn", *config, *extra, app]
    return _ready(_start(f"gunicorn-{port}", argv, workdir, settings, port, root), ready_path,
                  ready_s)


def render_nginx(workdir: Path, listen: int, upstreams: Iterable[int], cache_dir: Path,
                 source: Path = NGINX_DIR, owner: int | None = None) -> Path:
    """Copy deploy/nginx/ (or `source`, another tree's) to workdir with its `# site:` lines set
    for loopback; return nginx.conf. The fediverse's owner is `owner`, else the first upstream."""
    upstreams = list(upstreams)
    site = (source / "feedsvc.conf").read_text()
    site = re.sub(r"server \S+;(\s*# site: owner)", rf"server 127.0.0.1:{owner or upstreams[0]};\1",
                  site)
    instance = re.compile(r"^(\s*)server \S+ (.*# site: instance)\n", re.MULTILINE)
    lines = list(instance.finditer(site))
    assert lines, "deploy/nginx/feedsvc.conf: no `# site: instance` line"
    indent, rest = lines[0][1], lines[0][2]
    servers = "".join(f"{indent}server 127.0.0.1:{port} {rest}\n" for port in upstreams)
    site = site[:lines[0].start()] + servers + site[lines[-1].end():]
    site, n_listen = re.subn(r"listen \S+;(\s*# site: listen)", rf"listen 127.0.0.1:{listen};\1",
                             site)
    site, n_cache = re.subn(r"proxy_cache_path \S+ (.*# site: cache)",
                            rf"proxy_cache_path {cache_dir} \1", site)
    assert n_listen == 1 and n_cache == 1, "deploy/nginx/feedsvc.conf: `# site:` lines changed"
    for shared in source.glob("*.conf"):  # nginx.conf and the files every front includes
        if shared.name != "feedsvc.conf":
            shutil.copy(shared, workdir / shared.name)
    (workdir / "feedsvc.conf").write_text(site)
    return workdir / "nginx.conf"


def start_shipped_nginx(workdir: Path, upstream: int, ready_path: str = "/feeds/all.rss") -> Server:
    """Run the shipped deploy/nginx config on a free port in front of `upstream`, cache in workdir."""
    port = free_port()
    conf = render_nginx(workdir, port, [upstream], workdir / "cache")
    return start_nginx(workdir, conf, port, ready_path)


def start_nginx(workdir: Path, conf: Path, port: int, ready_path: str | None = None) -> Server:
    """Run nginx in the foreground with `conf`, its prefix (pid, temp files) in workdir."""
    prefix = workdir / "prefix"
    prefix.mkdir(exist_ok=True)
    # As root, workers would switch to `nobody` and could not write the tmp cache directory.
    user = "user root;" if os.geteuid() == 0 else ""
    argv = [executable("nginx"), "-p", f"{prefix}/", "-c", str(conf), "-g", f"daemon off; {user}"]
    return _ready(_start(f"nginx-{port}", argv, workdir, port=port), ready_path)
