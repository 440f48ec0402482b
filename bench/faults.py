"""Faults under load: each its own run of the shipped gunicorn config, checked response by response.

    make faults                        # every fault, one after the other
    python bench/faults.py redis kill  # some of them: redis invalid delete delete-bundle kill hup

Each run starts gunicorn as deployed (2 workers, loopback, FEEDSVC_RELOAD_INTERVAL=5, a copy of
data/ in a temporary directory) and puts it under load from two clients at once: wrk on
bench/mix.lua (32 connections; statuses and dataset versions counted) and bench/checker.py
(6 threads; every 200 feed must parse and come from a valid dataset version, the unfiltered
feeds must hold that version's text). Then the fault, and a measure of the recovery:

  redis          Redis stopped for 10 s and restarted empty (FEEDSVC_CACHE_URL set); new
                 queries probe that feeds are rendered meanwhile and stored again after
  invalid        a release replaced by an invalid one (atomic rename), then half-written,
                 then completed as a valid new release
  delete         one release file deleted and restored; then the whole directory deleted and
                 restored
  delete-bundle  the dataset as one bundle file (FEEDSVC_DATA=bundle.yaml), deleted, restored
  kill           a valid edit, then a worker killed with SIGKILL three times
  hup            SIGHUP to the master every second for 18 s, with an invalid and a valid edit

Expected: no 5xx; no connection errors except the in-flight request of a killed worker
(counted, at most one a kill); no response from a version other than the valid ones; new
valid data served by every worker within the reload interval. "Every worker" is every child
of the master at that moment: /readyz is asked again until each has answered (one busy worker
can miss a whole round under load), and the first answer of another version or status fails
the check. Prints one table and writes bench/results/faults.md; exits 1 if any run failed.
"""
from __future__ import annotations

import itertools
import os
import platform
import shutil
import signal
import sys
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

import soakkit  # noqa: E402
from checker import Checker, Expect  # noqa: E402
from soakkit import ROOT, Service, until  # noqa: E402

INTERVAL = 5            # FEEDSVC_RELOAD_INTERVAL: the shipped default
SLACK = 2.0             # seconds on top of the interval for a load and a busy 2-core machine
EDITED = "pr-2005-002"  # the release the faults edit
MARK = "SOAKFAULTNEWTITLE"


# --- datasets and their versions --------------------------------------------------------------

def predict(variant: Path) -> str:
    """Validate the dataset at `variant`; return the version it has wherever it is served."""
    from feedsvc.dataset import load_dataset

    # DatasetError if it is not valid: a fault's "valid" data must be. The version does not
    # depend on where the data lives.
    return load_dataset(variant).version


def release_path(data: Path, rid: str = EDITED) -> Path:
    return data / "releases" / f"{rid}.yaml"


def edited_text(data: Path) -> bytes:
    """The edited release: a new title that marks the new version's feeds."""
    text = release_path(data).read_text()
    title = next(line for line in text.splitlines() if line.startswith("title:"))
    return text.replace(title, f"title: ILO training {MARK} in Cambodia").encode()


def invalid_text(data: Path) -> bytes:
    return release_path(data).read_text().replace("[gender-equality]", "[no-such-topic]").encode()


def write_atomically(path: Path, raw: bytes) -> None:
    """Write beside the file (a hidden name the loader skips) and rename over it."""
    tmp = path.with_name(f".{path.name}.tmp")
    tmp.write_bytes(raw)
    os.replace(tmp, path)


def variant(work: Path, data: Path, name: str, change: Callable[[Path], None]) -> Path:
    """Copy `data` to work/name and apply `change` to the copy."""
    copy = work / name
    shutil.copytree(data, copy)
    change(copy)
    return copy


def bundle(data: Path, target: Path) -> Path:
    """Write data/ as one bundle file {site, topics, releases}, by text, comments kept."""
    parts = [(data / "site.yaml").read_text(), (data / "topics.yaml").read_text(), "releases:\n"]
    for file in sorted((data / "releases").glob("*.yaml")):
        lines, first = [], True
        for line in file.read_text().splitlines():
            if first and line and not line.startswith("#"):
                lines.append("  - " + line)
                first = False
            else:
                lines.append("    " + line if line else "")
        parts.append("\n".join(lines) + "\n")
    target.write_text("".join(parts))
    return target


# --- one run --------------------------------------------------------------------------------

