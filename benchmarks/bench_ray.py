"""Benchmark of the Ray engine against the local run, at equal parallelism, as a user runs them: whole commands.

    TAGGER_THREADS=1 python benchmarks/bench_ray.py [--n 400] [--blocks 1] [--repeats 2] [--data-root ../shared/data]
                                                    [--out benchmarks/results/ray.json]

N real products (Flipkart dev, then WDC-PAVE dev, with new ids if N is larger; the sample catalog repeated where the
data root is missing) are split into --blocks blocks. Every block is tagged --repeats times by four arms, each a
`tagger generate` process with --no-cache (every arm generates everything), with the same thread settings: one
llama.cpp thread and one BLAS thread (MiniLM's matrix products) per worker or actor. (Ray gives an actor
OMP_NUM_THREADS = its CPUs; a local run's numpy would use every core unless told: THREADS below tells every arm.)

- local-1: `--workers 1`            ray-1: `--engine ray --actors 1` (a local Ray started by the command)
- local-2: `--workers 2`            ray-2: `--engine ray --actors 2`

The arms take turns within each block, the order rotating from block to block and from repeat to repeat, so that
drift on a shared machine falls on all alike. Reported per arm: products/s over the whole commands (Ray's start, the
model loads and the planning included), the peak RSS of the command's whole process tree (Ray's own processes and
actors included, sampled every 0.2 s), and Ray's overhead over the local run at equal parallelism (ray-k's seconds /
local-k's - 1, per repeat and of the means).
Each arm also tags one product (the same for all, --repeats times, interleaved): its seconds are the fixed cost of a
command (imports, model loads, Ray's start and stop), which a long run spreads over more products. From the two
sizes, a straight line per arm (seconds = fixed + N x per product) gives the catalog size above which Ray's overhead
at equal parallelism is under 10% (`break_even_10pct`; null when Ray's per-product cost is over 1.1 x the local one).
The ray arms' one-product commands run with -v: their log times Ray's start, the first records (the actors' start
and model loads, and one batch), the whole generation, and Ray's stop (`ray_phases`).
"""

from __future__ import annotations

import argparse
import json
import os
import re
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
# One llama.cpp thread and one BLAS thread per worker or actor, in every arm alike.
THREADS = {"TAGGER_THREADS": "1", "OMP_NUM_THREADS": "1"}
# The local Ray each ray arm starts listens on 127.0.0.1 only (Ray's default is the machine's network address).
RAY_ENV = {**os.environ, **THREADS, "RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER": "0", "RAY_USAGE_STATS_ENABLED": "0"}
# The phases tagger.scale logs with -v, as "<phase> in <seconds> s".
PHASE = re.compile(r"(ray started|first records|generation done|ray stopped)\S* in ([0-9.]+) s")
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


def run_arm(arm: str, source: Path, output: Path, verbose: bool = False) -> tuple[float, int, str]:
    """Seconds, peak tree RSS and stderr of one `tagger generate` command."""
    command = [sys.executable, "-m", "tagger", "generate", str(source), "-o", str(output), "--no-cache"]
    command += ["-v" if verbose else "-q", "--batch-size", "8", *ARMS[arm]]
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


def rotated(names: list[str], turn: int) -> list[str]:
    return names[turn % len(names) :] + names[: turn % len(names)]


def break_even(ray: tuple[float, float], local: tuple[float, float]) -> int | None:
    """The smallest N with (ray fixed + N ray per-product) <= 1.1 (local fixed + N local per-product), or None."""
    (ray_fixed, ray_each), (local_fixed, local_each) = ray, local
    margin = 1.1 * local_each - ray_each
    if ray_fixed <= 1.1 * local_fixed:
        return 1
    return None if margin <= 0 else int((ray_fixed - 1.1 * local_fixed) / margin) + 1


