"""Eval metrics, registered by name; each is a function of the scored samples, so compare can bootstrap any of them.

Definitions (also in README.md, "Metrics"):
- category_exact: share of products whose predicted category is the gold node; for gold marked `fit: coarse`, any
  prediction inside the gold node's subtree counts as exact. A product without a prediction counts as wrong.
- category_depth_<d>: among products whose gold node is at depth >= d, share whose prediction has the gold's ancestor
  at depth d (depth 1 = top level).
- category_hp / category_hr / category_hf1: hierarchical precision, recall and F1 over ancestor sets (each node
  with all its ancestors), micro-averaged: sum |P & G| / sum |P| and sum |P & G| / sum |G|. A coarse hit counts as
  exact (G := P).
- attribute_precision / _recall / _f1 (micro) and attribute_macro_f1: the WDC-PAVE / ExtractGPT protocol. For every
  (product, attribute) pair, NN, NV, VN, VC, VW as in samples.py; precision = VC / (NV + VC + VW), recall =
  VC / (VN + VC + VW); micro over all pairs, macro = mean of per-attribute F1.
- validity: share of products with a tag record (not an error record); error_rate = 1 - validity.
- conformance: share of tag records whose every value passes the independent taxonomy check (must be 1.0).
- evidence_valid: share of tag records with evidence spans whose every span is the cleaned field's text at its
  offsets (must be 1.0).
- attribute_ece / category_ece: expected calibration error of the confidences, over the written values of scored
  attributes (right: the value is one of the gold's) or the categories: values binned by confidence in 10 equal
  bins, sum over bins of |hit rate - mean confidence| weighted by the bin's share. Values without a confidence are
  left out; attribute_confidence_coverage says what share had one.
  The report adds a reliability diagram, a precision-coverage table over the confidence, and beside each ECE its
  noise: what a perfectly calibrated confidence would show on as many values at the same confidences (not a
  registered metric: a bootstrap over it would draw 200 times per resample).
- latency_p50_s / latency_p95_s, prompt_tokens / completion_tokens (mean per product), products_per_s.

Any attribute metric takes a selector after "@": `attribute_f1@color` scores only color's pairs,
`attribute_f1@-brand` every attribute but brand (a comma-separated list of either kind). A gate scores attributes
without one whose gold the input already states (the sample catalog's brand is its `brand` field).
"""

from __future__ import annotations

import dataclasses
import random
from collections import Counter
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from tagger.evals.samples import ScoredSample

Metric = Callable[[Sequence["ScoredSample"]], float | None]
METRICS: dict[str, Metric] = {}


def metric(name: str) -> Callable[[Metric], Metric]:
    def register(fn: Metric) -> Metric:
        METRICS[name] = fn
        return fn

    return register


def _share(hits: Sequence[bool]) -> float | None:
    return sum(hits) / len(hits) if hits else None


def _f1(precision: float, recall: float) -> float:
    return 2 * precision * recall / (precision + recall) if precision + recall else 0.0


def _div(a: float, b: float) -> float:
    return a / b if b else 0.0


# --- category -----------------------------------------------------------------------------------------------------


@metric("category_exact")
def category_exact(samples: Sequence[ScoredSample]) -> float | None:
    return _share([s.category.exact for s in samples if s.category is not None])


def category_depth(depth: int) -> Metric:
    def accuracy(samples: Sequence[ScoredSample]) -> float | None:
        return _share(
            [s.category.depth_hits[depth - 1] for s in samples if s.category and s.category.gold_depth >= depth]
        )

    return accuracy


for _depth in range(1, 9):
    METRICS[f"category_depth_{_depth}"] = category_depth(_depth)


def _hierarchical(samples: Sequence[ScoredSample]) -> tuple[float, float] | None:
    scored = [s.category for s in samples if s.category is not None]
    if not scored:
        return None
    overlap = sum(c.overlap for c in scored)
    return _div(overlap, sum(c.predicted_size for c in scored)), _div(overlap, sum(c.gold_size for c in scored))


@metric("category_hp")
def category_hp(samples: Sequence[ScoredSample]) -> float | None:
    pr = _hierarchical(samples)
    return pr[0] if pr else None


@metric("category_hr")
def category_hr(samples: Sequence[ScoredSample]) -> float | None:
    pr = _hierarchical(samples)
    return pr[1] if pr else None


