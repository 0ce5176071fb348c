"""Compare two runs on the same sample: metric deltas with paired bootstrap confidence intervals, and the products
whose verdict changed."""

from __future__ import annotations

import random
from collections.abc import Sequence
from dataclasses import dataclass

from tagger.evals.metrics import resolve
from tagger.evals.samples import ScoredSample


@dataclass(frozen=True)
class MetricDelta:
    name: str
    a: float | None
    b: float | None
    delta: float | None
    low: float | None  # 95% paired bootstrap interval of b - a
    high: float | None


@dataclass(frozen=True)
class Change:
    id: str
    change: str  # "fixed" or "broken"
    what: str


@dataclass(frozen=True)
class MetricNoise:
    """One run's metric and how far resampling its products moves it: the noise a gate's tolerance must allow."""

    name: str
    value: float | None
    low: float | None  # 2.5th percentile of the bootstrap distribution
    high: float | None  # 97.5th percentile
    drop: float | None  # value minus the 5th percentile: a one-sided 95% bound on a drop that is only noise


def _percentile(ordered: Sequence[float], q: float) -> float | None:
    return ordered[int(q * (len(ordered) - 1))] if ordered else None


def _draws(n: int, rounds: int, seed: int) -> list[list[int]]:
    rng = random.Random(seed)
    return [[rng.randrange(n) for _ in range(n)] for _ in range(rounds)]


def metric_noise(
    samples: Sequence[ScoredSample], names: Sequence[str], rounds: int = 1000, seed: int = 0
) -> list[MetricNoise]:
    """Per metric, the bootstrap over products of one run (1,000 resamples with replacement by default)."""
    draws = _draws(len(samples), rounds, seed) if samples else []
    out = []
    for name in names:
        fn = resolve(name)
        value = fn(samples)
        boot = sorted(v for v in (fn([samples[i] for i in draw]) for draw in draws) if v is not None)
        if value is None or not boot:
            out.append(MetricNoise(name, value, None, None, None))
            continue
        fifth = _percentile(boot, 0.05)
        drop = None if fifth is None else value - fifth
        out.append(MetricNoise(name, value, _percentile(boot, 0.025), _percentile(boot, 0.975), drop))
    return out


def _pair(a: Sequence[ScoredSample], b: Sequence[ScoredSample]) -> tuple[list[ScoredSample], list[ScoredSample]]:
    by_id = {s.id: s for s in b}
    common = [s for s in a if s.id in by_id]
    if not common:
        raise ValueError("the two runs share no product ids")
    return common, [by_id[s.id] for s in common]


def compare_metrics(
    a: Sequence[ScoredSample], b: Sequence[ScoredSample], names: Sequence[str], rounds: int = 1000, seed: int = 0
) -> list[MetricDelta]:
    left, right = _pair(a, b)
    draws = _draws(len(left), rounds, seed)
    deltas = []
    for name in names:
        fn = resolve(name)
        va, vb = fn(left), fn(right)
        if va is None or vb is None:
            deltas.append(MetricDelta(name, va, vb, None, None, None))
            continue
        boot = []
        for draw in draws:
            ra, rb = fn([left[i] for i in draw]), fn([right[i] for i in draw])
            if ra is not None and rb is not None:
                boot.append(rb - ra)
        boot.sort()
        low, high = _percentile(boot, 0.025), _percentile(boot, 0.975)
        deltas.append(MetricDelta(name, va, vb, vb - va, low, high))
    return deltas


def changed_products(a: Sequence[ScoredSample], b: Sequence[ScoredSample]) -> list[Change]:
    """Products whose category verdict flipped, or whose count of correct attribute values moved."""
    changes = []
    for left, right in zip(*_pair(a, b), strict=True):
        if left.category and right.category and left.category.exact != right.category.exact:
            what = f"category {left.predicted_category} -> {right.predicted_category}"
            changes.append(Change(left.id, "fixed" if right.category.exact else "broken", what))
        hits_a = sum(v == "VC" for v in left.attributes.values())
        hits_b = sum(v == "VC" for v in right.attributes.values())
        if hits_a != hits_b:
            changes.append(
                Change(left.id, "fixed" if hits_b > hits_a else "broken", f"correct attributes {hits_a} -> {hits_b}")
            )
    return changes
