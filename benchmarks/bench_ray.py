"""Benchmark of the Ray engine against the local run, at equal parallelism, as a user runs them: whole commands.

    TAGGER_THREADS=1 python benchmarks/bench_ray.py [--n 400] [--blocks 4] [--data-root ../shared/data]
                                                    [--out benchmarks/results/ray.json]

N real products (Flipkart dev, then WDC-PAVE dev, with new ids if N is larger; the sample catalog repeated where the
data root is missing) are split into --blocks blocks. Every block is tagged by four arms, each a `tagger generate`
process with --no-cache (every arm generates everything), one llama.cpp thread per worker or actor:

- local-1: `--workers 1`            ray-1: `--engine ray --actors 1` (a local Ray started by the command)
- local-2: `--workers 2`            ray-2: `--engine ray --actors 2`

The arms take turns within each block, the order rotating from block to block, so that drift on a shared machine
falls on all alike. Reported per arm: products/s over the whole commands (Ray's start, the model loads and the
planning included), the peak RSS of the command's whole process tree (Ray's own processes and actors included,
sampled every 0.2 s), and Ray's overhead over the local run at equal parallelism (ray-k's seconds / local-k's - 1).
Each arm also tags one product first (the same for all): its seconds are the fixed cost of a command (imports,
model loads, Ray's start and stop), which a long run spreads over more products. (One sample each: on a shared
machine, too noisy to subtract from the blocks' times.)
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from collections import defaultdict
from itertools import cycle, islice
from pathlib import Path
from typing import Any

import psutil

from tagger.evals.config import default_data_root

ROOT = Path(__file__).resolve().parent.parent
# The local Ray each ray arm starts listens on 127.0.0.1 only (Ray's default is the machine's network address).
RAY_ENV = {**os.environ, "RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER": "0", "RAY_USAGE_STATS_ENABLED": "0"}
ARMS: dict[str, list[str]] = {
    "local-1": ["--workers", "1"],
    "ray-1": ["--engine", "ray", "--actors", "1"],
    "local-2": ["--workers", "2"],
    "ray-2": ["--engine", "ray", "--actors", "2"],
}


def load_rows(data_root: Path, n: int) -> list[dict[str, Any]]:
    rows: list[dict[str, Any]] = []
    for name in ("flipkart", "wdc-pave"):
        path = data_root / name / "dev.jsonl"
        if path.is_file():
            rows += [json.loads(line) for line in path.read_text().splitlines()]
    if not rows:
        print(f"no data under {data_root}: the sample catalog, repeated", file=sys.stderr)
        rows = [json.loads(line) for line in (ROOT / "examples" / "catalog.jsonl").read_text().splitlines()]
    picked = list(islice(cycle(rows), n))
    return [{**row, "id": f"{row['id']}#{i // len(rows)}"} if i >= len(rows) else row for i, row in enumerate(picked)]


def tree_rss(process: psutil.Process) -> int:
    """The resident memory of a process and all its descendants, in bytes."""
    total = 0
    for member in [process, *process.children(recursive=True)]:
        try:
            total += member.memory_info().rss
        except psutil.NoSuchProcess:
            continue
    return total


def run_arm(arm: str, source: Path, output: Path) -> tuple[float, int, str]:
    """Seconds, peak tree RSS and stderr of one `tagger generate` command."""
    command = [sys.executable, "-m", "tagger", "generate", str(source), "-o", str(output), "--no-cache", "-q"]
    command += ["--batch-size", "8", *ARMS[arm]]
    log = output.with_suffix(".stderr")
    peak = 0
    start = time.perf_counter()
    with log.open("wb") as stderr:
        process = subprocess.Popen(command, stderr=stderr, env=RAY_ENV)
        watched = psutil.Process(process.pid)
        while process.poll() is None:
            try:
                peak = max(peak, tree_rss(watched))
            except psutil.NoSuchProcess:
                break
            time.sleep(0.2)
    seconds = time.perf_counter() - start
    text = log.read_text(errors="replace")
    if process.returncode not in (0, 3):
        raise SystemExit(f"{arm} failed ({process.returncode}):\n{text[-3000:]}")
    return seconds, peak, text


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--n", type=int, default=400)
    parser.add_argument("--blocks", type=int, default=4)
    parser.add_argument("--data-root", type=Path, default=default_data_root())
    parser.add_argument("--out", type=Path, default=ROOT / "benchmarks" / "results" / "ray.json")
    args = parser.parse_args()
    if os.environ.get("TAGGER_THREADS") != "1":
        raise SystemExit("set TAGGER_THREADS=1: one llama.cpp thread per worker and per actor")
    rows = load_rows(args.data_root, args.n)
    size = -(-len(rows) // args.blocks)
    seconds: dict[str, float] = defaultdict(float)
    peaks: dict[str, int] = defaultdict(int)
    ids: dict[str, set[str]] = defaultdict(set)
    fixed: dict[str, float] = {}
    with tempfile.TemporaryDirectory(prefix="bench-ray-") as folder:
        one = Path(folder) / "one.jsonl"
        one.write_text(json.dumps({**rows[0], "id": "fixed-cost"}) + "\n")
        for arm in ARMS:
            fixed[arm], _, _ = run_arm(arm, one, Path(folder) / f"{arm}-one.jsonl")
            print(f"one product {arm}: {fixed[arm]:.1f} s")
        for block in range(args.blocks):
            part = rows[block * size : (block + 1) * size]
            source = Path(folder) / f"block-{block}.jsonl"
            source.write_text("".join(json.dumps(row) + "\n" for row in part))
            names = list(ARMS)
            order = names[block % len(names) :] + names[: block % len(names)]
            for arm in order:
                output = Path(folder) / f"{arm}-{block}.jsonl"
                took, peak, _ = run_arm(arm, source, output)
                seconds[arm] += took
                peaks[arm] = max(peaks[arm], peak)
                ids[arm] |= {json.loads(line)["id"] for line in output.read_text().splitlines()}
                print(f"block {block} {arm}: {len(part)} products in {took:.1f} s, tree {peak / 2**20:.0f} MiB")
    results: dict[str, Any] = {"n": len(rows), "blocks": args.blocks, "cpus": os.cpu_count(), "arms": {}}
    for arm in ARMS:
        results["arms"][arm] = {
            "seconds": round(seconds[arm], 1),
            "products_per_s": round(len(rows) / seconds[arm], 3),
            "fixed_seconds": round(fixed[arm], 1),
            "peak_tree_rss_mib": round(peaks[arm] / 2**20),
            "ids_written": len(ids[arm]),
        }
    for k in ("1", "2"):
        results[f"ray_overhead_{k}"] = round(seconds[f"ray-{k}"] / seconds[f"local-{k}"] - 1, 4)
    results["same_ids"] = len({frozenset(v) for v in ids.values()}) == 1
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(results, indent=2) + "\n")
    print(json.dumps(results, indent=2))


if __name__ == "__main__":
    main()
