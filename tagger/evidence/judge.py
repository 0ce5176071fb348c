"""The catalog's judge of candidates: the probability that each candidate value is right, learned from the labeled
pool, which then chooses among rivals and holds back what is more likely wrong than worth writing.

Every pool product is matched as if it were not in the pool (the matcher leaves a product's own row out), and each
candidate it gets is labeled right or wrong by the product's own labels. Gradient-boosted trees over a few features of
the candidate (where it stands, what found it, the pool's precision for that pattern, its rivals) are fitted on those.
Products of the pool are judged by a model fitted without their fold (cross-fitting), so no product's own labels ever
decide its values; others by the model fitted on the whole pool. The probability is the value's confidence: fitted on
this catalog, it needs no calibration from other catalogs. A value is written when its probability reaches the
threshold that maximizes F1 on the pool's own products.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from functools import cache
from typing import Any

import numpy as np
import numpy.typing as npt

from tagger._threads import cap_threads
from tagger.calibrate import FOLDS, Curve, fold_of
from tagger.calibrate.fit import fitted_curve
from tagger.evidence.matcher import EvidenceMatcher
from tagger.evidence.pool import PoolLexicon
from tagger.evidence.segments import with_segments
from tagger.evidence.text import key
from tagger.product import Product
from tagger.records import Evidence
from tagger.taxonomy import Attribute, Category

MIN_ROWS = 50  # candidates with labels below which no judge is fitted: the matcher's own order stands
MIN_EACH = 10  # and of each outcome (right, wrong)
# Small, shallow and fixed, not tuned per pool: trees of depth 3 let a feature count differently by attribute and by
# what found the candidate (a title's first words are OA-Mine's brand, not its flavor), which a logistic regression
# over the same features could not (README, "The pool's judge": F1 0.647 against 0.694 on Flipkart's 100).
TREES = {"max_iter": 200, "learning_rate": 0.05, "max_depth": 3, "min_samples_leaf": 20, "l2_regularization": 1.0}
THRESHOLDS = tuple(round(0.05 * i, 2) for i in range(13))  # 0.00 .. 0.60: above F1/2 a value always pays its way

Vector = npt.NDArray[np.float64]


@dataclass(frozen=True)
class _Row:
    product: int  # index of the pool product
    attribute: str
    matched: str | None
    features: list[float]
    right: bool


MATCHED = ("name", "field", "dictionary", "rule", "shape", "common", "segment")


Prior = Callable[[str, "str | None"], float]


def features(
    offered: dict[str, list[Evidence]], attribute: Attribute, index: int, product: Product, prior: Prior
) -> list[float]:
    """The `index`th of the attribute's candidates among every attribute's candidates for the product (`offered`,
    best first, as the matcher ranks them); `prior(handle, matched)`: the pool's share of right candidates for the
    attribute (and what found them)."""
    found = offered[attribute.handle]
    evidence = found[index]
    span = evidence.spans[0] if evidence.spans else None
    field = span.field if span else ""
    length = len(product.title if field == "title" else product.description if field == "description" else "") or 1
    rivals = len({e.value for e in found}) - 1
    return [
        *(float(evidence.matched == m) for m in MATCHED),
        float(field == "title"),
        float(field == "description"),
        evidence.score if evidence.score is not None else 0.0,
        float(evidence.score is None),
        math.log1p(len(evidence.spans)),
        float(span is not None and field == "title" and span.start == 0),
        (span.start / length) if span else 1.0,
        math.log1p(len(key(evidence.value))),
        math.log1p(rivals),
        float(index == 0),
        float(rivals > 0 and index == len(found) - 1),
        float(attribute.extractive),
        prior(attribute.handle, evidence.matched),
        prior(attribute.handle, None),
        _overlapped(evidence, offered),
    ]


def _overlapped(evidence: Evidence, offered: dict[str, list[Evidence]]) -> float:
    """Whether another attribute's candidate covers part of this one's first span: one text read two ways (a brand's
    word matched as a flavor), where at most one is right (F1 +0.001 to +0.014 on six dev samples)."""
    if not evidence.spans:
        return 0.0
    own = evidence.spans[0]
    return float(
        any(
            span.field == own.field and span.start < own.end and own.start < span.end
            for handle, found in offered.items()
            if handle != evidence.attribute
            for other in found
            for span in other.spans
        )
    )


class Priors:
    """Per attribute, and per attribute and what found the candidate, the smoothed share of candidates that were
    right in the pool."""

    def __init__(self, counts: dict[str, list[int]]) -> None:
        self.counts = counts

    @staticmethod
    def keys(handle: str, matched: str | None) -> list[str]:
        return [f"{handle}:{matched}", handle, ""]

    def of(self, handle: str, matched: str | None) -> float:
        """The share for the most specific key with data."""
        for name in self.keys(handle, matched)[0 if matched is not None else 1 :]:
            hits, seen = self.counts.get(name, (0, 0))
            if seen > 0:
                return (hits + 1) / (seen + 2)
        return 0.5

    @classmethod
    def count(cls, outcomes: Sequence[tuple[str, str | None, bool]]) -> Priors:
        counts: dict[str, list[int]] = {}
        for handle, matched, right in outcomes:
            for name in cls.keys(handle, matched):
                tally = counts.setdefault(name, [0, 0])
                tally[0] += right
                tally[1] += 1
        return cls(counts)


class _Trees:
    """scikit-learn's histogram gradient boosting: fitted on `$TAGGER_THREADS` threads when set, predicting on one."""

    def __init__(self, model: Any, rate: float) -> None:
        self.model, self.rate = model, rate

    @classmethod
    def fit(cls, x: Vector, y: Vector) -> _Trees:
        if y.min() == y.max():  # a small pool's fold can leave one outcome only: nothing to split, its rate stands
            return cls(None, float(y[0]))
        from sklearn.ensemble import HistGradientBoostingClassifier

        cap_threads()  # scikit-learn brings its own OpenMP
        # No early stopping: it would hold out a random tenth, and the fit must not depend on one.
        model = HistGradientBoostingClassifier(**TREES, early_stopping=False, random_state=0)
        return cls(model.fit(x, y), float(y.mean()))

    def probability(self, x: Vector) -> Vector:
        if self.model is None:
            return np.full(len(x), self.rate)
        with _openmp().limit(limits=1):
            result: Vector = self.model.predict_proba(x)[:, 1]
        return result


