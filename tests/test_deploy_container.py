"""Check deploy/container/Containerfile and .dockerignore by parsing them.

No container engine exists on this machine, so `docker build` cannot run here:
the instructions are parsed and checked instead, and COPY sources checked on disk.
"""

from __future__ import annotations

import json
import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
DEPLOY = ROOT / "deploy"
CONTAINERFILE = DEPLOY / "container" / "Containerfile"

GUNICORN_ARGS = ["-c", "deploy/gunicorn.conf.py", "wsgi:app"]


def containerfile_stages() -> list[list[tuple[str, str]]]:
    """Return the (INSTRUCTION, arguments) pairs of each build stage."""
    text = re.sub(r"\\\n", " ", CONTAINERFILE.read_text(encoding="utf-8"))
    stages: list[list[tuple[str, str]]] = []
    for line in text.splitlines():
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        instruction, _, arguments = line.partition(" ")
        if instruction.upper() == "FROM":
            stages.append([])
        stages[-1].append((instruction.upper(), " ".join(arguments.split())))
    return stages


def final_stage(instruction: str) -> list[str]:
    return [args for name, args in containerfile_stages()[-1] if name == instruction]


def test_container_uses_slim_python_311() -> None:
    for stage in containerfile_stages():
        assert re.fullmatch(r"python:3\.11(\.\d+)?-slim(-\w+)?( AS \w+)?", stage[0][1]), stage[0]
    assert any("pip install --no-cache-dir ." in args
               for stage in containerfile_stages() for name, args in stage if name == "RUN")


def test_container_runs_gunicorn_as_non_root() -> None:
    (user,) = final_stage("USER")
    assert user.split(":")[0] not in ("root", "0")
    (cmd,) = final_stage("CMD")
    assert json.loads(cmd) == ["gunicorn", *GUNICORN_ARGS]
    assert final_stage("EXPOSE") == ["8000"]
    assert any("FEEDSVC_BIND=0.0.0.0:8000" in env for env in final_stage("ENV"))


def test_container_healthcheck_asks_healthz_with_python() -> None:
    (healthcheck,) = final_stage("HEALTHCHECK")
    command = json.loads(healthcheck.split(" CMD ", 1)[1])
    assert command[:2] == ["python", "-c"] and "/healthz" in command[2]


def dockerignore_excludes(path: str) -> bool:
    """Apply .dockerignore's rules (last match wins, a match on a parent excludes)."""
    excluded = False
    for raw in (ROOT / ".dockerignore").read_text(encoding="utf-8").splitlines():
        pattern = raw.strip()
        if not pattern or pattern.startswith("#"):
            continue
        negate = pattern.startswith("!")
        pattern = pattern.lstrip("!").strip("/")
        regex = "".join(
            ".*" if part == "**" else "[^/]*" if part == "*" else "[^/]" if part == "?"
            else re.escape(part)
            for part in re.split(r"(\*\*|\*|\?)", pattern)
        )
        parts = path.split("/")
        prefixes = ["/".join(parts[: i + 1]) for i in range(len(parts))]
        if any(re.fullmatch(regex.replace(".*/", "(.*/)?"), p) for p in prefixes):
            excluded = not negate
    return excluded


def test_container_copies_only_files_that_exist_and_reach_the_context() -> None:
    sources = []
    for stage in containerfile_stages():
        for name, args in stage:
            words = args.split()
            if name in ("COPY", "ADD") and not any(w.startswith("--from") for w in words):
                sources += [w for w in words[:-1] if not w.startswith("--")]
    assert sources
    for source in sources:
        assert (ROOT / source).exists(), f"COPY source {source} is missing"
        assert not dockerignore_excludes(source), f".dockerignore drops COPY source {source}"
    for junk in (".git", ".venv", "tests", "feedsvc/__pycache__", "deploy/k8s"):
        assert dockerignore_excludes(junk), junk
