"""The lexical baseline's attribute P/R/F1 (the eval protocol: tagger.evals.samples + metrics) and its speed.

Sets: the sample catalog (default taxonomy, no pool); WDC-PAVE and OA-Mine dev, each eval's seeded sample tagged
with a pool of the other dev rows (no sampled product is in it; WDC-PAVE's dev rows are 1,066 distinct products,
one cluster each) and with no pool; Flipkart dev on Shopify's taxonomy (its 4 closed
attributes), with and without a pool; and with the pool, the pool's judge deciding (its arm "judge"). The category is
the gold one, as in the attribute extraction evals.

    python benchmarks/bench_lexical.py [--data-root DIR] [--sets smoke,wdc-pave,oa-mine,flipkart] [--limit N]
                                      [--out FILE]
"""

from __future__ import annotations

import argparse
import json
import resource
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from tagger.evals.config import default_data_root, load_config
from tagger.evals.conformance import Reference, read_reference
from tagger.evals.dataset import LabeledProduct, load_labeled
from tagger.evals.metrics import attribute_counts, precision_recall
from tagger.evals.samples import ScoredSample, score
from tagger.evidence import LexicalTagger, PoolLexicon, PoolSettings
from tagger.evidence.judge import PoolJudge
from tagger.product import Product
from tagger.records import Evidence, Record
from tagger.retrieval.examples import PoolItem
from tagger.taxonomy import Category, Taxonomy, load_taxonomy

ROOT = Path(__file__).resolve().parent.parent
CONFIGS = {
    "smoke": "evals/smoke.yaml",
    "wdc-pave": "evals/wdc-pave.yaml",
    "oa-mine": "evals/oa-mine.yaml",
    "flipkart": "evals/flipkart-shopify.yaml",
}


def scores(samples: Sequence[ScoredSample], without: str | None = None) -> dict[str, float]:
    kept = [
        ScoredSample(s.id, s.error, s.conforms, s.category, {h: v for h, v in s.attributes.items() if h != without})
        for s in samples
    ]
    counts = attribute_counts(kept)
    total = sum(counts.values(), start=type(next(iter(counts.values())))()) if counts else None
    p, r, f1 = precision_recall(total) if total is not None else (0.0, 0.0, 0.0)
    macro = sum(precision_recall(c)[2] for c in counts.values()) / len(counts) if counts else 0.0
    return {"P": round(p, 3), "R": round(r, 3), "F1": round(f1, 3), "macro_F1": round(macro, 3)}


def pool_of(rows: Sequence[LabeledProduct], taxonomy: Taxonomy, excluded: set[str]) -> list[PoolItem]:
    return [
        PoolItem(r.product, taxonomy.categories[r.gold.category_id], r.gold.attributes)
        for r in rows
        if r.gold.category_id is not None and r.product.id not in excluded
    ]


class JudgedTagger(LexicalTagger):
    """String matching with the pool's judge deciding (tagger.evidence.judge), as the pipeline does with a pool, but
    with no model loaded: the judge's arm beside the lexical one."""

    def __init__(self, taxonomy: Taxonomy, lexicon: PoolLexicon) -> None:
        super().__init__(taxonomy, lexicon)
        self.judge = PoolJudge.fit(self.matcher)

    def candidates(self, product: Product, category: Category) -> dict[str, list[Evidence]]:
        found = self.matcher.candidates(product, category)
        return found if self.judge is None else self.judge.judge(product, category, found)


def run(
    tagger: LexicalTagger, sample: Sequence[LabeledProduct], taxonomy: Taxonomy, reference: Reference
) -> dict[str, Any]:
    scored = [s for s in sample if s.gold.category_id is not None]
    categories = [taxonomy.categories[s.gold.category_id] for s in scored if s.gold.category_id is not None]
    start = time.perf_counter()
    records: list[Record] = tagger.tag_batch([s.product for s in scored], categories)
    seconds = time.perf_counter() - start
    samples = [score(r, s.gold, taxonomy, s.product, reference) for r, s in zip(records, scored, strict=True)]
    return {
        "n": len(samples),
        "all": scores(samples),
        "without_brand": scores(samples, "brand"),
        "conformance": round(sum(s.conforms for s in samples) / len(samples), 3),
        "products_per_s": round(len(samples) / seconds, 1),
    }


def bench_set(name: str, data_root: Path, settings: PoolSettings, limit: int | None) -> dict[str, Any]:
    config = load_config(ROOT / CONFIGS[name])
    taxonomy = load_taxonomy(config.resolve(config.taxonomy, data_root) if config.taxonomy else None)
    sample = load_labeled(config, taxonomy, data_root, limit)
    reference = read_reference(config.resolve(config.taxonomy, data_root) if config.taxonomy else None)
    result: dict[str, Any] = {"no_pool": run(LexicalTagger(taxonomy), sample, taxonomy, reference)}
    if name == "smoke":
        return result
    rows = load_labeled(config, taxonomy, data_root, sample=False)
    excluded = {s.product.id for s in sample}
    pool = pool_of(rows, taxonomy, excluded)
    start = time.perf_counter()
    lexicon = PoolLexicon(taxonomy, pool, settings)
    built = time.perf_counter() - start
    result["pool"] = run(LexicalTagger(taxonomy, lexicon), sample, taxonomy, reference)
    result["pool"].update(pool_size=len(pool), pool_build_s=round(built, 2))
    start = time.perf_counter()
    judged = JudgedTagger(taxonomy, lexicon)
    fitted = time.perf_counter() - start
    result["judge"] = run(judged, sample, taxonomy, reference)
    result["judge"].update(judge_fit_s=round(fitted, 2), fitted=judged.judge is not None)
    result["peak_rss_mb"] = round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024)  # the process's, so far
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data-root", type=Path, default=None)
    parser.add_argument("--sets", default=",".join(CONFIGS))
    parser.add_argument("--limit", type=int, default=None, help="the first N of each eval's sample (as --limit)")
    parser.add_argument("--min-precision", type=float, default=PoolSettings.min_precision)
    parser.add_argument("--min-support", type=int, default=PoolSettings.min_support)
    parser.add_argument("--min-dictionary-precision", type=float, default=PoolSettings.min_dictionary_precision)
    parser.add_argument("--min-name-precision", type=float, default=PoolSettings.min_name_precision)
    parser.add_argument("--min-shape-precision", type=float, default=PoolSettings.min_shape_precision)
    parser.add_argument("--out", type=Path, default=None)
    args = parser.parse_args()
    data_root = args.data_root or default_data_root()
    settings = PoolSettings(
        min_support=args.min_support,
        min_precision=args.min_precision,
        min_dictionary_precision=args.min_dictionary_precision,
        min_name_precision=args.min_name_precision,
        min_shape_precision=args.min_shape_precision,
    )
    results = {}
    for name in args.sets.split(","):
        results[name] = bench_set(name, data_root, settings, args.limit)
        print(name, json.dumps(results[name]), flush=True)
    if args.out:
        args.out.write_text(json.dumps(results, indent=2) + "\n", encoding="utf-8")


if __name__ == "__main__":
    main()
