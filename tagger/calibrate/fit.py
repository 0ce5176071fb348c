"""Fitting a calibration on scored eval samples: per kind, isotonic regression of "right" over the score.

Isotonic regression by pool-adjacent violators: the values of a kind sorted by score, adjacent blocks merged while a
block's hit rate is below the one before it, and blocks smaller than MIN_BLOCK merged into a neighbour, so that no
step rests on a handful of values. Rates are smoothed (hits + 1) / (n + 2): a step of 20 right values says 0.95,
not a certainty. A kind with fewer than MIN_KIND values is left to its family's curve.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

from tagger.calibrate import Calibration, Curve, family

if TYPE_CHECKING:
    from tagger.evals.samples import ScoredSample

MIN_BLOCK = 10
MIN_KIND = 20


@dataclass(frozen=True)
class Observation:
    kind: str
    score: float | None
    correct: bool


def _smoothed(hits: float, n: int) -> float:
    return (hits + 1) / (n + 2)


def isotonic(points: Sequence[tuple[float, bool]]) -> tuple[list[float], list[float]]:
    """The steps (highest score of each block, smoothed hit rate) of `(score, correct)` points."""
    blocks: list[list[float]] = []  # [hits, n, highest score]
    ties: dict[float, list[float]] = {}  # points of one score start as one block: a step never splits a score
    for score, correct in points:
        ties.setdefault(score, [0.0, 0, score])
        ties[score][0] += correct
        ties[score][1] += 1
    for _, block in sorted(ties.items()):
        blocks.append(list(block))
        while len(blocks) > 1 and blocks[-2][0] / blocks[-2][1] >= blocks[-1][0] / blocks[-1][1]:
            _merge_last(blocks)
    merged: list[list[float]] = []
    for block in blocks:  # small blocks join the block before them (the first joins the next)
        if merged and (block[1] < MIN_BLOCK or merged[-1][1] < MIN_BLOCK):
            merged[-1] = [merged[-1][0] + block[0], merged[-1][1] + block[1], block[2]]
        else:
            merged.append(block)
    return [b[2] for b in merged], [round(_smoothed(b[0], int(b[1])), 4) for b in merged]


def _merge_last(blocks: list[list[float]]) -> None:
    last = blocks.pop()
    blocks[-1] = [blocks[-1][0] + last[0], blocks[-1][1] + last[1], last[2]]


def fitted_curve(points: Sequence[tuple[float, bool]]) -> Curve:
    """The curve of a catalog's own `(score, right)` points (the pool's judge, the examples' vote): isotonic over all
    of them, and their plain hit rate (0.5 with none) where no step applies."""
    rate = sum(right for _, right in points) / len(points) if points else 0.5
    bounds, rates = isotonic(points) if points else ([], [])
    return Curve(n=len(points), rate=rate, bounds=bounds, rates=rates)


def curve(observations: Sequence[Observation]) -> Curve:
    hits = sum(o.correct for o in observations)
    scored = [(o.score, o.correct) for o in observations if o.score is not None]
    bounds, rates = isotonic(scored) if len(scored) >= MIN_BLOCK and len(scored) == len(observations) else ([], [])
    return Curve(n=len(observations), rate=round(_smoothed(hits, len(observations)), 4), bounds=bounds, rates=rates)


def fit(observations: Iterable[Observation], fitted_on: Sequence[str] = ()) -> Calibration:
    """A calibration of every kind with at least MIN_KIND observations, and of each family (all values; all
    categories) for the kinds left out."""
    by_kind: dict[str, list[Observation]] = defaultdict(list)
    for observation in observations:
        by_kind[observation.kind].append(observation)
        by_kind[family(observation.kind)].append(Observation(family(observation.kind), None, observation.correct))
    kinds = {kind: curve(found) for kind, found in sorted(by_kind.items()) if len(found) >= MIN_KIND}
    return Calibration(fitted_on=list(fitted_on), kinds=kinds)


def observations(samples: Sequence[ScoredSample]) -> list[Observation]:
    """Each scored sample's values (of attributes the gold scores) and its category, with their kinds and scores."""
    # The pool's judge calibrates its own values on its catalog's pool: they are not refitted here.
    found = [
        Observation(v["kind"], v["score"], v["correct"]) for s in samples for v in s.values if v["kind"] != "judge"
    ]
    # A given category is the user's (in an eval, the gold): nothing tagger measured, nothing to calibrate.
    found += [
        Observation(s.category_kind, s.category_score, s.category.exact)
        for s in samples
        if s.category is not None and s.category_kind not in (None, "category:given")
    ]
    return found