@metric("category_hf1")
def category_hf1(samples: Sequence[ScoredSample]) -> float | None:
    pr = _hierarchical(samples)
    return _f1(*pr) if pr else None


# --- attributes ---------------------------------------------------------------------------------------------------


def attribute_counts(samples: Sequence[ScoredSample]) -> dict[str, Counter[str]]:
    """Per attribute handle: how many pairs fell in NN, NV, VN, VC, VW."""
    counts: dict[str, Counter[str]] = {}
    for sample in samples:
        for handle, verdict in sample.attributes.items():
            counts.setdefault(handle, Counter())[verdict] += 1
    return counts


def precision_recall(counts: Counter[str]) -> tuple[float, float, float]:
    precision = _div(counts["VC"], counts["NV"] + counts["VC"] + counts["VW"])
    recall = _div(counts["VC"], counts["VN"] + counts["VC"] + counts["VW"])
    return precision, recall, _f1(precision, recall)


def _micro(samples: Sequence[ScoredSample]) -> tuple[float, float, float] | None:
    per_attribute = attribute_counts(samples)
    if not per_attribute:
        return None
    return precision_recall(sum(per_attribute.values(), Counter()))


@metric("attribute_precision")
def attribute_precision(samples: Sequence[ScoredSample]) -> float | None:
    micro = _micro(samples)
    return micro[0] if micro else None


@metric("attribute_recall")
def attribute_recall(samples: Sequence[ScoredSample]) -> float | None:
    micro = _micro(samples)
    return micro[1] if micro else None


@metric("attribute_f1")
def attribute_f1(samples: Sequence[ScoredSample]) -> float | None:
    micro = _micro(samples)
    return micro[2] if micro else None


@metric("attribute_macro_f1")
def attribute_macro_f1(samples: Sequence[ScoredSample]) -> float | None:
    per_attribute = attribute_counts(samples)
    if not per_attribute:
        return None
    return sum(precision_recall(c)[2] for c in per_attribute.values()) / len(per_attribute)


# --- evidence and confidence ----------------------------------------------------------------------------------------

BINS = 10


@metric("evidence_valid")
def evidence_valid(samples: Sequence[ScoredSample]) -> float | None:
    return _share([s.evidence_valid for s in samples if s.evidence_valid is not None])


def reliability(pairs: Sequence[tuple[float, bool]], bins: int = BINS) -> list[tuple[float, float, int]]:
    """Per non-empty confidence bin: (mean confidence, hit rate, count)."""
    grouped: dict[int, list[tuple[float, bool]]] = {}
    for confidence, correct in pairs:
        grouped.setdefault(min(int(confidence * bins), bins - 1), []).append((confidence, correct))
    return [
        (sum(c for c, _ in found) / len(found), sum(r for _, r in found) / len(found), len(found))
        for _, found in sorted(grouped.items())
    ]


def expected_calibration_error(pairs: Sequence[tuple[float, bool]]) -> float | None:
    if not pairs:
        return None
    return sum(abs(hit - mean) * n for mean, hit, n in reliability(pairs)) / len(pairs)


def calibration_noise(pairs: Sequence[tuple[float, bool]], draws: int = 200, seed: int = 0) -> float | None:
    """The ECE that a perfectly calibrated confidence shows on these values by chance: the mean ECE over `draws`
    draws in which each value is right with its confidence's probability. An ECE near it is sampling noise (on 100
    values it is several points), one far above it a miscalibration."""
    if not pairs:
        return None
    rng = random.Random(seed)
    confidences = [c for c, _ in pairs]
    total = 0.0
    for _ in range(draws):
        total += expected_calibration_error([(c, rng.random() < c) for c in confidences]) or 0.0
    return total / draws


def value_confidences(samples: Sequence[ScoredSample]) -> list[tuple[float, bool]]:
    return [(v["confidence"], v["correct"]) for s in samples for v in s.values if v["confidence"] is not None]


def category_confidences(samples: Sequence[ScoredSample]) -> list[tuple[float, bool]]:
    return [
        (s.category_confidence, s.category.exact)
        for s in samples
        if s.category is not None and s.category_confidence is not None
    ]


@metric("attribute_ece")
def attribute_ece(samples: Sequence[ScoredSample]) -> float | None:
    return expected_calibration_error(value_confidences(samples))