@cache
def _openmp() -> Any:
    """scikit-learn's OpenMP, for predictions on one thread: a product's few candidates gain nothing from more, and
    on a loaded machine the others spin (here 1.1 ms a call on one thread, 3.5 ms on two beside another job)."""
    from threadpoolctl import ThreadpoolController

    return ThreadpoolController().select(user_api="openmp")


@dataclass(frozen=True)
class _Model:
    """Fitted trees, their probabilities calibrated by isotonic regression over out-of-fold predictions, the
    threshold a value must reach, and the priors its features read."""

    trees: _Trees
    curve: Curve
    threshold: float
    priors: Priors

    def probability(self, x: Vector) -> list[float]:
        return [self.curve.probability(float(p)) for p in self.trees.probability(x)]


class PoolJudge:
    """Judges a product's candidates with models fitted on the pool (see the module's docstring)."""

    # In the record's provenance.strategy, hence in the cache key: records of the logistic judge ("judge") are not
    # reused as the trees'.
    name = "judge:trees"

    def __init__(self, matcher: EvidenceMatcher, models: list[_Model], whole: _Model) -> None:
        assert matcher.lexicon is not None
        self.matcher, self.lexicon = matcher, matcher.lexicon
        self.models, self.whole = models, whole

    @classmethod
    def fit(cls, matcher: EvidenceMatcher) -> PoolJudge | None:
        """The judge of the matcher's pool; None without a pool, or with too few labeled candidates to learn from."""
        lexicon = matcher.lexicon
        if lexicon is None:
            return None
        rows, golds = _rows(matcher, lexicon)
        right = sum(r.right for r in rows)
        if len(rows) < MIN_ROWS or min(right, len(rows) - right) < MIN_EACH:
            return None
        x = np.array([r.features for r in rows])
        y = np.array([float(r.right) for r in rows])
        folds = np.array([fold_of(lexicon.items[r.product].product.id) for r in rows])
        fitted = [_Trees.fit(x[folds != f], y[folds != f]) for f in range(FOLDS)]
        outside = np.empty(len(rows))  # each row's probability from the model fitted without its fold
        for fold, trees in enumerate(fitted):
            outside[folds == fold] = trees.probability(x[folds == fold])
        gold_folds = [(fold_of(lexicon.items[n].product.id), count) for n, count in golds.items()]

        def calibrated(trees: _Trees, keep: npt.NDArray[np.bool_], fold: int | None) -> _Model:
            kept = [r for r, k in zip(rows, keep, strict=True) if k]
            curve = fitted_curve(list(zip(outside[keep].tolist(), (bool(r) for r in y[keep]), strict=True)))
            chances = np.array([curve.probability(float(p)) for p in outside[keep]])
            threshold = _best_threshold(chances, kept, sum(c for f, c in gold_folds if f != fold))
            return _Model(trees, curve, threshold, Priors.count([(r.attribute, r.matched, r.right) for r in kept]))

        models = [calibrated(fitted[f], folds != f, f) for f in range(FOLDS)]
        return cls(matcher, models, calibrated(_Trees.fit(x, y), np.ones(len(rows), dtype=bool), None))

    def model_for(self, product: Product) -> _Model:
        own = self.lexicon.own_index(product)
        return self.whole if own is None else self.models[fold_of(self.lexicon.items[own].product.id)]

    def judge(
        self, product: Product, category: Category, candidates: dict[str, list[Evidence]]
    ) -> dict[str, list[Evidence]]:
        """Per attribute, the values to write: a single-valued attribute's most probable candidate, every candidate
        of a multi-valued one (the title's leading words are offered to extractive attributes with none), each kept
        when its probability reaches the threshold, marked decided by the judge with its probability as score and
        confidence."""
        model = self.model_for(product)
        candidates = with_segments(self.matcher.taxonomy, product, category, candidates)
        asked = [
            (a, candidates[a.handle])
            for a in self.matcher.taxonomy.attributes_for(category.id)
            if candidates.get(a.handle)
        ]
        if not asked:
            return {}
        # One call for the product's every candidate: the trees' fixed cost per call is most of a small one's.
        x = [
            features(candidates, attribute, i, product, model.priors.of)
            for attribute, found in asked
            for i in range(len(found))
        ]
        chances = iter(model.probability(np.array(x)))
        kept: dict[str, list[Evidence]] = {}
        for attribute, found in asked:
            probable = sorted(((next(chances), i) for i in range(len(found))), key=lambda c: -c[0])
            chosen = probable if attribute.multi else probable[:1]
            values = [_decided(found[i], chance) for chance, i in chosen if chance >= model.threshold]
            if values:
                kept[attribute.handle] = values
        return kept


