"""Cold load of Shopify's taxonomy: the bundled copy against the source YAML (no cache, and a warm pickle cache).

    python benchmarks/bench_taxonomy_load.py --runs 5 --data-root ../shared/data

Each measurement is a new Python process with its own empty cache folder ($TAGGER_CACHE_DIR), so nothing is warm
but the operating system's file cache. The arms are interleaved run by run. Reported per arm: the median over the
runs of `load_taxonomy(...)` alone, and of the whole process (interpreter start, imports, load).
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
PROBE = """
import json, sys, time
start = time.perf_counter()
from tagger.taxonomy import load_taxonomy
imported = time.perf_counter()
taxonomy = load_taxonomy(sys.argv[1])
done = time.perf_counter()
print(json.dumps({"import_s": imported - start, "load_s": done - imported, "categories": len(taxonomy.categories)}))
"""


def measure(spec: str, cache: Path) -> dict[str, float]:
    env = {**os.environ, "TAGGER_CACHE_DIR": str(cache), "PYTHONPATH": str(ROOT)}
    start = time.perf_counter()
    out = subprocess.run([sys.executable, "-c", PROBE, spec], env=env, capture_output=True, text=True, check=True)
    result: dict[str, float] = json.loads(out.stdout)
    result["process_s"] = time.perf_counter() - start
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--data-root", type=Path, help="with shopify-taxonomy/: also time the source loader")
    args = parser.parse_args()
    arms = {"bundled (shopify)": "shopify"}
    if args.data_root:
        source = f"shopify:{args.data_root.resolve() / 'shopify-taxonomy'}"
        arms |= {"source, empty cache": source, "source, warm cache": source}
    times: dict[str, list[dict[str, float]]] = {arm: [] for arm in arms}
    with tempfile.TemporaryDirectory() as tmp:
        warm = Path(tmp) / "warm"
        if args.data_root:
            measure(arms["source, warm cache"], warm)  # fills the pickle cache the warm arm reads
        for run in range(args.runs):
            for arm, spec in arms.items():
                cache = warm if arm == "source, warm cache" else Path(tmp) / f"cold-{run}-{len(times[arm])}-{arm[:6]}"
                times[arm].append(measure(spec, cache))
    report = {
        arm: {key: round(statistics.median(r[key] for r in rows), 3) for key in ("load_s", "import_s", "process_s")}
        for arm, rows in times.items()
    }
    print(json.dumps({"runs": args.runs, "python": sys.version.split()[0], "median": report}, indent=2))


if __name__ == "__main__":
    main()
