"""Which texts to embed for nearest-path retrieval: query texts x category texts, on three dev sets, Shopify's taxonomy.

For every pair of a query text (`tagger.retrieval.texts.QUERY_TEXTS`: title; title + brand; title + fields; title + the
description's first sentence; title + description[:250 | 500 | 1000]) and a category text (`CATEGORY_TEXTS`: full path;
leaf; parent > leaf; the last 3 levels; leaf: path; path (attribute names)), the category is the nearest one by MiniLM
cosine, scored as the evals score it (category_exact, category_depth_1, category_hf1; Flipkart, WDC-PAVE and OA-Mine dev
mapped to Shopify as evals/*-shopify.yaml map them, products cleaned as the pipeline cleans them).

Each set's sample (N rows, seeded as load_labeled draws) is split in two halves by a seeded hash of the product id: the
pair is chosen on the development half (mean exact over the sets), and reported on both; on the held-out half it is
compared with the issue's reference (title + description[:500], full path), with the default before this benchmark
(title + brand, full path) and with the evals' MiniLM baseline (title, full path), with a paired bootstrap 95% interval
of the difference (resampled within each set).

Then the confidence of a retrieved category: which raw score of the ranked list (top-1 cosine, margin top-1 minus top-2,
softmax over the top k at a temperature) separates right from wrong best (AUROC; chosen on the development half,
reported on the held-out half).

    python benchmarks/bench_category_text.py [--data-root DIR] [--n 300] [--sets flipkart,wdc-pave,oa-mine]
                                             [--out FILE]

Category vectors are cached on disk per category text (CategoryIndex's cache); the first run encodes 10,595 texts per
variant (a minute or more each on one thread).
"""

from __future__ import annotations

import argparse
import hashlib
import json
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt

from tagger.clean import Cleaner
from tagger.evals.config import default_data_root, load_config
from tagger.evals.dataset import LabeledProduct, load_labeled
from tagger.evals.metrics import compute
from tagger.evals.samples import ScoredSample, score_category
from tagger.retrieval.embeddings import CategoryIndex, Embedder
from tagger.retrieval.shortlist import CONFIDENCE_K, softmax_share
from tagger.retrieval.texts import CATEGORY_TEXTS, QUERY_TEXTS
from tagger.taxonomy import Taxonomy, load_taxonomy

ROOT = Path(__file__).resolve().parent.parent
CONFIGS = {
    "flipkart": "evals/flipkart-shopify.yaml",
    "wdc-pave": "evals/wdc-pave-shopify.yaml",
    "oa-mine": "evals/oa-mine-shopify.yaml",
}
REFERENCE = ("title+description[:500]", "path")  # the "nearest path on title + description"
BEFORE = ("title+brand", "path")  # tagger's default before this benchmark
BASELINE = ("title", "path")  # the MiniLM baseline the evals run beside the pipeline
TOP_K = CONFIDENCE_K  # the ranked list a confidence is computed from
TEMPERATURES = (0.01, 0.02, 0.05, 0.1, 0.2)
METRICS = ("category_exact", "category_depth_1", "category_hf1")
Floats = npt.NDArray[np.float64]


@dataclass
class Item:
    dataset: str
    labeled: LabeledProduct
    development: bool  # in the half the variants are chosen on


def in_development_half(product_id: str, seed: int) -> bool:
    return hashlib.sha256(f"{seed}:{product_id}".encode()).digest()[0] % 2 == 0


def load_items(sets: Sequence[str], taxonomy: Taxonomy, data_root: Path, n: int, seed: int) -> list[Item]:
    cleaner = Cleaner()
    items = []
    for name in sets:
        config = load_config(ROOT / CONFIGS[name])
        config.sample.size = n
        for row in load_labeled(config, taxonomy, data_root):
            if row.gold.category_id is None:
                continue
            cleaned = LabeledProduct(cleaner.clean(row.product).product, row.gold, row.unmapped)
            items.append(Item(name, cleaned, in_development_half(row.product.id, seed)))
    return items


@dataclass
class Outcome:
    """One (query text, category text) pair's ranked lists and scores, one entry per item."""

    ranked: list[list[tuple[str, float]]]
    scored: list[ScoredSample]

    def correct(self) -> Floats:
        return np.array([bool(s.category and s.category.exact) for s in self.scored], dtype=np.float64)

    def top_level(self) -> Floats:
        return np.array([bool(s.category and s.category.depth_hits[0]) for s in self.scored], dtype=np.float64)