@dataclass
class Run:
    """One fault's run: the service, its load, and what the fault found."""

    name: str
    svc: Service
    checker: Checker
    valid: dict[str, Expect]
    wrk: dict[str, Any] = field(default_factory=dict)
    recovery: list[str] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    failures: list[str] = field(default_factory=list)
    allowed_conn_errors: int = 0
    server_5xx: float = 0.0

    def t(self) -> float:
        return time.monotonic()

    def wait(self, what: Callable[[], bool], deadline: float, label: str,
             limit: float | None = None) -> float | None:
        """Wait for `what`; record how long it took under `label` (a failure past `limit`)."""
        took = until(what, deadline, 0.1)
        if took is None:
            self.failures.append(f"{label}: not within {deadline:.0f} s ({self.svc.last_check})")
            self.recovery.append(f"{label}: > {deadline:.0f} s")
        else:
            self.recovery.append(f"{label}: {took:.1f} s")
            if limit is not None and took > limit:
                self.failures.append(f"{label}: {took:.1f} s, over {limit:.1f} s")
        return took

    def expect(self, ok: bool, failure: str) -> None:
        if not ok:
            self.failures.append(failure)

    def expect_workers(self, version: str, status: str | None, failure: str) -> None:
        """Expect every worker to serve `version` (and report `status`) now; say why not."""
        self.svc.last_check = ""
        self.expect(self.svc.all_workers(version, status), f"{failure} ({self.svc.last_check})")


@contextmanager
def loaded(name: str, svc: Service, valid: dict[str, Expect], work: Path) -> Iterator[Run]:
    """Put `svc` under load from wrk and the checker for the duration of the block."""
    mix = soakkit.build_mix(svc)
    load = soakkit.wrk(svc, mix, 180, threads=1, connections=32, workdir=work)
    checker = Checker(int(svc.base.rsplit(":", 1)[1]), mix, valid, max_seconds=180).start()
    run = Run(name, svc, checker, valid)
    try:
        time.sleep(3)  # warm: every feed of the mix rendered and cached
        yield run
    finally:
        checker.stop()
        load.send_signal(signal.SIGINT)  # wrk stops and still prints its summary
        run.wrk = soakkit.wrk_result(load, work, grace=30)
        run.server_5xx = sum(svc.metric("feedsvc_http_requests_total", status=str(code))
                             for code in (500, 502, 503, 504))


def started(work: Path, data: Path, **options: Any) -> Service:
    return soakkit.start_service(data, work / "gunicorn.log", reload_interval=INTERVAL, **options)


def reason(svc: Service) -> str:
    """The first problem of the last_reload_error a worker reports."""
    for answer in svc.readiness(4):
        error = answer["dataset"]["last_reload_error"]
        if error:
            return str(error).splitlines()[-1].strip()
    return "(none)"


# --- the faults ------------------------------------------------------------------------------

def fault_redis(work: Path, data: Path) -> Run:
    port = soakkit.free_port()
    redis = soakkit.start_redis(port, work / "redis.log")
    old = predict(data)
    svc = started(work, data, cache_url=f"redis://127.0.0.1:{port}/0")
    try:
        with loaded("redis", svc, {old: Expect()}, work) as run:
            keys = soakkit.redis_keys(port) or 0
            run.expect(keys > 0, "no feed cached in Redis before the fault")
            soakkit.stop(redis)
            run.wait(lambda: svc.all_workers(old, "degraded"), 10, "readyz degraded after stop")
            # Feeds the workers already sent are replayed without the cache (feedsvc/replay.py):
            # new queries make them render, and try the cache, while it is down.
            probes = itertools.count()
            down = [novel(svc, next(probes)) for _ in range(20)]
            run.expect(all(status == 200 for status in down), f"probes while Redis is down: {down}")
            time.sleep(6)
            errors_down = svc.metric("feedsvc_feed_cache_events_total", event="error")
            redis = soakkit.start_redis(port, work / "redis.log")
            run.wait(lambda: novel(svc, next(probes)) == 200 and (soakkit.redis_keys(port) or 0) > 0,
                     20, "a new feed stored in Redis again")
            hits = soakkit.redis_hits(port)
            run.wait(lambda: novel(svc, 0, "after") == 200 and soakkit.redis_hits(port) > hits, 20,
                     "Redis hits resume (keyspace_hits)")
            run.wait(lambda: svc.all_workers(old, "ok"), 20, "readyz ok")
            time.sleep(3)
            run.notes.append(f"{keys} keys before the stop; {len(down)} new feeds rendered while it "
                             f"was down; {errors_down:g} cache errors counted (a failed call skips "
                             "the cache for 1 s)")
    finally:
        soakkit.stop(svc.process)
        soakkit.stop(redis)
    return run