def fixed_costs(rows: list[dict[str, Any]], folder: Path, repeats: int) -> tuple[dict[str, list[float]], Any]:
    """Each arm's seconds for one product, `repeats` times, interleaved; the ray arms' logged phases."""
    one = folder / "one.jsonl"
    one.write_text(json.dumps({**rows[0], "id": "fixed-cost"}) + "\n")
    fixed: dict[str, list[float]] = defaultdict(list)
    phases: dict[str, Any] = defaultdict(list)
    for turn in range(repeats):
        for arm in rotated(list(ARMS), turn):
            took, _, text = run_arm(arm, one, folder / f"{arm}-one-{turn}.jsonl", verbose=arm.startswith("ray"))
            fixed[arm].append(took)
            if arm.startswith("ray"):
                phases[arm].append({name: float(value) for name, value in PHASE.findall(text)})
            print(f"one product {arm}: {took:.1f} s {phases[arm][-1] if arm in phases else ''}")
    return fixed, phases


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--n", type=int, default=400)
    parser.add_argument("--blocks", type=int, default=1)
    parser.add_argument("--repeats", type=int, default=2)
    parser.add_argument("--data-root", type=Path, default=default_data_root())
    parser.add_argument("--out", type=Path, default=ROOT / "benchmarks" / "results" / "ray.json")
    args = parser.parse_args()
    if os.environ.get("TAGGER_THREADS") != "1":
        raise SystemExit("set TAGGER_THREADS=1: one llama.cpp thread per worker and per actor")
    rows = load_rows(args.data_root, args.n)
    size = -(-len(rows) // args.blocks)
    runs: dict[str, list[float]] = defaultdict(list)  # seconds of each repeat (its blocks summed)
    peaks: dict[str, int] = defaultdict(int)
    ids: dict[str, set[str]] = defaultdict(set)
    with tempfile.TemporaryDirectory(prefix="bench-ray-") as name:
        folder = Path(name)
        fixed, phases = fixed_costs(rows, folder, args.repeats)
        for repeat in range(args.repeats):
            took_by_arm: dict[str, float] = defaultdict(float)
            for block in range(args.blocks):
                part = rows[block * size : (block + 1) * size]
                source = folder / f"block-{block}.jsonl"
                source.write_text("".join(json.dumps(row) + "\n" for row in part))
                for arm in rotated(list(ARMS), repeat * args.blocks + block):
                    output = folder / f"{arm}-{repeat}-{block}.jsonl"
                    took, peak, _ = run_arm(arm, source, output)
                    took_by_arm[arm] += took
                    peaks[arm] = max(peaks[arm], peak)
                    written = [json.loads(line)["id"] for line in output.read_text().splitlines()]
                    if len(written) != len(set(written)):
                        raise SystemExit(f"{arm} wrote an id twice")
                    ids[arm] |= set(written)
                    print(f"repeat {repeat} block {block} {arm}: {len(part)} in {took:.1f} s, {peak / 2**20:.0f} MiB")
            for arm, took in took_by_arm.items():
                runs[arm].append(took)
    print(json.dumps(summarize(rows, args, runs, fixed, phases, peaks, ids), indent=2))


def summarize(
    rows: list[dict[str, Any]],
    args: argparse.Namespace,
    runs: dict[str, list[float]],
    fixed: dict[str, list[float]],
    phases: dict[str, Any],
    peaks: dict[str, int],
    ids: dict[str, set[str]],
) -> dict[str, Any]:
    n = len(rows)
    results: dict[str, Any] = {"n": n, "blocks": args.blocks, "repeats": args.repeats, "cpus": os.cpu_count()}
    results["threads"] = THREADS
    results["load_average_at_end"] = [round(x, 2) for x in os.getloadavg()]
    lines: dict[str, tuple[float, float]] = {}
    results["arms"] = {}
    for arm in ARMS:
        seconds, one = mean(runs[arm]), mean(fixed[arm])
        lines[arm] = (one, max(0.0, (seconds - one * args.blocks) / max(1, n - args.blocks)))
        results["arms"][arm] = {
            "seconds": [round(x, 1) for x in runs[arm]],
            "products_per_s": round(n / seconds, 3),
            "one_product_seconds": [round(x, 1) for x in fixed[arm]],
            "per_product_seconds": round(lines[arm][1], 4),
            "peak_tree_rss_mib": round(peaks[arm] / 2**20),
            "ids_written": len(ids[arm]),
        }
    for k in ("1", "2"):
        ray, local = f"ray-{k}", f"local-{k}"
        pairs = [r / lo - 1 for r, lo in zip(runs[ray], runs[local], strict=True)]
        results[f"ray_overhead_{k}"] = {
            "each_repeat": [round(x, 4) for x in pairs],
            "of_means": round(mean(runs[ray]) / mean(runs[local]) - 1, 4),
            "fixed_seconds_more": round(lines[ray][0] - lines[local][0], 1),
            "break_even_10pct": break_even(lines[ray], lines[local]),
        }
    results["ray_phases"] = phases
    results["same_ids"] = len({frozenset(v) for v in ids.values()}) == 1
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(results, indent=2) + "\n")
    return results


def mean(values: list[float]) -> float:
    return sum(values) / len(values)


if __name__ == "__main__":
    main()