def run_pair(items: Sequence[Item], queries: Any, index: CategoryIndex, taxonomy: Taxonomy) -> Outcome:
    ranked = [[(c.id, s) for c, s in row] for row in index.nearest(queries, TOP_K)]
    scored = [
        ScoredSample(i.labeled.product.id, None, True, score_category(taxonomy, row[0][0], i.labeled.gold), {})
        for i, row in zip(items, ranked, strict=True)
    ]
    return Outcome(ranked, scored)


def figures(outcome: Outcome, mask: Sequence[bool]) -> dict[str, float]:
    chosen = [s for s, keep in zip(outcome.scored, mask, strict=True) if keep]
    return {name: round(value or 0.0, 4) for name, value in compute(METRICS, chosen).items()}


def table(
    items: Sequence[Item], outcomes: dict[tuple[str, str], Outcome], sets: Sequence[str]
) -> dict[str, dict[str, Any]]:
    """Per pair: figures per set and half, and the mean over sets per half."""
    rows: dict[str, dict[str, Any]] = {}
    for (query, category), outcome in outcomes.items():
        row: dict[str, Any] = {}
        for half, development in (("development", True), ("held-out", False)):
            per_set = {
                name: figures(outcome, [i.dataset == name and i.development == development for i in items])
                for name in sets
            }
            mean = {m: round(float(np.mean([per_set[s][m] for s in sets])), 4) for m in METRICS}
            row[half] = {"mean": mean, **per_set}
        rows[f"{query} | {category}"] = row
    return rows


def paired_bootstrap(
    items: Sequence[Item], a: Floats, b: Floats, sets: Sequence[str], rounds: int, seed: int
) -> dict[str, float]:
    """Mean over sets of (a - b) on the held-out half, and its 95% interval, resampling products within each set."""
    rng = np.random.default_rng(seed)
    groups = [np.array([k for k, i in enumerate(items) if i.dataset == s and not i.development]) for s in sets]
    diff = a - b
    point = float(np.mean([diff[g].mean() for g in groups]))
    draws = np.zeros(rounds)
    for g in groups:
        picks = rng.integers(0, len(g), size=(rounds, len(g)))
        draws += diff[g][picks].mean(axis=1)
    draws /= len(groups)
    low, high = np.percentile(draws, [2.5, 97.5])
    return {"difference": round(point, 4), "low": round(float(low), 4), "high": round(float(high), 4)}


def auroc(scores: Floats, labels: Floats) -> float:
    """Probability that a right answer scores above a wrong one (ties count half): Mann-Whitney U / (n1 n0)."""
    right, wrong = scores[labels == 1], scores[labels == 0]
    if not len(right) or not len(wrong):
        return float("nan")
    greater = (right[:, None] > wrong[None, :]).sum() + 0.5 * (right[:, None] == wrong[None, :]).sum()
    return float(greater / (len(right) * len(wrong)))


def confidence_scores(ranked: Sequence[Sequence[tuple[str, float]]]) -> dict[str, Floats]:
    sims = np.array([[s for _, s in row] for row in ranked], dtype=np.float64)
    found: dict[str, Floats] = {"top1": sims[:, 0], "margin": sims[:, 0] - sims[:, 1]}
    for t in TEMPERATURES:
        found[f"softmax@{t}"] = np.array([softmax_share(list(row), t) for row in sims])
    return found