def novel(svc: Service, n: int, word: str = "probe") -> int:
    """Ask for a feed no worker has sent yet (a new query), so that it is rendered."""
    return svc.get(f"/feeds/all.atom?q={word}{n}")[0]


def fault_invalid(work: Path, data: Path) -> Run:
    old = predict(data)
    new = predict(variant(work, data, "new", lambda d: write_atomically(
        release_path(d), edited_text(d))))
    valid = {old: Expect(absent=(MARK,)), new: Expect(present=(MARK,))}
    path, complete = release_path(data), edited_text(data)
    svc = started(work, data)
    try:
        with loaded("invalid", svc, valid, work) as run:
            write_atomically(path, invalid_text(data))
            run.wait(lambda: svc.all_workers(old, "degraded"), INTERVAL + 10,
                     "invalid: every worker degraded", INTERVAL + SLACK)
            run.notes.append(f"readyz said: {reason(svc)}")
            time.sleep(INTERVAL)
            cut = complete.index(b"\ncountries:")
            path.write_bytes(complete[:cut])  # half-written, in place, and left so for a while
            time.sleep(INTERVAL + SLACK)
            run.expect_workers(old, "degraded", "half-written file: not old + degraded")
            with path.open("ab") as rest:
                rest.write(complete[cut:])
            edited = time.monotonic()
            run.wait(lambda: svc.all_workers(new, "ok"), INTERVAL + 15,
                     "valid new data on every worker", INTERVAL + SLACK)
            time.sleep(2)
            early = run.checker.first_seen(new)
            run.expect(early is None or early >= edited - 0.05,
                       "the new version was served before its file was complete")
            lag(run, old, edited, "client: last old-version response after the valid write")
    finally:
        soakkit.stop(svc.process)
    return run


def lag(run: Run, old: str, since: float, label: str) -> None:
    last = run.checker.last_seen(old, since)
    late = sum(1 for t, v in run.checker.seen if v == old and t >= since)
    run.recovery.append(f"{label}: {0.0 if last is None else last - since:.2f} s ({late} responses)")
    if last is not None and last - since > INTERVAL + SLACK:
        run.failures.append(f"{label}: {last - since:.1f} s")


def fault_delete(work: Path, data: Path) -> Run:
    old = predict(data)
    gone = "pr-2004-001"
    fewer = predict(variant(work, data, "fewer", lambda d: release_path(d, gone).unlink()))
    valid = {old: Expect(present=(f"/releases/{gone}",)), fewer: Expect(absent=(f"/releases/{gone}",))}
    backup = variant(work, data, "backup", lambda d: None)
    svc = started(work, data)
    try:
        with loaded("delete", svc, valid, work) as run:
            release_path(data, gone).unlink()
            run.wait(lambda: svc.all_workers(fewer, "ok"), INTERVAL + 15,
                     "one release deleted: new version on every worker", INTERVAL + SLACK)
            write_atomically(release_path(data, gone), release_path(backup, gone).read_bytes())
            run.wait(lambda: svc.all_workers(old, "ok"), INTERVAL + 15,
                     "restored: old version on every worker", INTERVAL + SLACK)
            shutil.rmtree(data)
            deleted = time.monotonic()
            run.wait(lambda: svc.all_workers(old, "degraded"), INTERVAL + 10,
                     "directory deleted: every worker degraded", INTERVAL + SLACK)
            run.notes.append(f"directory deleted, readyz said: {reason(svc)}")
            time.sleep(INTERVAL)
            run.expect_workers(old, None, "directory deleted: the old data is not served")
            shutil.copytree(backup, data.with_name("data.new"))
            os.rename(data.with_name("data.new"), data)
            run.wait(lambda: svc.all_workers(old, "ok"), INTERVAL + 15,
                     "directory restored: readyz ok", INTERVAL + SLACK)
            partial = sum(1 for t, v in run.checker.seen if v != old and t >= deleted)
            run.recovery.append(f"responses of another version after the directory went: {partial}")
            run.expect(partial == 0, f"{partial} responses of another version after the directory went")
    finally:
        soakkit.stop(svc.process)
    return run


