"""Run the test suite N times and print, per test, how often it failed.

Usage: python .ci/flake.py N [pytest arguments...]   (make flake N=10 [PYTEST_ARGS=...])
Each run writes a JUnit XML report; the table counts failures and errors per test id, so a
test that fails one run in four shows as 1/4 instead of vanishing in a green rerun.
"""
from __future__ import annotations

import subprocess
import sys
import tempfile
import time
import xml.etree.ElementTree as ET
from collections import Counter
from pathlib import Path


def _outcomes(report: Path) -> dict[str, str | None]:
    """Map each test id in one JUnit report to its failure's message, or None if it passed."""
    outcomes: dict[str, str | None] = {}
    for case in ET.parse(report).iter("testcase"):
        name = f"{case.get('classname', '')}::{case.get('name', '')}"
        problem = case.find("failure")
        if problem is None:
            problem = case.find("error")
        message = None if problem is None else problem.get("message", "")[:300]
        outcomes[name] = outcomes.get(name) or message
    return outcomes


def main(argv: list[str]) -> int:
    if not argv or not argv[0].isdigit() or int(argv[0]) < 1:
        print("usage: flake.py N [pytest arguments...]", file=sys.stderr)
        return 2
    runs, pytest_args = int(argv[0]), argv[1:]
    failures: Counter[str] = Counter()
    seen: set[str] = set()
    red_runs = 0
    with tempfile.TemporaryDirectory(prefix="flake-") as tmp:
        for run in range(1, runs + 1):
            report = Path(tmp) / f"run-{run}.xml"
            start = time.monotonic()
            code = subprocess.call([sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider",
                                    f"--junitxml={report}", *pytest_args],
                                   stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
            elapsed = time.monotonic() - start
            outcomes = _outcomes(report) if report.exists() else {}
            seen.update(outcomes)
            failed = sorted(name for name, message in outcomes.items() if message is not None)
            failures.update(failed)
            red_runs += code != 0
            print(f"run {run}/{runs}: exit {code}, {len(outcomes)} tests, {len(failed)} failed, "
                  f"{elapsed:.0f} s", flush=True)
            for name in failed:
                print(f"    FAILED {name}: {outcomes[name]}", flush=True)
    print(f"\n{'failed':>8}  test")
    for name, count in failures.most_common():
        print(f"{count:>3}/{runs:<4}  {name}")
    print(f"{0:>3}/{runs:<4}  each of the other {len(seen) - len(failures)} tests")
    print(f"\n{runs - red_runs} of {runs} runs green")
    return 1 if red_runs else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
