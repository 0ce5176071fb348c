"""Benchmark of bulk runs: the cost of `tagger generate` over the same products through the pipeline directly.

    python benchmarks/bench_bulk.py [--n 1000] [--data-root ../shared/data] [--out benchmarks/results/bulk.json]
                                    [--blocks 10] [--workers-sample 60] [--scale 20]

In one process, on the embedded model and the default taxonomy, for N real products (OA-Mine dev, then WDC-PAVE dev,
replicated if N is larger):
1. direct: the products, cleaned beforehand, through `Tagger.tag_cleaned` in batches of 8: the backend calls and
   validation only, no files, no cache;
2. generate: the same rows from a JSONL file through `tagger.run.tag_catalog` (what `tagger generate` runs) into a JSONL
   output, with a cold result cache: reading, cleaning, dedup, cache, journal, rejects;
(1) and (2) take turns over --blocks blocks of the rows, each block through both, alternating which goes first:
drift over a long run (the machine, the model's state) then falls on both alike.
3. warm: generate again into a new output with the cache from (2);
4. scale: the rows --scale times over with new ids, all from the cache: the bulk layer alone, its memory before and
   after (it must not grow with the catalog).
Reported: products/s of each, the overhead of (2) over (1), time inside the backend in each, and the peak RSS after
each step. Then llama.cpp `--workers`: one worker on all cores against one worker per core, on a sample.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import tempfile
import time
from collections.abc import Sequence
from itertools import cycle, islice
from pathlib import Path
from typing import Any

from tagger.backends import Backend, Completion, Request
from tagger.build import TaggerSpec, build_tagger, build_taggers
from tagger.cache import ResultCache
from tagger.evals.config import default_data_root
from tagger.pipeline import Tagger
from tagger.product import Product, product_from_record
from tagger.run import RunOptions, tag_catalog
from tagger.taxonomy import load_taxonomy

ROOT = Path(__file__).resolve().parent.parent
BATCH = 8


class TimedBackend:
    """The real backend, with the wall time spent inside `generate` summed."""

    def __init__(self, inner: Backend) -> None:
        self.inner = inner
        self.name, self.model, self.decoding, self.tokenizer = inner.name, inner.model, inner.decoding, inner.tokenizer
        self.grammars = inner.grammars
        self.seconds = 0.0

    def generate(self, requests: Sequence[Request]) -> list[Completion]:
        start = time.perf_counter()
        try:
            return self.inner.generate(requests)
        finally:
            self.seconds += time.perf_counter() - start

    def close(self) -> None:
        self.inner.close()


def peak_rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def load_rows(data_root: Path, n: int) -> list[dict[str, Any]]:
    rows = []
    for name in ("oa-mine", "wdc-pave"):
        with (data_root / name / "dev.jsonl").open() as handle:
            rows += [json.loads(line) for line in handle]
    picked = list(islice(cycle(rows), n))
    # Replicated rows get their own ids: they are then duplicate content, which the bulk layer serves once.
    return [{**row, "id": f"{row['id']}#{i // len(rows)}"} if i >= len(rows) else row for i, row in enumerate(picked)]


def run_direct(tagger: Tagger, rows: list[dict[str, Any]]) -> float:
    cleaned = [tagger.cleaner.clean(product_from_record(row)) for row in rows]
    start = time.perf_counter()
    for i in range(0, len(cleaned), BATCH):
        tagger.tag_cleaned(cleaned[i : i + BATCH])
    return time.perf_counter() - start


def run_generate(tagger: Tagger, source: Path, output: Path, cache: ResultCache) -> tuple[float, Any]:
    start = time.perf_counter()
    summary = tag_catalog(tagger, source, output, RunOptions(batch_size=BATCH), cache)
    return time.perf_counter() - start, summary


def run_interleaved(
    tagger: Tagger, backend: TimedBackend, rows: list[dict[str, Any]], folder: Path, cache: ResultCache, blocks: int
) -> dict[str, Any]:
    """(1) and (2) over the same blocks of rows, taking turns at going first; times summed over the blocks."""
    size = -(-len(rows) // blocks)
    totals = dict.fromkeys(("direct_s", "direct_backend_s", "generate_s", "generate_backend_s"), 0.0)
    counts = {"generated_by_model": 0, "reused": 0, "rejected": 0}
    for number, first in enumerate(range(0, len(rows), size)):
        block = rows[first : first + size]
        source = folder / f"block{number}.jsonl"
        source.write_text("".join(json.dumps(r) + "\n" for r in block))
        for kind in ("direct", "generate") if number % 2 == 0 else ("generate", "direct"):
            backend.seconds = 0.0
            if kind == "direct":
                seconds = run_direct(tagger, block)
            else:
                seconds, summary = run_generate(tagger, source, folder / f"out{number}.jsonl", cache)
                counts["generated_by_model"] += summary.generated
                counts["reused"] += summary.reused
                counts["rejected"] += summary.failed
            totals[f"{kind}_s"] += seconds
            totals[f"{kind}_backend_s"] += backend.seconds
    return {"blocks": blocks, **totals, **counts}


def current_rss_mb() -> float:
    status = Path("/proc/self/status").read_text()
    return next(int(line.split()[1]) for line in status.splitlines() if line.startswith("VmRSS")) / 1024


def scale_check(tagger: Tagger, rows: list[dict[str, Any]], folder: Path, cache: ResultCache, factor: int) -> Any:
    """The bulk layer alone at catalog scale: the rows FACTOR times over, each copy with its own id, all served by
    the warm cache. Memory must stay flat however many rows go through; the rate is the layer's own ceiling."""
    source = folder / "scaled.jsonl"
    with source.open("w") as out:
        for copy in range(factor):
            out.writelines(json.dumps({**row, "id": f"{row['id']}~{copy}"}) + "\n" for row in rows)
    before = current_rss_mb()
    seconds, summary = run_generate(tagger, source, folder / "scaled-out.jsonl", cache)
    return {
        "scale_rows": summary.rows,
        "scale_generated_by_model": summary.generated,
        "scale_products_per_s": summary.tagged / seconds,
        "scale_rss_before_mb": before,
        "scale_rss_after_mb": current_rss_mb(),
    }


