"""Benchmark of the vLLM backends on this machine, against llama.cpp, on the same products (run in .venv-vllm).

    python benchmarks/bench_vllm.py [--n 200] [--data-root ../shared/data] [--out benchmarks/results/vllm.json]
                                    [--structured-backend xgrammar] [--skip-llamacpp] [--inflight 32,8,1] [--warmup 4]

Reports products/s of the full two-stage pipeline for vLLM offline (the whole set in one batch per stage), the vLLM
server at 1, 8 and 32 requests in flight, and llama.cpp; the ratio of constrained to unconstrained vLLM time for the
same prompts; engine and server start times; peak RSS of the offline engine's processes, of the server's, and of
this process (which also holds llama.cpp).

Each backend first tags a few products outside the measured set, untimed (first-call costs: grammar compiler setup,
kernel selection), so the rates are steady-state. The report is rewritten after every phase, so a cut run keeps the
phases it finished; the server phases run from most to fewest requests in flight (the serial one is the longest).
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import time
from pathlib import Path
from typing import Any

os.environ.setdefault("VLLM_CPU_KVCACHE_SPACE", "1")

ROOT = Path(__file__).resolve().parent.parent


def _tree_peak_rss_mb(pid: int) -> float:
    """Sum of VmHWM (peak resident) over a process and its children, from /proc."""
    total, stack = 0.0, [pid]
    while stack:
        current = stack.pop()
        try:
            status = Path(f"/proc/{current}/status").read_text()
            children = Path(f"/proc/{current}/task/{current}/children").read_text().split()
        except OSError:
            continue
        total += next((int(line.split()[1]) for line in status.splitlines() if line.startswith("VmHWM")), 0) / 1024
        stack += [int(c) for c in children]
    return total


def _rate(tagger: Any, products: list[Any], warmup: list[Any]) -> tuple[float, int]:
    from tagger.records import TagRecord

    tagger.tag_batch(warmup)
    start = time.perf_counter()
    records = tagger.tag_batch(products)
    seconds = time.perf_counter() - start
    return len(products) / seconds, sum(isinstance(r, TagRecord) for r in records)


def flat(backend: Any) -> Any:
    """The two-stage pipeline with the model choosing from every category: the engines' own work, no retrieval."""
    from tagger.build import Narrowing, TaggerSpec

    return TaggerSpec(backend=backend, narrowing=Narrowing(shortlist=0))


def main() -> None:
    from tagger.backends import Request
    from tagger.backends.convert import embedded_hf_model
    from tagger.backends.vllm import default_dtype
    from tagger.build import BackendSpec, build_tagger
    from tagger.evals.config import default_data_root
    from tagger.io import read_rows
    from tagger.pipeline import CATEGORY_MAX_TOKENS
    from tagger.product import Product
    from tagger.taxonomy import load_taxonomy
    from tests.vllm.conftest import start_server

    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--n", type=int, default=200)
    parser.add_argument("--data-root", type=Path, default=default_data_root())
    parser.add_argument("--out", type=Path, default=ROOT / "benchmarks" / "results" / "vllm.json")
    parser.add_argument("--structured-backend", default="xgrammar")
    parser.add_argument("--skip-llamacpp", action="store_true")
    parser.add_argument("--inflight", default="32,8,1", help="server phases, requests in flight, comma-separated")
    parser.add_argument("--warmup", type=int, default=4, help="untimed products before each backend's timed run")
    args = parser.parse_args()

    rows = [p for _, p in read_rows(args.data_root / "flipkart" / "dev.jsonl") if isinstance(p, Product)]
    products, warmup = rows[: args.n], rows[args.n : args.n + args.warmup]
    taxonomy = load_taxonomy()
    model = embedded_hf_model()
    report: dict[str, Any] = {
        "products": len(products),
        "taxonomy": f"{taxonomy.name} {taxonomy.version}",
        "dtype": default_dtype(),
        "structured_outputs_backend": args.structured_backend,
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)

    def save() -> None:
        report["peak_rss_mb"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
        args.out.write_text(json.dumps(report, indent=2))

    start = time.perf_counter()
    options = {"enforce_eager": True, "max_model_len": 2048, "structured_outputs_backend": args.structured_backend}
    tagger = build_tagger(flat(BackendSpec(name="vllm", model=str(model), options=options)), taxonomy=taxonomy)
    engine = tagger.backend
    report["vllm_engine_start_s"] = time.perf_counter() - start
    save()
    report["vllm_offline_products_per_s"], report["vllm_offline_tagged"] = _rate(tagger, products, warmup)
    save()
    requests = [
        Request(tagger.prompts.category_messages(p), tagger.schemas.category, CATEGORY_MAX_TOKENS) for p in products
    ]
    free = [Request(r.messages, None, r.max_tokens) for r in requests]
    t0 = time.perf_counter()
    constrained = engine.generate(requests)
    t1 = time.perf_counter()
    unconstrained = engine.generate(free)
    t2 = time.perf_counter()
    tokens_c = sum(c.completion_tokens for c in constrained)
    tokens_u = sum(c.completion_tokens for c in unconstrained)
    report["vllm_constrained_to_unconstrained_time"] = (t1 - t0) / (t2 - t1)
    report["vllm_constrained_to_unconstrained_per_token"] = ((t1 - t0) / tokens_c) / ((t2 - t1) / tokens_u)
    # The engine core runs in a child process: its memory counts too.
    report["vllm_offline_peak_rss_mb"] = _tree_peak_rss_mb(os.getpid())
    engine.close()
    save()

    if not args.skip_llamacpp:
        report["llamacpp_products_per_s"], report["llamacpp_tagged"] = _rate(
            build_tagger(flat(BackendSpec()), taxonomy=taxonomy), products, warmup
        )
        save()

    start = time.perf_counter()
    server = start_server(model, args.out.with_suffix(".server.log"))
    report["vllm_server_start_s"] = time.perf_counter() - start
    try:
        for inflight in (int(n) for n in args.inflight.split(",")):
            served = BackendSpec(name="openai", options={"base_url": server.url, "concurrency": inflight})
            rate, tagged = _rate(build_tagger(flat(served), taxonomy=taxonomy), products, warmup)
            report[f"vllm_server_{inflight}_inflight_products_per_s"] = rate
            report[f"vllm_server_{inflight}_inflight_tagged"] = tagged
            report["server_peak_rss_mb"] = _tree_peak_rss_mb(server.process.pid)
            save()
    finally:
        server.stop()
    for key, value in report.items():
        print(f"  {key:48s} {value:.3f}" if isinstance(value, float) else f"  {key:48s} {value}")


if __name__ == "__main__":
    main()