def confidence(items: Sequence[Item], outcome: Outcome, sets: Sequence[str]) -> dict[str, Any]:
    """AUROC of each score for "the retrieved category is right" (exact), pooled over the sets and per set."""
    labels = outcome.correct()
    development = np.array([i.development for i in items])
    dataset = np.array([i.dataset for i in items])
    found = {}
    for name, values in confidence_scores(outcome.ranked).items():
        found[name] = {
            "development": round(auroc(values[development], labels[development]), 4),
            "held-out": round(auroc(values[~development], labels[~development]), 4),
        }
        for s in sets:
            held = ~development & (dataset == s)
            found[name][f"held-out {s}"] = round(auroc(values[held], labels[held]), 4)
    best = max(found, key=lambda name: found[name]["development"])
    return {"auroc": found, "chosen_on_development": best, "held_out_auroc": found[best]["held-out"]}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--data-root", type=Path, default=None, help="default: $TAGGER_DATA_ROOT or ../shared/data")
    parser.add_argument("--n", type=int, default=300, help="rows drawn per dataset (before the halves)")
    parser.add_argument("--sets", default=",".join(CONFIGS))
    parser.add_argument("--seed", type=int, default=0, help="the split of each set into halves")
    parser.add_argument("--bootstrap", type=int, default=5000)
    parser.add_argument("--out", type=Path, default=None, help="write every figure as JSON")
    args = parser.parse_args()
    sets = args.sets.split(",")
    data_root = args.data_root or default_data_root()

    taxonomy = load_taxonomy("shopify")
    embedder = Embedder()
    items = load_items(sets, taxonomy, data_root, args.n, args.seed)
    counts = {
        s: {h: sum(i.dataset == s and i.development == d for i in items) for h, d in (("dev", True), ("held", False))}
        for s in sets
    }
    print(f"products per set and half: {counts}", flush=True)
    products = [i.labeled.product for i in items]
    query_vectors: dict[str, Any] = {}
    seconds: dict[str, float] = {}
    for name, text in QUERY_TEXTS.items():
        start = time.perf_counter()
        query_vectors[name] = embedder.encode([text(p) for p in products])
        seconds[f"query {name}"] = round(time.perf_counter() - start, 1)
    outcomes: dict[tuple[str, str], Outcome] = {}
    for category_name, category_text in CATEGORY_TEXTS.items():
        start = time.perf_counter()
        index = CategoryIndex(taxonomy, embedder, category_text)  # from the disk cache after the first run
        seconds[f"index {category_name}"] = round(time.perf_counter() - start, 1)
        print(f"category text {category_name!r}: index in {seconds[f'index {category_name}']} s", flush=True)
        for query_name in QUERY_TEXTS:
            outcomes[query_name, category_name] = run_pair(items, query_vectors[query_name], index, taxonomy)

    rows = table(items, outcomes, sets)
    chosen = max(
        outcomes,
        key=lambda pair: (
            rows[" | ".join(pair)]["development"]["mean"]["category_exact"],
            rows[" | ".join(pair)]["development"]["mean"]["category_depth_1"],
        ),
    )
    comparisons = {}
    for against in (REFERENCE, BEFORE, BASELINE):
        for measure in ("correct", "top_level"):
            a, b = getattr(outcomes[chosen], measure)(), getattr(outcomes[against], measure)()
            key = f"{' | '.join(chosen)} minus {' | '.join(against)}: {measure}"
            comparisons[key] = paired_bootstrap(items, a, b, sets, args.bootstrap, args.seed)
    report = {
        "n_per_set": args.n,
        "products": counts,
        "chosen_on_development": " | ".join(chosen),
        "comparisons_held_out": comparisons,
        "confidence": {" | ".join(p): confidence(items, outcomes[p], sets) for p in dict.fromkeys([chosen, BEFORE])},
        "seconds": seconds,
        "table": rows,
    }
    print_report(report, sets)
    if args.out:
        args.out.write_text(json.dumps(report, indent=2))


def print_report(report: dict[str, Any], sets: Sequence[str]) -> None:
    print(
        "\n| query | category | dev: exact / top | held-out: exact / top / hF1 | "
        + " | ".join(f"held-out {s}: exact / top" for s in sets)
        + " |"
    )
    print("|---|---|---|---|" + "---|" * len(sets))
    for pair, row in report["table"].items():
        query, category = pair.split(" | ")
        dev, held = row["development"]["mean"], row["held-out"]["mean"]
        cells = [
            f"{dev['category_exact']:.3f} / {dev['category_depth_1']:.3f}",
            f"{held['category_exact']:.3f} / {held['category_depth_1']:.3f} / {held['category_hf1']:.3f}",
        ]
        cells += [
            f"{row['held-out'][s]['category_exact']:.3f} / {row['held-out'][s]['category_depth_1']:.3f}" for s in sets
        ]
        print(f"| {query} | {category} | " + " | ".join(cells) + " |")
    print(f"\nchosen on the development half: {report['chosen_on_development']}")
    for name, found in report["comparisons_held_out"].items():
        print(f"held-out, {name}: {found['difference']:+.3f} [{found['low']:+.3f}, {found['high']:+.3f}]")
    for pair, found in report["confidence"].items():
        print(
            f"confidence of {pair}: "
            + ", ".join(f"{name} {v['development']:.3f}/{v['held-out']:.3f}" for name, v in found["auroc"].items())
            + f" (AUROC dev/held-out); chosen {found['chosen_on_development']}: held-out {found['held_out_auroc']:.3f}"
        )


if __name__ == "__main__":
    main()