@metric("category_ece")
def category_ece(samples: Sequence[ScoredSample]) -> float | None:
    return expected_calibration_error(category_confidences(samples))


@metric("attribute_confidence_coverage")
def attribute_confidence_coverage(samples: Sequence[ScoredSample]) -> float | None:
    return _share([v["confidence"] is not None for s in samples for v in s.values])


def precision_coverage(
    pairs: Sequence[tuple[float, bool]], thresholds: Sequence[float]
) -> list[tuple[float, float, float | None]]:
    """Per threshold: (threshold, share of values kept at confidence >= threshold, precision of those kept)."""
    rows = []
    for threshold in thresholds:
        kept = [correct for confidence, correct in pairs if confidence >= threshold]
        rows.append((threshold, _div(len(kept), len(pairs)), _share(kept)))
    return rows


# --- validity and cost --------------------------------------------------------------------------------------------


@metric("validity")
def validity(samples: Sequence[ScoredSample]) -> float | None:
    return _share([s.error is None for s in samples])


@metric("error_rate")
def error_rate(samples: Sequence[ScoredSample]) -> float | None:
    return _share([s.error is not None for s in samples])


@metric("conformance")
def conformance(samples: Sequence[ScoredSample]) -> float | None:
    return _share([s.conforms for s in samples if s.error is None])


def percentile(values: Sequence[float], q: float) -> float | None:
    """The nearest-rank q-quantile (0 <= q <= 1), None for no values."""
    if not values:
        return None
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(q * (len(ordered) - 1)))]


@metric("latency_p50_s")
def latency_p50(samples: Sequence[ScoredSample]) -> float | None:
    return percentile([s.seconds for s in samples], 0.5)


@metric("latency_p95_s")
def latency_p95(samples: Sequence[ScoredSample]) -> float | None:
    return percentile([s.seconds for s in samples], 0.95)


@metric("prompt_tokens")
def prompt_tokens(samples: Sequence[ScoredSample]) -> float | None:
    return sum(s.prompt_tokens for s in samples) / len(samples) if samples else None


@metric("completion_tokens")
def completion_tokens(samples: Sequence[ScoredSample]) -> float | None:
    return sum(s.completion_tokens for s in samples) / len(samples) if samples else None


@metric("products_per_s")
def products_per_s(samples: Sequence[ScoredSample]) -> float | None:
    seconds = sum(s.seconds for s in samples)
    return len(samples) / seconds if seconds else None


# Metrics where lower is better: the gate and compare read them the other way round.
LOWER_IS_BETTER = {
    "attribute_ece",
    "category_ece",
    "error_rate",
    "latency_p50_s",
    "latency_p95_s",
    "prompt_tokens",
    "completion_tokens",
}


def _selected(fn: Metric, selector: str) -> Metric:
    handles = [h.strip() for h in selector.split(",") if h.strip()]
    excluded = {h[1:] for h in handles if h.startswith("-")}
    included = {h for h in handles if not h.startswith("-")}
    if not handles or (excluded and included):
        raise KeyError(f"attribute selector {selector!r}: list handles to keep, or handles to drop as -handle")

    def keep(handle: str) -> bool:
        return handle in included if included else handle not in excluded

    def scored(samples: Sequence[ScoredSample]) -> float | None:
        picked = [
            dataclasses.replace(
                s,
                attributes={h: v for h, v in s.attributes.items() if keep(h)},
                values=[v for v in s.values if keep(v["attribute"])],
            )
            for s in samples
        ]
        return fn(picked)

    return scored


def resolve(name: str) -> Metric:
    """The metric a name stands for: a registered one, or an attribute metric with a selector (`name@selector`)."""
    base, sep, selector = name.partition("@")
    if base not in METRICS or (sep and not base.startswith("attribute_")):
        raise KeyError(f"unknown metric {name!r}; known: {sorted(METRICS)} (attribute_*@HANDLES for some attributes)")
    return _selected(METRICS[base], selector) if sep else METRICS[base]


def compute(names: Sequence[str], samples: Sequence[ScoredSample]) -> dict[str, float | None]:
    unknown = []
    for name in names:
        try:
            resolve(name)
        except KeyError:
            unknown.append(name)
    if unknown:
        raise KeyError(f"unknown metrics {unknown}; known: {sorted(METRICS)} (attribute_*@HANDLES for some attributes)")
    return {name: resolve(name)(samples) for name in names}