def _decided(evidence: Evidence, chance: float) -> Evidence:
    probability = round(chance, 4)
    return evidence.model_copy(update={"decided": "judge", "score": probability, "confidence": probability})


def _rows(matcher: EvidenceMatcher, lexicon: PoolLexicon) -> tuple[list[_Row], dict[int, int]]:
    """Every candidate of every pool product (its own row left out by the matcher), labeled by the product's labels,
    for the attributes the product's labels speak of; and per product, how many of those have a value."""
    raw: list[tuple[int, Attribute, list[Evidence], int, bool]] = []
    golds: dict[int, int] = {}
    offered: dict[int, dict[str, list[Evidence]]] = {}
    for n, item in enumerate(lexicon.items):
        candidates = with_segments(
            matcher.taxonomy, item.product, item.category, matcher.candidates(item.product, item.category)
        )
        offered[n] = candidates
        for attribute in matcher.taxonomy.attributes_for(item.category.id):
            if attribute.handle not in item.attributes:
                continue  # not annotated: neither right nor wrong
            gold = {key(v) for v in lexicon.labels(item, attribute.handle)} - {()}
            golds[n] = golds.get(n, 0) + bool(gold)
            found = candidates.get(attribute.handle, [])
            raw += [(n, attribute, found, i, key(e.value) in gold) for i, e in enumerate(found)]
    # The priors a row sees are counted out of its fold. Left out one row at a time they would leak its outcome (the
    # share is lower exactly when the row is right), and trees learn that leak (F1 0.582 against 0.705 on OA-Mine).
    folds = [fold_of(lexicon.items[n].product.id) for n, *_ in raw]
    outcomes = [(attribute.handle, found[i].matched, right) for _, attribute, found, i, right in raw]
    priors = [Priors.count([o for o, g in zip(outcomes, folds, strict=True) if g != f]) for f in range(FOLDS)]
    rows = []
    for (n, attribute, found, i, right), fold in zip(raw, folds, strict=True):
        values = features(offered[n], attribute, i, lexicon.items[n].product, priors[fold].of)
        rows.append(_Row(n, attribute.handle, found[i].matched, values, right))
    return rows, golds


def _best_threshold(chances: Vector, rows: Sequence[_Row], golds: int) -> float:
    """The threshold that maximizes the F1 of the written values over the rows' products (per attribute, the most
    probable candidate) against their `golds` labeled values: a wrong value written costs precision, a right one
    held back recall."""
    best: dict[tuple[int, str], tuple[float, bool]] = {}
    for row, chance in zip(rows, chances, strict=True):
        spot = (row.product, row.attribute)
        if spot not in best or chance > best[spot][0]:
            best[spot] = (float(chance), row.right)
    scores = []
    for threshold in THRESHOLDS:
        written = [right for chance, right in best.values() if chance >= threshold]
        hits = sum(written)
        precision = hits / len(written) if written else 0.0
        recall = hits / golds if golds else 0.0
        scores.append((2 * precision * recall / (precision + recall) if hits else 0.0, -threshold))
    return -max(scores)[1]
