"""Reliability scenarios for the data path from events to served model, run against real
processes (`recsvc serve`, `train`, `retrain`, `redis-server`) as an operator meets
failures. Each prints one line, PASS or FAIL, with what it measured; the exit status is
the number of failures. RELIABILITY.md lists them with their last results.

    .venv/bin/python loadtests/scenarios.py             # the full run (a few minutes)
    .venv/bin/python loadtests/scenarios.py --quick     # what `make test` runs
    .venv/bin/python loadtests/scenarios.py --only redis,swaps

Scenarios: redis (Redis killed and restarted under load), swaps (promotions, rollbacks
and reloads under load, every worker on the new version), corrupt (a broken current at
start and at reload), kill-jobs (kill -9 of `train` and `retrain` at random points),
kill-service (kill -9 of the service under event load: every acknowledged event kept,
whole), disk-full (the events volume fills, then has room again), forget (shoppers
forgotten and the nightly job rewriting the events log under load).

Long because: seven scenarios and the small harness they share (processes, load, the
events log's reader), kept in one file so that one command runs them."""

from __future__ import annotations

import argparse
import json
import os
import random
import resource
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import httpx

PYTHON = sys.executable
QUICK = False  # set by --quick: shorter phases, fewer kills, looser time limits


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def recsvc(*args: str, check: bool = True, **kwargs) -> subprocess.CompletedProcess:  # noqa: ANN003
    return subprocess.run([PYTHON, "-m", "recsvc", *args], capture_output=True, text=True,
                          check=check, **kwargs)


def wait_for(check: Callable[[], object], what: str, timeout: float = 120.0) -> object:
    deadline = time.monotonic() + timeout
    while True:
        try:
            value = check()
        except (httpx.HTTPError, OSError):
            value = None
        if value:
            return value
        if time.monotonic() > deadline:
            raise TimeoutError(what)
        time.sleep(0.05)


# -- a store, a model, a service -------------------------------------------------------

def store_and_model(work: Path, name: str = "m") -> tuple[Path, Path]:
    store, root = work / "store", work / name
    if not (store / "interactions.csv").exists():
        recsvc("generate", "--out", str(store), "--users", "400", "--items", "120",
               "--events", "20000", "--seed", "3")
    recsvc("train", *store_args(store), "--model-root", str(root), "--no-tune", "--quiet")
    return store, root


def store_args(store: Path) -> list[str]:
    return ["--interactions", str(store / "interactions.csv"), "--items",
            str(store / "items.csv"), "--users", str(store / "users.csv")]


