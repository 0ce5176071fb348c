"""How well retrieval's category confidence calibrates without a catalog's own labels, and with how many of them.

The default pipeline's category is the nearest path (MiniLM, `tagger.retrieval.shortlist`), scored by its softmax share
among the ten nearest; a calibration (isotonic regression of "right" over the share, `tagger.calibrate.fit`) makes the
share a probability. Every product of three dev sets on Shopify's taxonomy (evals/*-shopify.yaml: Flipkart, OA-Mine,
WDC-PAVE), cleaned as the pipeline cleans them, scored as the evals score them (a coarse gold node counts any
category under it as right). Three ways to fit the curve, each judged by the ECE of the products it was not fitted
on, per catalog, beside the noise (the ECE a perfectly calibrated confidence shows on as many products):

- pooled: fitted on one half of all three catalogs (by a hash of the id), judged on the other half, both ways: what
  a calibration shipped with tagger, fitted on these same catalogs, gives;
- unseen catalog: fitted on the other two catalogs, judged on every product of the third: what a catalog tagger was
  not fitted on gets without labels of its own;
- own N: fitted on N labeled products of the catalog itself (5 seeded draws from one half), judged on its other half:
  what `tagger calibrate` on N reviewed products gives.

Each also with the share split by the query's text (the title alone, or title and description), a split a product
shows without labels.

    python benchmarks/bench_category_calibration.py [--data-root DIR] [--own 25,50,100,200] [--out FILE]
"""

from __future__ import annotations

import argparse
import json
import random
import zlib
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from tagger.calibrate import Curve
from tagger.calibrate.fit import fitted_curve
from tagger.clean import Cleaner
from tagger.evals.config import default_data_root, load_config
from tagger.evals.dataset import load_labeled
from tagger.evals.metrics import calibration_noise, expected_calibration_error
from tagger.evals.samples import score_category
from tagger.retrieval import Embedder, Shortlister
from tagger.taxonomy import load_taxonomy

ROOT = Path(__file__).resolve().parent.parent
SETS = ("flipkart-shopify", "oa-mine-shopify", "wdc-pave-shopify")
DRAWS = 5


@dataclass(frozen=True)
class Item:
    catalog: str
    id: str
    share: float  # the nearest path's softmax share among the ten nearest
    titled_only: bool  # the query held the title alone (no description)
    right: bool  # as the evals score it

    @property
    def half(self) -> int:
        return zlib.crc32(self.id.encode()) % 2


Split = Callable[[Item], object]
SPLITS: dict[str, Split] = {"share": lambda item: None, "share by query text": lambda item: item.titled_only}


def load_items(data_root: Path) -> list[Item]:
    cleaner, embedder, items = Cleaner(), Embedder(), []
    for name in SETS:
        config = load_config(ROOT / "evals" / f"{name}.yaml")
        taxonomy = load_taxonomy(config.taxonomy)
        rows = [row for row in load_labeled(config, taxonomy, data_root, sample=False) if row.gold.category_id]
        products = [cleaner.clean(row.product).product for row in rows]
        scored = Shortlister(taxonomy, embedder, 1).scored(products)
        for row, product, (shortlist, share) in zip(rows, products, scored, strict=True):
            score = score_category(taxonomy, shortlist[0].id, row.gold)
            right = bool(score and score.exact)
            items.append(Item(name, product.id, share, not product.description.strip(), right))
    return items


def fit(items: Sequence[Item], split: Split) -> Callable[[Item], float]:
    curves: dict[object, Curve] = {}
    for key in {split(item) for item in items}:
        curves[key] = fitted_curve([(i.share, i.right) for i in items if split(i) == key])
    everyone = fitted_curve([(i.share, i.right) for i in items])  # a group the fitting data lacks
    return lambda item: curves.get(split(item), everyone).probability(item.share)


def judged(pairs: Sequence[tuple[float, bool]]) -> dict[str, Any]:
    return {
        "products": len(pairs),
        "right": round(sum(right for _, right in pairs) / len(pairs), 3),
        "mean_confidence": round(sum(p for p, _ in pairs) / len(pairs), 3),
        "ece": expected_calibration_error(pairs),
        "noise": calibration_noise(pairs),
    }


def pooled(items: Sequence[Item], split: Split) -> dict[str, Any]:
    pairs: dict[str, list[tuple[float, bool]]] = {name: [] for name in SETS}
    for half in (0, 1):
        confidence = fit([i for i in items if i.half != half], split)
        for item in (i for i in items if i.half == half):
            pairs[item.catalog].append((confidence(item), item.right))
    return {name: judged(found) for name, found in pairs.items()}


def unseen(items: Sequence[Item], split: Split) -> dict[str, Any]:
    found = {}
    for name in SETS:
        confidence = fit([i for i in items if i.catalog != name], split)
        found[name] = judged([(confidence(i), i.right) for i in items if i.catalog == name])
    return found


def own(items: Sequence[Item], split: Split, size: int) -> dict[str, Any]:
    found = {}
    for name in SETS:
        eces = []
        for draw in range(DRAWS):
            pairs = []
            for half in (0, 1):
                pool = [i for i in items if i.catalog == name and i.half != half]
                random.Random(draw).shuffle(pool)
                confidence = fit(pool[:size], split)
                pairs += [(confidence(i), i.right) for i in items if i.catalog == name and i.half == half]
            eces.append(expected_calibration_error(pairs) or 0.0)
        found[name] = {"ece_mean": round(sum(eces) / DRAWS, 3), "ece_max": round(max(eces), 3)}
    return found


def _shown(figures: dict[str, Any]) -> str:
    if "ece" in figures:
        return f"{figures['ece']:.3f} (noise {figures['noise']:.3f})"
    return f"{figures['ece_mean']:.3f} (at most {figures['ece_max']:.3f})"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data-root", type=Path, default=None)
    parser.add_argument("--own", default="25,50,100,200", help="sizes of a catalog's own labeled products")
    parser.add_argument("--out", type=Path, default=ROOT / "benchmarks/results/category-calibration.json")
    args = parser.parse_args()
    items = load_items(args.data_root or default_data_root())
    report: dict[str, Any] = {}
    for label, split in SPLITS.items():
        report[label] = {"pooled": pooled(items, split), "unseen catalog": unseen(items, split)}
        for size in (int(s) for s in args.own.split(",")):
            report[label][f"own {size}"] = own(items, split, size)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(report, indent=2) + "\n", encoding="utf-8")
    for label, protocols in report.items():
        for protocol, catalogs in protocols.items():
            cells = [f"{name.split('-')[0]} {_shown(figures)}" for name, figures in catalogs.items()]
            print(f"{label:20} {protocol:15} " + "  ".join(cells))


if __name__ == "__main__":
    main()
