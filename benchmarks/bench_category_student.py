"""The category student (tagger.train.category) against the k-NN vote, on the same held-apart split.

Per dev set (Flipkart, WDC-PAVE, OA-Mine, gold categories mapped to Shopify's taxonomy as the `*-shopify` evals map
them): a seeded hash of the product id puts half of the rows in the pool and half in the test; both arms see only
the pool. Reported: category exact on the test half for the 3-NN vote (what `--examples` does), the 1-NN, and the
student; with a paired bootstrap interval of student minus vote. No model call: the figures do not depend on load.

    python benchmarks/bench_category_student.py [--data-root ../shared/data] [--n 0 (all rows)]
"""

from __future__ import annotations

import argparse
import hashlib
import random
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from tagger.clean import Cleaner  # noqa: E402
from tagger.evals.config import default_data_root, load_config  # noqa: E402
from tagger.evals.dataset import load_labeled  # noqa: E402
from tagger.retrieval import Embedder, ExamplePool, PoolItem  # noqa: E402
from tagger.retrieval.examples import example_text, vote  # noqa: E402
from tagger.taxonomy import load_taxonomy  # noqa: E402
from tagger.train.category import CategoryStudent  # noqa: E402

SETS = {"flipkart": "flipkart-shopify", "wdc-pave": "wdc-pave-shopify", "oa-mine": "oa-mine-shopify"}


def _in_pool(product_id: str) -> bool:
    return hashlib.sha256(product_id.encode()).digest()[0] % 2 == 0


def _interval(hits_a: list[bool], hits_b: list[bool], resamples: int = 2000) -> tuple[float, float]:
    rng = random.Random(0)
    n = len(hits_a)
    deltas = []
    for _ in range(resamples):
        picks = [rng.randrange(n) for _ in range(n)]
        deltas.append(sum(hits_a[i] - hits_b[i] for i in picks) / n)
    deltas.sort()
    return deltas[int(0.025 * resamples)], deltas[int(0.975 * resamples)]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data-root", type=Path, default=default_data_root())
    parser.add_argument("--n", type=int, default=0, help="rows per dev set (0: all)")
    args = parser.parse_args()
    embedder, cleaner = Embedder(), Cleaner()
    print("| dev set | pool / test | 3-NN vote | 1-NN | student | student - vote [95%] |")
    print("|---|---|---|---|---|---|")
    for name, config_name in SETS.items():
        config = load_config(ROOT / "evals" / f"{config_name}.yaml")
        taxonomy = load_taxonomy(config.resolve(config.taxonomy, args.data_root) if config.taxonomy else None)
        rows = [r for r in load_labeled(config, taxonomy, args.data_root, sample=False) if r.gold.category_id]
        rows = rows[: args.n] if args.n else rows
        pool = [
            PoolItem(r.product, taxonomy.categories[r.gold.category_id or ""], {})
            for r in rows
            if _in_pool(r.product.id)
        ]
        test = [r for r in rows if not _in_pool(r.product.id)]
        products = [cleaner.clean(r.product).product for r in test]
        gold = [r.gold.category_id for r in test]
        three, one = ExamplePool(pool, embedder, 3), ExamplePool(pool, embedder, 1)
        vote_hits = [vote(s).id == g if s else False for s, g in zip(three.nearest(products), gold, strict=True)]
        one_hits = [s[0].category.id == g if s else False for s, g in zip(one.nearest(products), gold, strict=True)]
        vectors = embedder.encode([example_text(cleaner.clean(p.product).product) for p in pool])
        student = CategoryStudent.fit(vectors, [p.category.id for p in pool])
        guesses = student.predict(embedder.encode([example_text(p) for p in products]))
        student_hits = [c == g for (c, _), g in zip(guesses, gold, strict=True)]
        low, high = _interval([bool(h) for h in student_hits], [bool(h) for h in vote_hits])
        share = lambda hits: sum(hits) / len(hits)  # noqa: E731
        print(
            f"| {name} | {len(pool)} / {len(test)} | {share(vote_hits):.3f} | {share(one_hits):.3f} | "
            f"{share(student_hits):.3f} | {share(student_hits) - share(vote_hits):+.3f} [{low:+.3f}, {high:+.3f}] |"
        )


if __name__ == "__main__":
    main()