class Service:
    """`recsvc serve` in its own process group (so that kill -9 reaches every worker)."""

    def __init__(self, root: Path, state: Path, workers: int = 2, redis_url: str | None = None,
                 preexec: Callable[[], None] | None = None) -> None:
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        env = {**os.environ, "RECSVC_STATE_DIR": str(state), "RECSVC_API_KEY": "k",
               "RECSVC_LOG_LEVEL": "warning"}
        if redis_url:
            env["RECSVC_REDIS_URL"] = redis_url

        def setup() -> None:
            os.setsid()
            if preexec:
                preexec()

        self.process = subprocess.Popen(
            [PYTHON, "-m", "recsvc", "serve", "--model-root", str(root), "--port",
             str(self.port), "--workers", str(workers)], env=env, preexec_fn=setup,
            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
        wait_for(lambda: httpx.get(f"{self.url}/healthz", timeout=2).status_code == 200,
                 "the service did not start", timeout=300)

    def kill(self) -> None:
        os.killpg(self.process.pid, signal.SIGKILL)
        self.process.wait()

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(timeout=30)
            except subprocess.TimeoutExpired:
                self.kill()


class Redis:
    def __init__(self, work: Path) -> None:
        self.port = free_port()
        self.url = f"redis://127.0.0.1:{self.port}/0"
        self.work = work
        self.start()

    def start(self) -> None:
        self.process = subprocess.Popen(
            ["redis-server", "--port", str(self.port), "--bind", "127.0.0.1", "--save", "",
             "--appendonly", "no", "--dir", str(self.work)],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        wait_for(lambda: socket.create_connection(("127.0.0.1", self.port), 1),
                 "redis-server did not start", timeout=30)

    def kill(self) -> None:
        self.process.kill()
        self.process.wait()


@dataclass
class Load:
    """Shoppers asking for lists and posting events, from threads, until stopped. Every
    answer is kept: when it started, its status (0: no answer) and model version; every
    acknowledged event id too."""

    url: str
    threads: int = 4
    events: bool = True
    answers: list[tuple[float, int, str | None]] = field(default_factory=list)
    acknowledged: list[str] = field(default_factory=list)
    user_of: dict[str, str] = field(default_factory=dict)  # acknowledged id -> shopper

    def __post_init__(self) -> None:
        self._stop = threading.Event()
        self._workers = [threading.Thread(target=self._run, args=(i,), daemon=True)
                         for i in range(self.threads)]
        for worker in self._workers:
            worker.start()

    def _run(self, seed: int) -> None:
        rng = random.Random(seed)
        with httpx.Client(base_url=self.url, timeout=30) as http:
            while not self._stop.is_set():
                began = time.monotonic()
                try:
                    if self.events and rng.random() < 0.3:
                        # One shopper a batch: a shopper without consent is answered
                        # "ignored" (nothing of theirs is kept), so not counted as kept.
                        ids = [uuid.uuid4().hex for _ in range(5)]
                        user = f"U{rng.randrange(400)}"
                        response = http.post("/events", json=[
                            {"user_id": user, "event_id": i,
                             "item_id": f"I{rng.randrange(120)}", "event_type": "view"}
                            for i in ids])
                        if response.status_code == 200 and not response.json()["ignored"]:
                            self.acknowledged.extend(ids)
                            self.user_of.update(dict.fromkeys(ids, user))
                        self.answers.append((began, response.status_code, None))
                        continue
                    response = http.get("/recommend", params={"user_id": f"U{rng.randrange(400)}"})
                    version = (response.json().get("model_version")
                               if response.status_code == 200 else None)
                    self.answers.append((began, response.status_code, version))
                except httpx.HTTPError:
                    self.answers.append((began, 0, None))

    def stop(self) -> None:
        self._stop.set()
        for worker in self._workers:
            worker.join(timeout=60)

    def failures(self, allowed: tuple[int, ...] = ()) -> int:
        return sum(1 for _, status, _ in self.answers
                   if status != 200 and status not in allowed)


def logged_events(state: Path) -> tuple[list[dict], int]:
    """Every whole line of the service's events log, and how many were torn."""
    records, torn = [], 0
    for path in sorted((state / "events").glob("events-*.jsonl")):
        for line in path.read_bytes().splitlines():
            try:
                records.append(json.loads(line))
            except ValueError:
                torn += 1
    return records, torn


def kept_once(acknowledged: list[str], records: list[dict]) -> tuple[int, int]:
    """(acknowledged events missing from the log, present more than once)."""
    counts: dict[str, int] = {}
    for record in records:
        if "event_id" in record:
            counts[record["event_id"]] = counts.get(record["event_id"], 0) + 1
    return (sum(1 for i in acknowledged if i not in counts),
            sum(1 for i in acknowledged if counts.get(i, 0) > 1))


def phase(full: float, quick: float) -> float:
    return quick if QUICK else full


# -- the scenarios -----------------------------------------------------------------------

def redis_restart(work: Path) -> str:
    """Redis killed and restarted under load: no failed request, no lost event, Redis
    reported up again."""
    _, root = store_and_model(work)
    redis = Redis(work)
    service = Service(root, work / "state", redis_url=redis.url)
    load = Load(service.url)
    try:
        time.sleep(phase(3, 1))
        redis.kill()
        time.sleep(phase(5, 2))
        redis.start()
        wait_for(lambda: "recsvc_redis_up" in (text := httpx.get(f"{service.url}/metrics").text)
                 and all(line.endswith(" 1.0") for line in text.splitlines()
                         if line.startswith("recsvc_redis_up")),
                 "Redis not reported up again", timeout=60)
        time.sleep(phase(3, 1))
    finally:
        load.stop()
        service.stop()
        redis.kill()
    missing, twice = kept_once(load.acknowledged, logged_events(work / "state")[0])
    failed = load.failures()
    ok = failed == 0 and missing == 0
    return (f"{'PASS' if ok else 'FAIL'} redis: {len(load.answers):,} requests, {failed} "
            f"failed; {len(load.acknowledged):,} events acknowledged, {missing} missing, "
            f"{twice} twice (Redis down {phase(5, 2):g} s)")


def swaps(work: Path) -> str:
    """Promotions, rollbacks and reloads under load: no failed request, and every worker
    on the new version within a second of `current` moving."""
    store, root = store_and_model(work)
    service = Service(root, work / "state")
    load = Load(service.url, events=False)
    windows: list[float] = []
    # The full run holds every worker to a second; the quick one (make test, on any
    # machine) reports how long it took and holds them only to getting there.
    limit = None if QUICK else 1.0

    def changed(expected: str, at: float) -> None:
        wait_for(lambda: any(s > at + 0.2 and v == expected for s, _, v in load.answers),
                 f"{expected} never served", timeout=60)
        time.sleep(2.0)  # the answers that could still be old
        stale = [s - at for s, status, v in load.answers if s > at and v not in (expected,)
                 and status == 200]
        windows.append(max(stale, default=0.0))

    def current() -> str:
        return os.readlink(root / "current")

    try:
        for _ in range(1 if QUICK else 4):
            # The trainer promotes a new version; the CLI rolls back; an operator rolls
            # forward again through one worker; and reloads.
            recsvc("train", *store_args(store), "--model-root", str(root), "--no-tune",
                   "--quiet")
            newest = current()
            changed(newest, time.monotonic())
            recsvc("rollback", "--model-root", str(root))
            changed(current(), time.monotonic())
            response = httpx.post(f"{service.url}/admin/rollback", headers={"X-API-Key": "k"},
                                  params={"version": newest}, timeout=60)
            assert response.status_code == 200, response.text
            changed(newest, time.monotonic())
            assert httpx.post(f"{service.url}/admin/reload", headers={"X-API-Key": "k"},
                              timeout=60).status_code == 200
    finally:
        load.stop()
        service.stop()
    failed = load.failures()
    ok = failed == 0 and (limit is None or max(windows) <= limit)
    return (f"{'PASS' if ok else 'FAIL'} swaps: {len(windows)} changes of current under "
            f"{len(load.answers):,} requests, {failed} failed; old version served at most "
            f"{max(windows):.2f} s after a change"
            + (f" (limit {limit:g} s)" if limit else " (not judged in --quick)"))


def corrupt(work: Path) -> str:
    """A current whose arrays disagree (checksums all valid), at start and at reload:
    the newest promoted version that loads is served, no request fails, /readyz says why."""
    store, root = store_and_model(work)
    good = os.readlink(root / "current")
    broken = break_copy(root, good, "20990101T000000.000000Z-broken")
    subprocess.run([PYTHON, "-c", "import sys; from recsvc.core.lifecycle import promote; "
                    "promote(sys.argv[1], sys.argv[2])", str(root), broken], check=True)
    service = Service(root, work / "state")
    load = Load(service.url)
    try:
        ready = httpx.get(f"{service.url}/readyz").json()
        at_start = ready["model_version"] == good and ready["status"] == "degraded"
        recsvc("rollback", "--model-root", str(root), "--to", good)
        wait_for(lambda: httpx.get(f"{service.url}/readyz").json()["status"] == "ready",
                 "the report did not clear")
        again = break_copy(root, good, "20990101T000000.000000Z-broken2")
        subprocess.run([PYTHON, "-c", "import sys; from recsvc.core.lifecycle import promote;"
                        " promote(sys.argv[1], sys.argv[2])", str(root), again], check=True)
        ready = wait_for(lambda: (r := httpx.get(f"{service.url}/readyz").json())["degraded"]
                         and r, "the broken version was not reported")
        at_reload = ready["model_version"] == good
        time.sleep(phase(2, 0.5))
    finally:
        load.stop()
        service.stop()
    failed = load.failures()
    ok = at_start and at_reload and failed == 0
    return (f"{'PASS' if ok else 'FAIL'} corrupt: at start served {good} instead "
            f"({at_start}); at reload kept it ({at_reload}); {len(load.answers):,} requests, "
            f"{failed} failed")


def break_copy(root: Path, version: str, name: str) -> str:
    """A copy of `version` named `name` whose item_category is one short, with every
    checksum valid: what a trainer bug would write."""
    import hashlib

    import numpy as np

    target = root / name
    shutil.copytree(root / version, target)
    (target / "lifecycle.json").unlink(missing_ok=True)
    path = target / "item_category.npy"
    np.save(path, np.load(path)[:-1], allow_pickle=False)
    manifest = json.loads((target / "manifest.json").read_text())
    manifest["version"] = name
    manifest["files"]["item_category.npy"].update(
        bytes=path.stat().st_size, shape=[manifest["counts"]["items"] - 1],
        sha256=hashlib.sha256(path.read_bytes()).hexdigest())
    (target / "manifest.json").write_text(json.dumps(manifest))
    return name


def kill_jobs(work: Path) -> str:
    """kill -9 of `recsvc train` and of `recsvc retrain` at random points: `current`
    always loads and never goes back; the next night's run marks the dead runs'
    candidates failed and promotes."""
    store, root = store_and_model(work)
    rng = random.Random(7)
    problems, kills = [], 0
    for command in ("train", "retrain"):
        args = ([command, *store_args(store), "--model-root", str(root), "--no-tune",
                 "--quiet"])
        began = time.monotonic()
        recsvc(*args)
        took = time.monotonic() - began
        for _ in range(2 if QUICK else 6):
            before = os.readlink(root / "current")
            proc = subprocess.Popen([PYTHON, "-m", "recsvc", *args],
                                    stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
            time.sleep(rng.uniform(0.1, 0.95) * took)
            if proc.poll() is None:
                proc.kill()
                kills += 1
            proc.wait()
            after = os.readlink(root / "current")
            loads = subprocess.run([PYTHON, "-c", "import sys; from recsvc.core.model import "
                                    "load_model; load_model(sys.argv[1])", str(root)],
                                   capture_output=True, text=True)
            if loads.returncode != 0 or after < before:
                problems.append(f"current {after} after a kill: {loads.stderr[-200:]}")
    final = recsvc("retrain", *store_args(store), "--model-root", str(root), "--no-tune",
                   "--quiet", "--tolerance", "0.5", check=False)
    if final.returncode != 0:
        problems.append(f"the next run exited {final.returncode}")
    summary = json.loads(final.stdout) if final.stdout.strip() else {}
    states = json.loads(recsvc("versions", "--model-root", str(root), "--json").stdout)
    left = sum(1 for row in states if row["state"] in ("candidate", "failed"))
    if left:
        problems.append(f"{left} candidates of killed runs left")
    ok = not problems and kills > 0
    return (f"{'PASS' if ok else 'FAIL'} kill-jobs: {kills} kill -9 of train and retrain; "
            f"current always loaded and never went back; the next run promoted and pruned "
            f"{len(summary.get('pruned', []))} versions, no candidate of a killed run left"
            + (f"; {problems}" if problems else ""))


def kill_service(work: Path) -> str:
    """kill -9 of every worker under event load: every acknowledged event is in the log,
    once, on a whole line; the restarted service writes whole lines after the torn ones."""
    _, root = store_and_model(work)
    state = work / "state"
    service = Service(root, state)
    load = Load(service.url, threads=6)
    time.sleep(phase(4, 1.5))
    service.kill()
    load.stop()
    first = list(load.acknowledged)
    service = Service(root, state)
    load = Load(service.url, threads=2)
    time.sleep(phase(2, 1))
    load.stop()
    service.stop()
    records, torn = logged_events(state)
    missing, twice = kept_once(first + load.acknowledged, records)
    ok = missing == 0 and twice == 0 and torn <= 2 and bool(first)
    return (f"{'PASS' if ok else 'FAIL'} kill-service: {len(first):,} events acknowledged "
            f"before kill -9, {len(load.acknowledged):,} after the restart; {missing} "
            f"missing, {twice} twice; {torn} torn lines left by the kill, none joined")


def disk_full(work: Path) -> str:
    """The events volume fills: requests get 503 (never 500), nothing torn; once there is
    room again, events are accepted and every acknowledged one is in the log."""
    _, root = store_and_model(work)
    state = work / "state"
    (state / "events").mkdir(parents=True)
    room = 64 * 1024

    def small_volume() -> None:  # the kernel's file size limit stands in for a full disk
        signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
        resource.setrlimit(resource.RLIMIT_FSIZE, (room, resource.RLIM_INFINITY))

    service = Service(root, state, workers=1, preexec=small_volume)
    load = Load(service.url, threads=3)
    try:
        wait_for(lambda: any(s == 503 for _, s, _ in load.answers), "the volume never filled",
                 timeout=60)
        full_at = len(load.acknowledged)
        pids = [service.process.pid, *child_pids(service.process.pid)]
        for pid in pids:  # room again
            resource.prlimit(pid, resource.RLIMIT_FSIZE,
                             (resource.RLIM_INFINITY, resource.RLIM_INFINITY))
        time.sleep(phase(2, 1))
    finally:
        load.stop()
        service.stop()
    refused = sum(1 for _, s, _ in load.answers if s == 503)
    records, torn = logged_events(state)
    missing, twice = kept_once(load.acknowledged, records)
    errors = load.failures(allowed=(503,))
    ok = refused > 0 and errors == 0 and missing == 0 and torn == 0 and \
        len(load.acknowledged) > full_at
    return (f"{'PASS' if ok else 'FAIL'} disk-full: {refused} requests refused with 503 "
            f"while full, {errors} other errors; {len(load.acknowledged):,} events "
            f"acknowledged ({len(load.acknowledged) - full_at:,} after room came back), "
            f"{missing} missing, {torn} torn lines")


def forget_under_load(work: Path) -> str:
    """Shoppers forgotten under load (one through the API, one by `recsvc forget`), then
    the nightly job runs while events keep coming: every worker serves them a stranger's
    list at once; afterwards no line of theirs is in the events log, every other
    acknowledged event is there once, and neither the new model nor any version left
    holds them."""
    store, root = store_and_model(work)
    state = work / "state"
    service = Service(root, state)  # two workers, each its own in-process cache
    load = Load(service.url, threads=3)
    gone = ["U7", "U8"]
    problems = []
    try:
        http = httpx.Client(base_url=service.url, timeout=30)
        time.sleep(phase(2, 1))
        for user in gone:  # cached in the workers first
            for _ in range(4):
                http.get("/recommend", params={"user_id": user})
        stranger = [i["item_id"] for i in http.get("/recommend").json()["items"]]
        receipt = http.delete("/users/U7", headers={"X-API-Key": "k"}).json()
        recsvc("forget", "U8", "--model-root", str(root), "--state-dir", str(state))
        time.sleep(1.5)  # every worker follows the ledger within its reload interval
        for user in gone:
            for _ in range(6):  # whichever worker answers
                items = [i["item_id"] for i in http.get(
                    "/recommend", params={"user_id": user}).json()["items"]]
                if items != stranger:
                    problems.append(f"{user} still got a personal list")
        old = os.readlink(root / "current")
        nightly = recsvc("retrain", *store_args(store), "--model-root", str(root),
                         "--no-tune", "--quiet", "--tolerance", "0.5", "--state-dir",
                         str(state), "--forget-grace-days", "0", check=False)
        if nightly.returncode != 0:
            problems.append(f"the nightly job exited {nightly.returncode}")
        time.sleep(phase(2, 1))
    finally:
        load.stop()
        service.stop()
    records, torn = logged_events(state)
    theirs = [r for r in records if r["user_id"] in gone]
    kept = [i for i in load.acknowledged if load.user_of[i] not in gone]
    missing, twice = kept_once(kept, records)
    model_users = subprocess.run(
        [PYTHON, "-c", "import sys; from recsvc.core.model import load_model; "
         "m = load_model(sys.argv[1]); print(int((m.user_index(sys.argv[2:]) >= 0).sum()))",
         str(root), *gone], capture_output=True, text=True).stdout.strip()
    versions = json.loads(recsvc("versions", "--model-root", str(root), "--json").stdout)
    if theirs or missing or twice or torn or model_users != "0" or receipt["users"] != 1:
        problems.append(f"{len(theirs)} lines of theirs, {missing} missing, {twice} twice, "
                        f"{torn} torn, model holds {model_users}")
    if old in {row["version"] for row in versions}:
        problems.append(f"{old}, holding their rows, was not retired")
    ok = not problems and bool(kept) and load.failures() == 0
    return (f"{'PASS' if ok else 'FAIL'} forget: 2 shoppers forgotten under load, served "
            f"a stranger's list by every worker at once; the nightly job ran under "
            f"{len(load.answers):,} requests ({load.failures()} failed): 0 lines of theirs "
            f"left, {len(kept):,} other events acknowledged, {missing} missing; the new "
            f"model and every version left hold none of them"
            + (f"; {problems}" if problems else ""))


def child_pids(pid: int) -> list[int]:
    out = subprocess.run(["ps", "-o", "pid=", "--ppid", str(pid)], capture_output=True,
                         text=True).stdout
    return [int(p) for p in out.split()]


SCENARIOS = {"redis": redis_restart, "swaps": swaps, "corrupt": corrupt,
             "kill-jobs": kill_jobs, "kill-service": kill_service, "disk-full": disk_full,
             "forget": forget_under_load}


def main() -> int:
    global QUICK
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--quick", action="store_true", help="short phases (make test)")
    p.add_argument("--only", help="comma-separated scenario names")
    p.add_argument("--keep", action="store_true", help="keep the work directories")
    args = p.parse_args()
    QUICK = args.quick
    names = args.only.split(",") if args.only else list(SCENARIOS)
    failures = 0
    for name in names:
        work = Path(tempfile.mkdtemp(prefix=f"recsvc-scenario-{name}-"))
        began = time.monotonic()
        try:
            line = SCENARIOS[name](work)
        except Exception as exc:  # noqa: BLE001 - a scenario that breaks is a failure
            line = f"FAIL {name}: {type(exc).__name__}: {exc}"
        print(f"{line} [{time.monotonic() - began:.0f} s]", flush=True)
        failures += not line.startswith("PASS")
        if not args.keep:
            shutil.rmtree(work, ignore_errors=True)
    return failures


if __name__ == "__main__":
    sys.exit(main())
