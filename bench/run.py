"""`make bench`: every benchmark in bench/, one after the other, each writing bench/results/.

    python -m bench.run

Runs bench/httpbench.py and bench/slowclients.py, then bench/startup.py, bench/render_scale.py,
bench/request_cpu.py, bench/hostile_mix.py and bench/publish.py.
"""
from __future__ import annotations

import os
import subprocess
import sys

from bench.loopback import ROOT

BENCHMARKS = ("httpbench", "slowclients", "startup", "render_scale", "request_cpu", "hostile_mix",
              "publish")


def main() -> int:
    failed = []
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(filter(None, (str(ROOT), os.environ.get(
        "PYTHONPATH"))))}
    for name in BENCHMARKS:
        script = ROOT / "bench" / f"{name}.py"
        if not script.exists():
            print(f"== bench/{name}.py: not present, skipped", flush=True)
            continue
        print(f"== bench/{name}.py", flush=True)
        if subprocess.run([sys.executable, str(script)], cwd=ROOT, env=env,
                          check=False).returncode:
            failed.append(name)
    if failed:
        print(f"failed: {', '.join(failed)}", file=sys.stderr)
    return 1 if failed else 0


if __name__ == "__main__":
    raise SystemExit(main())