def fault_delete_bundle(work: Path, data: Path) -> Run:
    file = bundle(data, work / "bundle.yaml")
    saved = file.read_bytes()
    old = predict(file)
    svc = started(work, file)
    try:
        with loaded("delete-bundle", svc, {old: Expect(present=(f"/releases/{EDITED}",))},
                    work) as run:
            file.unlink()
            run.wait(lambda: svc.all_workers(old, "degraded"), INTERVAL + 10,
                     "bundle deleted: every worker degraded", INTERVAL + SLACK)
            run.notes.append(f"bundle deleted, readyz said: {reason(svc)}")
            time.sleep(INTERVAL)
            run.expect_workers(old, None, "bundle deleted: the old data is not served")
            write_atomically(file, saved)
            run.wait(lambda: svc.all_workers(old, "ok"), INTERVAL + 15,
                     "bundle restored: readyz ok", INTERVAL + SLACK)
    finally:
        soakkit.stop(svc.process)
    return run


def fault_kill(work: Path, data: Path) -> Run:
    old = predict(data)
    new = predict(variant(work, data, "new", lambda d: write_atomically(
        release_path(d), edited_text(d))))
    valid = {old: Expect(absent=(MARK,)), new: Expect(present=(MARK,))}
    svc = started(work, data)
    kills = 3
    try:
        with loaded("kill", svc, valid, work) as run:
            write_atomically(release_path(data), edited_text(data))
            run.wait(lambda: svc.all_workers(new, "ok"), INTERVAL + 15,
                     "edit before the kills: new version on every worker", INTERVAL + SLACK)
            moved = time.monotonic()
            for n in range(kills):
                victim = svc.workers()[0]
                os.kill(victim, signal.SIGKILL)
                run.wait(lambda victim=victim: respawned(svc, victim, new), 30,
                         f"kill {n + 1}: 2 workers serving again")
                time.sleep(4)
            # A SIGKILLed gevent worker drops every connection it holds, in flight or kept
            # alive between requests: at most wrk's 32 and the checker's 6 a kill.
            run.allowed_conn_errors = kills * (32 + 6)
            stale = sum(1 for t, v in run.checker.seen if v == old and t > moved)
            run.notes.append(f"{kills} SIGKILLs; responses of the pre-edit version after every "
                             f"worker had the edit: {stale}")
            run.expect(stale == 0, f"a respawned worker served the pre-edit data {stale} times")
    finally:
        soakkit.stop(svc.process)
    return run


def respawned(svc: Service, victim: int, version: str) -> bool:
    pids = svc.workers()
    if len(pids) != 2 or victim in pids:
        return False
    seen = svc.serving()
    return set(seen) == set(pids) and all(v == version for v, _ in seen.values())


def fault_hup(work: Path, data: Path) -> Run:
    old = predict(data)
    new = predict(variant(work, data, "new", lambda d: write_atomically(
        release_path(d), edited_text(d))))
    valid = {old: Expect(absent=(MARK,)), new: Expect(present=(MARK,))}
    bad, good = invalid_text(data), edited_text(data)
    svc = started(work, data)
    seconds, signals, edited = 18, 0, 0.0
    try:
        with loaded("hup", svc, valid, work) as run:
            begin = time.monotonic()
            while time.monotonic() - begin < seconds:
                if signals == 6:
                    write_atomically(release_path(data), bad)
                if signals == 12:
                    write_atomically(release_path(data), good)
                    edited = time.monotonic()
                svc.process.send_signal(signal.SIGHUP)
                signals += 1
                time.sleep(max(0.0, begin + signals - time.monotonic()))
            run.expect(svc.process.poll() is None, "the master exited")
            run.wait(lambda: len(svc.workers()) == 2 and svc.all_workers(new, "ok"), 30,
                     "after the last HUP: 2 workers, new version, ready")
            lag(run, old, edited, "client: last old-version response after the valid edit")
            early = run.checker.first_seen(new)
            run.expect(early is None or early >= edited - 0.05,
                       "the new version was served before it was written")
            run.notes.append(f"{signals} SIGHUPs, 1 a second; an invalid edit after 6, "
                             f"a valid one after 12")
    finally:
        soakkit.stop(svc.process)
    return run


FAULTS: dict[str, Callable[[Path, Path], Run]] = {
    "redis": fault_redis, "invalid": fault_invalid, "delete": fault_delete,
    "delete-bundle": fault_delete_bundle, "kill": fault_kill, "hup": fault_hup,
}


# --- the record ------------------------------------------------------------------------------

