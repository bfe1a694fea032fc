"""Benchmark: the cache-hit `GET /recommend` throughput of this checkout against another
install (the previous commit, say), both up at once, each on its own warmed Redis, wrk
switching between them round by round.

    git worktree add /tmp/prev HEAD~1 && python -m venv /tmp/venv_prev \\
        && /tmp/venv_prev/bin/pip install -e '/tmp/prev[dev]'
    .venv/bin/python bench/compare_cache_hit.py --other-bin /tmp/venv_prev/bin [--rounds 6]
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
from contextlib import ExitStack
from pathlib import Path

from harness import ROOT, Process, free_port, prepare_store, redis_server, wrk

BIN = Path(sys.executable).parent


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--other-bin", type=Path, required=True,
                   help="the bin directory of the other install's virtual environment")
    p.add_argument("--users", type=int, default=20_000)
    p.add_argument("--rounds", type=int, default=6)
    p.add_argument("--seconds", type=int, default=8)
    p.add_argument("--workdir", type=Path, default=ROOT / "bench/results/compare_cache_hit")
    args = p.parse_args()
    sides = {"this": BIN, "other": args.other_bin}
    urls: dict[str, str] = {}
    with ExitStack() as stack:
        for name, bin_dir in sides.items():
            # Each side trains its own model (the same store): formats may differ.
            work = args.workdir / name
            _, models = prepare_store(work, args.users, 2_000, 400_000, seed=3)
            redis_proc, redis_url = redis_server()
            stack.enter_context(redis_proc)
            subprocess.run([str(bin_dir / "recsvc"), "warm-cache", "--model-root",
                            str(models), "--redis-url", redis_url, "--users", "all"],
                           check=True, capture_output=True)
            port = free_port()
            stack.enter_context(Process(
                [str(bin_dir / "recsvc"), "serve", "--model-root", str(models), "--port",
                 str(port), "--workers", "1", "--log-level", "warning"],
                ready_url=f"http://127.0.0.1:{port}/readyz",
                env={"RECSVC_REDIS_URL": redis_url, "RECSVC_STATE_DIR": str(work / "state")}))
            urls[name] = f"http://127.0.0.1:{port}"
        for url in urls.values():  # every user once: lists of users never warmed
            wrk(url, "/recommend?user_id=U", args.users, "&n=10", seconds=10,
                sequential=True)
        runs: dict[str, list[float]] = {name: [] for name in urls}
        for r in range(args.rounds):
            order = list(urls.items()) if r % 2 == 0 else list(reversed(urls.items()))
            for name, url in order:
                out = wrk(url, "/recommend?user_id=U", args.users, "&n=10",
                          seconds=args.seconds, seed=r + 1)
                runs[name].append(out["requests_per_s"])
                print(name, out, file=sys.stderr)
    median = {name: statistics.median(v) for name, v in runs.items()}
    result = {"runs": runs, "median_requests_per_s": median,
              "ratio_this_to_other": round(median["this"] / median["other"], 3)}
    args.workdir.mkdir(parents=True, exist_ok=True)
    (args.workdir / "result.json").write_text(json.dumps(result, indent=2))
    print(json.dumps(result, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
