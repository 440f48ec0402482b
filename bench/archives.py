"""Synthetic archives and result tables shared by the scale benchmarks."""
from __future__ import annotations

import os
import subprocess
import sys
import tempfile
from collections.abc import Sequence
from pathlib import Path

from feedsvc.operations.synth import write_archive

RESULTS = Path(__file__).resolve().parent / "results"
SIZES = (1_000, 10_000, 100_000)


def workdir() -> Path:
    """Return the directory where generated archives are kept between runs (they are deterministic)."""
    path = Path(os.environ.get("FEEDSVC_BENCH_DIR") or Path(tempfile.gettempdir()) / "feedsvc-bench")
    path.mkdir(parents=True, exist_ok=True)
    return path


def archive(count: int, where: Path | None = None) -> Path:
    """Return a bundle of `count` synthetic releases, generating it if it is not there yet."""
    target = (where or workdir()) / f"archive-{count}.yaml"
    if not target.exists():
        partial = target.with_suffix(".partial")
        write_archive(count, partial)
        partial.replace(target)
    return target


def split_archive(count: int) -> Path:
    """Return a directory of `count` synthetic releases, one file each (generated once)."""
    target = workdir() / f"split-{count}"
    if not target.exists():
        partial = workdir() / f"split-{count}.partial"
        subprocess.run([sys.executable, "-m", "feedsvc", "synth", str(count), str(partial),
                        "--split"], check=True, stdout=subprocess.DEVNULL)
        partial.replace(target)
    return target


def table(headers: Sequence[str], rows: Sequence[Sequence[object]]) -> str:
    """Format rows as a Markdown table."""
    lines = ["| " + " | ".join(headers) + " |", "|" + "|".join("---" for _ in headers) + "|"]
    lines += ["| " + " | ".join(str(cell) for cell in row) + " |" for row in rows]
    return "\n".join(lines)


def publish(name: str, text: str) -> None:
    """Print a result and write it to bench/results/<name>.md."""
    print(text)
    RESULTS.mkdir(exist_ok=True)
    (RESULTS / f"{name}.md").write_text(text + "\n", encoding="utf-8")