def judge(run: Run) -> dict[str, str]:
    """Sum both clients' counts, apply the expectations, and return the run's table row."""
    wrk, checker = run.wrk, run.checker
    fives = checker.served_5xx() + wrk["classes"].get("s5", 0)
    conn = len(checker.conn_errors) + sum(wrk["errors"][k] for k in ("connect", "read", "write"))
    foreign = {v: n for v, n in wrk["versions"].items() if v not in run.valid}
    wrong = len(checker.wrong) + sum(foreign.values())
    if fives or run.server_5xx:
        run.failures.append(f"5xx: clients saw {fives}, the service counted {run.server_5xx:g}")
    if conn > run.allowed_conn_errors:
        run.failures.append(f"{conn} connection errors (allowed {run.allowed_conn_errors})")
    if wrong:
        run.failures.append(f"{wrong} wrong responses: {checker.wrong[:3]} {foreign}")
    versions = dict(checker.versions)
    for version, count in wrk["versions"].items():
        versions[version] = versions.get(version, 0) + count
    return {
        "fault": run.name,
        "requests": f"{checker.requests + wrk['requests']:,}",
        "5xx": str(fives),
        "conn errors": f"{conn}" + (f" (≤ {run.allowed_conn_errors} allowed: in flight)"
                                    if run.allowed_conn_errors else ""),
        "wrong": str(wrong),
        "versions served": ", ".join(f"{v}: {n:,}" for v, n in versions.items()),
        "recovery": "; ".join(run.recovery),
        "result": "PASS" if not run.failures else "FAIL",
    }


COLUMNS = ("fault", "requests", "5xx", "conn errors", "wrong", "recovery", "result")


def markdown(rows: list[dict[str, str]], runs: list[Run]) -> str:
    when = datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC")
    out = [f"Faults, {when}, {platform.node()}: {os.cpu_count()} cores, shared with other runs; "
           f"2 workers, FEEDSVC_RELOAD_INTERVAL={INTERVAL}; load: wrk -t1 -c32 (bench/mix.lua) "
           "plus a 6-thread checking client.\n",
           "| " + " | ".join(COLUMNS) + " | command |",
           "|" + " --- |" * (len(COLUMNS) + 1)]
    for row in rows:
        out.append("| " + " | ".join(row[c] for c in COLUMNS) +
                   f" | `python bench/faults.py {row['fault']}` |")
    out.append("")
    for row, run in zip(rows, runs, strict=True):
        out.append(f"- **{run.name}**: versions served {row['versions served']}; "
                   f"wrk timeouts (> 5 s, not errors): {run.wrk['errors']['timeout']}. "
                   + " ".join(n.rstrip(".") + "." for n in run.notes))
        for failure in run.failures:
            out.append(f"  - FAIL: {failure}")
    return "\n".join(out) + "\n"


def main(argv: list[str]) -> int:
    names = argv or list(FAULTS)
    unknown = [n for n in names if n not in FAULTS]
    if unknown:
        print(f"unknown fault(s): {', '.join(unknown)}; choose from {', '.join(FAULTS)}")
        return 2
    rows, runs = [], []
    for name in names:
        work = soakkit.tmpdir(f"feedsvc-fault-{name}-")
        data = work / "data"
        shutil.copytree(ROOT / "data", data)
        print(f"== {name} ...", flush=True)
        mark = len(soakkit.REACHED)
        run = FAULTS[name](work, data)
        rounds = soakkit.REACHED[mark:]
        more = [n for n in rounds if n > 1]
        run.notes.append(f"{len(more)} of {len(rounds)} checks of every worker needed more than "
                         f"one round of /readyz to reach them all (at most {max(rounds, default=0)})")
        rows.append(judge(run))
        runs.append(run)
        print(f"   {rows[-1]['result']}: {rows[-1]['requests']} requests, "
              f"{rows[-1]['recovery']}", flush=True)
        if not run.failures:
            shutil.rmtree(work, ignore_errors=True)
        else:
            print(f"   kept {work} (gunicorn.log, wrk.out)")
    text = markdown(rows, runs)
    print(text)
    soakkit.RESULTS.mkdir(parents=True, exist_ok=True)
    target = soakkit.RESULTS / ("faults.md" if not argv else f"faults-{'-'.join(names)}.md")
    target.write_text(text)
    print(f"written to {target.relative_to(ROOT)}")
    return 1 if any(run.failures for run in runs) else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
