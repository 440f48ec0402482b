"""Check deploy/systemd/ with systemd-analyze (verify, security) and by reading the unit."""

from __future__ import annotations

import configparser
import re
import shutil
import subprocess
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
DEPLOY = ROOT / "deploy"
UNIT = DEPLOY / "systemd" / "feedsvc.service"
DELIVER_UNIT = DEPLOY / "systemd" / "feedsvc-deliver.service"

FEEDSVC_VARIABLES = {
    "FEEDSVC_BIND", "FEEDSVC_WORKERS", "FEEDSVC_DATA", "FEEDSVC_BASE_URL",
    "FEEDSVC_CACHE_URL", "FEEDSVC_SNAPSHOT_DIR", "FEEDSVC_LOG_LEVEL", "FEEDSVC_METRICS_ALLOW",
    "FEEDSVC_ACTIVITYPUB_DELIVER", "FEEDSVC_TRUST_PROXY",
}
GUNICORN_ARGS = ["-c", "deploy/gunicorn.conf.py", "wsgi:app"]


def read_unit(unit: Path = UNIT) -> configparser.RawConfigParser:
    """Parse the unit as INI; repeated keys keep their last value."""
    parser = configparser.RawConfigParser(strict=False, interpolation=None)
    parser.optionxform = str  # type: ignore[assignment,method-assign]
    parser.read(unit, encoding="utf-8")
    return parser


def unit_values(key: str, unit: Path = UNIT) -> list[str]:
    """Return every value of a repeatable directive (configparser keeps only the last)."""
    prefix = key + "="
    lines = unit.read_text(encoding="utf-8").splitlines()
    return [line[len(prefix):] for line in lines if line.startswith(prefix)]


@pytest.fixture(scope="module")
def systemd_root(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Build a root for systemd-analyze --root: the host's units, our unit, stub binaries.

    verify insists that every Exec*= binary exists. Rather than rewrite the unit, the
    unmodified unit is installed under a throw-away root where /opt/feedsvc/.venv/bin/
    gunicorn (and /bin/kill) are empty executables; the host's unit directory is copied
    in because the unit's implicit dependencies (sysinit.target, ...) are resolved there.
    """
    root = tmp_path_factory.mktemp("systemd-root")
    shutil.copytree("/usr/lib/systemd/system", root / "usr/lib/systemd/system", symlinks=True)
    (root / "etc/systemd/system").mkdir(parents=True)
    for unit in (UNIT, DELIVER_UNIT):
        shutil.copy(unit, root / "etc/systemd/system" / unit.name)
        for key in ("ExecStart", "ExecReload"):
            for value in unit_values(key, unit)[:1]:
                binary = root / value.split()[0].lstrip("-@:+!").lstrip("/")
                binary.parent.mkdir(parents=True, exist_ok=True)
                binary.write_text("#!/bin/sh\n", encoding="utf-8")
                binary.chmod(0o755)
    return root


def systemd_analyze(root: Path, *args: str, unit: Path = UNIT) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        ["systemd-analyze", *args, f"--root={root}", unit.name],
        capture_output=True, text=True, timeout=60, check=False,
    )


@pytest.mark.parametrize("unit", [UNIT, DELIVER_UNIT], ids=lambda u: u.name)
def test_systemd_unit_verifies(systemd_root: Path, unit: Path) -> None:
    result = systemd_analyze(systemd_root, "verify", unit=unit)
    # verify exits 0 on unknown keys and unparsable values, but reports them on stderr.
    assert (result.returncode, result.stderr, result.stdout) == (0, "", "")


@pytest.mark.parametrize("unit", [UNIT, DELIVER_UNIT], ids=lambda u: u.name)
def test_systemd_unit_exposure_stays_low(systemd_root: Path, unit: Path) -> None:
    result = systemd_analyze(systemd_root, "security", "--offline=yes", "--threshold=20",
                             unit=unit)
    assert result.returncode == 0, result.stdout[-2000:] + result.stderr


def test_the_deliverer_unit_reads_the_service_state_as_its_user() -> None:
    """feedsvc-deliver.service runs `feedsvc deliver` on feedsvc.service's state directory,
    as the same dynamic user (DynamicUser= names it after the unit, unless User= is set)."""
    deliver, service = read_unit(DELIVER_UNIT)["Service"], read_unit()["Service"]
    assert deliver["ExecStart"] == "/opt/feedsvc/.venv/bin/feedsvc deliver"
    assert deliver["DynamicUser"] == "yes" and deliver["User"] == UNIT.stem
    assert "User" not in service
    assert deliver["CacheDirectory"] == service["CacheDirectory"]
    assert deliver["EnvironmentFile"] == service["EnvironmentFile"]
    environment = dict(value.split("=", 1) for value in unit_values("Environment", DELIVER_UNIT))
    assert environment["FEEDSVC_SNAPSHOT_DIR"] == "%C/" + service["CacheDirectory"]
    assert read_unit(DELIVER_UNIT)["Unit"]["PartOf"] == UNIT.name


def test_systemd_unit_runs_gunicorn_sandboxed() -> None:
    service = read_unit()["Service"]
    assert service["ExecStart"].split() == ["/opt/feedsvc/.venv/bin/gunicorn", *GUNICORN_ARGS]
    assert service["WorkingDirectory"] == "/opt/feedsvc"
    assert service["ExecReload"] == "/bin/kill -HUP $MAINPID"
    assert service["Restart"] == "on-failure"
    assert service["EnvironmentFile"] == "-/etc/feedsvc/feedsvc.env"
    assert service.get("DynamicUser") == "yes" or service.get("User", "root") not in ("root", "0")
    for key, value in {
        "NoNewPrivileges": "yes", "ProtectSystem": "strict", "ProtectHome": "yes",
        "PrivateTmp": "yes", "PrivateDevices": "yes", "CapabilityBoundingSet": "",
    }.items():
        assert service[key] == value, key
    assert set(service["RestrictAddressFamilies"].split()) <= {"AF_UNIX", "AF_INET", "AF_INET6"}
    assert unit_values("SystemCallFilter")[0] == "@system-service"


def test_systemd_unit_writes_only_the_snapshot_cache() -> None:
    service = read_unit()["Service"]
    environment = dict(value.split("=", 1) for value in unit_values("Environment"))
    assert environment["FEEDSVC_BIND"].endswith(":8000")
    assert environment["FEEDSVC_SNAPSHOT_DIR"] == "%C/" + service["CacheDirectory"]
    assert "ReadWritePaths" not in service and "StateDirectory" not in service


def test_env_example_documents_every_variable() -> None:
    text = (DEPLOY / "systemd" / "feedsvc.env.example").read_text(encoding="utf-8")
    names = set(re.findall(r"^#?(FEEDSVC_[A-Z_]+)=", text, flags=re.MULTILINE))
    set_in_unit = {value.split("=", 1)[0] for value in unit_values("Environment")}
    assert names == FEEDSVC_VARIABLES
    assert {name for name in set_in_unit if name.startswith("FEEDSVC_")} <= names
    for line in text.splitlines():
        assert not line or line.startswith("#") or re.fullmatch(r"FEEDSVC_[A-Z_]+=\S+", line)
