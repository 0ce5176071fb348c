"""Calibrated confidence: the probability that a value (or a category) is right, from what was measured about it.

Every value has a kind (where it came from, who settled it, where the text states it) and a score (the model's
probability of choosing it, the pool's precision for the pattern that found it, or none for a name the text states
with no rival). A calibration maps (kind, score) to the share of such values that were right on labeled dev sets:
per kind, isotonic regression over the score, or the kind's hit rate where it has no score (`tagger.calibrate.fit`,
the `tagger calibrate` command). tagger ships one fitted on its dev sets (default.json); a catalog's own reviewed
gold fits a better one.
"""

from __future__ import annotations

import hashlib
import zlib
from bisect import bisect_left
from functools import cache
from importlib import resources
from pathlib import Path

from pydantic import BaseModel, Field

from tagger.errors import TaggerError
from tagger.records import CategoryRef, Evidence, TagRecord

DEFAULT = "default"
FOLDS = 5  # cross-fitting on a catalog's own pool: a pool product is judged by what was fitted without its fold


def fold_of(product_id: str) -> int:
    """A product's fold, stable across runs and machines."""
    return zlib.crc32(product_id.encode()) % FOLDS


class Curve(BaseModel):
    """One kind's calibration: its hit rate, and, where its values have scores, the isotonic steps over the score."""

    n: int  # values of this kind in the fitting data
    rate: float  # their smoothed hit rate: what a value without a score gets
    bounds: list[float] = Field(default_factory=list)  # each step's highest score, increasing
    rates: list[float] = Field(default_factory=list)  # each step's smoothed hit rate, non-decreasing

    def probability(self, score: float | None) -> float:
        if score is None or not self.bounds:
            return self.rate
        return self.rates[min(bisect_left(self.bounds, score), len(self.rates) - 1)]


class Calibration(BaseModel):
    version: int = 1
    fitted_on: list[str] = Field(default_factory=list)  # the eval runs it was fitted on
    kinds: dict[str, Curve] = Field(default_factory=dict)

    @property
    def hash(self) -> str:
        return hashlib.sha256(self.model_dump_json().encode()).hexdigest()[:12]

    def probability(self, kind: str, score: float | None) -> float | None:
        """The calibrated probability, None for a kind the fitting data did not hold (nor its family's)."""
        curve = self.kinds.get(kind) or self.kinds.get(family(kind))
        return None if curve is None else round(curve.probability(score), 4)

    def apply(self, record: TagRecord) -> None:
        """Sets every confidence of the record (its values' and its category's) from their kinds and scores."""
        for evidence in record.evidence:
            if not calibrated_by_decider(evidence):
                evidence.confidence = self.probability(value_kind(evidence), evidence.score)
        category = record.category
        kind = category_kind(category)
        # A given category is the user's: nothing tagger measured, so no confidence of tagger's.
        category.confidence = None if kind == "category:given" else self.probability(kind, category.score)


def value_kind(evidence: Evidence) -> str:
    """inferred; text:span (the model copied it from the text); text:model / pool:model (the model chose it among
    rivals); judge (the pool's judge decided it); text:student (the span student marked it); pool (a pattern the
    pool measured);
    text:common (a word or amount common to every catalog, for an extractive attribute: tagger.evidence.common);
    text:title / text:description / text:field (a name the text states, with no rival)."""
    if evidence.source == "inferred":
        return "inferred"
    if evidence.decided == "judge":
        return "judge"
    if evidence.decided == "span":
        return "text:span"
    if evidence.decided == "student":
        return "text:student"
    if evidence.decided == "model":
        return f"{evidence.source}:model"
    if evidence.source == "pool":
        return "pool"
    if evidence.matched == "common":
        return "text:common"
    fields = {span.field for span in evidence.spans}
    return "text:" + ("title" if "title" in fields else "description" if "description" in fields else "field")


def calibrated_by_decider(evidence: Evidence) -> bool:
    """Whether the value's confidence was fitted on its own catalog by what decided it: the pool's judge (on the
    pool), a span student with a calibration (on the pool products held out of its training)."""
    return evidence.decided == "judge" or (evidence.decided == "student" and evidence.confidence is not None)


def category_kind(category: CategoryRef) -> str:
    """category:retrieval, category:examples, category:model or category:given."""
    return "category:" + (category.evidence.source if category.evidence else "model")


def family(kind: str) -> str:
    """The kind's fallback: every value's, or every category's."""
    return "category:*" if kind.startswith("category:") else "value:*"


def load_calibration(spec: str | Path | None) -> Calibration | None:
    """`default`: the calibration tagger ships; a path: a file `tagger calibrate` wrote; None or `off`: none."""
    if spec is None or str(spec) == "off":
        return None
    if str(spec) == DEFAULT:
        return _default()
    path = Path(spec)
    try:
        return Calibration.model_validate_json(path.read_text(encoding="utf-8"))
    except OSError as exc:
        raise TaggerError(f"calibration {path}: {exc.strerror or exc}") from None
    except ValueError as exc:
        raise TaggerError(f"calibration {path}: not a calibration file ({exc})") from None


@cache
def _default() -> Calibration:
    text = resources.files("tagger.calibrate").joinpath("default.json").read_text(encoding="utf-8")
    return Calibration.model_validate_json(text)


def hold_below(record: TagRecord, threshold: float) -> None:
    """Moves every value whose confidence is below `threshold` from the record's attributes to its warnings. A value
    whose confidence is unknown stays: nothing measured it low."""
    low = [e for e in record.evidence if e.confidence is not None and e.confidence < threshold]
    for evidence in low:
        kept = [v for v in record.attributes.get(evidence.attribute, []) if v != evidence.value]
        if kept:
            record.attributes[evidence.attribute] = kept
        else:
            record.attributes.pop(evidence.attribute, None)
        record.warnings.append(
            f"{evidence.attribute}: {evidence.value!r} held back: confidence {evidence.confidence} < {threshold}"
        )
    gone = {id(e) for e in low}
    record.evidence = [e for e in record.evidence if id(e) not in gone]


__all__ = [
    "DEFAULT",
    "FOLDS",
    "Calibration",
    "Curve",
    "category_kind",
    "fold_of",
    "hold_below",
    "load_calibration",
    "value_kind",
]