def workers_check(taxonomy: Any, rows: list[dict[str, Any]], folder: Path) -> dict[str, float]:
    """products/s of generate with 1 worker x all cores against 1 worker per core (1 thread each)."""
    source = folder / "sample.jsonl"
    source.write_text("".join(json.dumps(r) + "\n" for r in rows))
    cores = os.cpu_count() or 1
    rates = {}
    for workers in (1, cores):
        taggers = build_taggers(TaggerSpec(), workers, taxonomy=taxonomy)  # the cores shared out between workers
        start = time.perf_counter()
        tag_catalog(taggers, source, folder / f"w{workers}.jsonl", RunOptions(batch_size=BATCH), ResultCache(None))
        rates[f"workers_{workers}_products_per_s"] = len(rows) / (time.perf_counter() - start)
        for tagger in taggers:
            tagger.close()
    rates["workers_speedup"] = rates[f"workers_{cores}_products_per_s"] / rates["workers_1_products_per_s"]
    return rates


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--n", type=int, default=1000)
    parser.add_argument("--data-root", type=Path, default=default_data_root())
    parser.add_argument("--out", type=Path, default=ROOT / "benchmarks" / "results" / "bulk.json")
    parser.add_argument("--blocks", type=int, default=10, help="direct and generate take turns over this many blocks")
    parser.add_argument("--workers-sample", type=int, default=60, help="products for the --workers check (0: skip)")
    parser.add_argument("--scale", type=int, default=20, help="the rows this many times over, from the cache (0: skip)")
    args = parser.parse_args()

    rows = load_rows(args.data_root, args.n)
    taxonomy = load_taxonomy()
    tagger = build_tagger(TaggerSpec(), taxonomy=taxonomy, wrap=TimedBackend)
    backend = tagger.backend
    report: dict[str, Any] = {"n": len(rows), "batch_size": BATCH, "model": backend.model}
    report["rss_start_mb"] = peak_rss_mb()
    tagger.tag(Product("warmup", "Stainless steel kettle 1.7 L"))  # the first call pays one-off setup

    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        source = folder / "catalog.jsonl"
        source.write_text("".join(json.dumps(r) + "\n" for r in rows))

        cache = ResultCache(folder / "cache.sqlite")
        report |= run_interleaved(tagger, backend, rows, folder, cache, args.blocks)
        report["rss_after_direct_and_generate_mb"] = peak_rss_mb()
        warm_s, warm = run_generate(tagger, source, folder / "warm.jsonl", cache)
        report |= {"warm_s": warm_s, "warm_generated_by_model": warm.generated, "rss_after_warm_mb": peak_rss_mb()}
        if args.scale:
            report |= scale_check(tagger, rows, folder, cache, args.scale)
        cache.close()
        tagger.close()
        if args.workers_sample:
            report |= workers_check(taxonomy, rows[: args.workers_sample], folder)

    n, direct_s, generate_s = len(rows), report["direct_s"], report["generate_s"]
    report |= {
        "direct_products_per_s": n / direct_s,
        "generate_products_per_s": n / generate_s,
        "warm_products_per_s": n / warm_s,
        "throughput_ratio": direct_s / generate_s,
        # What generate adds outside the backend, as a share of the direct run's time. Wall-clock ratios alone
        # would flatter generate: it serves duplicate content once, so it calls the model less.
        "overhead": ((generate_s - report["generate_backend_s"]) - (direct_s - report["direct_backend_s"])) / direct_s,
        "non_backend_share_direct": 1 - report["direct_backend_s"] / direct_s,
        "non_backend_share_generate": 1 - report["generate_backend_s"] / generate_s,
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(report, indent=2) + "\n")
    for key, value in report.items():
        print(f"{key:34} {value:.4f}" if isinstance(value, float) else f"{key:34} {value}")


if __name__ == "__main__":
    main()
