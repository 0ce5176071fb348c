"""Gold labels and the scoring of one prediction against them: the per-sample verdicts every metric reads."""

from __future__ import annotations

import re
import unicodedata
from dataclasses import asdict, dataclass, field
from typing import Any

from tagger import calibrate
from tagger.evals.conformance import ConformanceError, Reference, check_record
from tagger.product import Product
from tagger.records import ErrorRecord, Record, TagRecord
from tagger.taxonomy import Taxonomy

NA = frozenset({"", "n/a", "na", "none", "null", "-"})


def normalize(value: str) -> str:
    """Compatibility-normalized, case-folded, single-spaced, without surrounding punctuation."""
    text = unicodedata.normalize("NFKC", value).casefold()
    return re.sub(r"\s+", " ", text).strip(" .,;:!?\"'()[]")


@dataclass(frozen=True)
class Gold:
    category_id: str | None = None  # a node of the eval's taxonomy
    coarse: bool = False  # any prediction inside the node's subtree is correct
    attributes: dict[str, list[str]] = field(default_factory=dict)  # every scored handle; [] = n/a


@dataclass
class CategoryScore:
    exact: bool
    gold_depth: int
    depth_hits: list[bool]  # one per depth 1..gold_depth
    overlap: int  # |ancestors(pred) & ancestors(gold)|
    predicted_size: int
    gold_size: int


@dataclass
class ScoredSample:
    id: str
    error: str | None
    conforms: bool
    category: CategoryScore | None
    attributes: dict[str, str]  # handle -> NN | NV | VN | VC | VW
    predicted_category: str | None = None
    predicted_attributes: dict[str, list[str]] = field(default_factory=dict)
    seconds: float = 0.0
    prompt_tokens: int = 0
    completion_tokens: int = 0
    nonconformity: str | None = None  # why the record failed the conformance check
    # Every written value of a scored attribute: {attribute, value, kind, score, confidence, correct} (correct: the
    # value is one of the gold's; an attribute the gold says is n/a makes it wrong), for calibration and coverage.
    values: list[dict[str, Any]] = field(default_factory=list)
    category_kind: str | None = None
    category_score: float | None = None
    category_confidence: float | None = None
    evidence_valid: bool | None = None  # every span's text is the cleaned field's at its offsets; None: no spans

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


def score_category(taxonomy: Taxonomy, predicted: str | None, gold: Gold) -> CategoryScore | None:
    if gold.category_id is None:
        return None
    gold_chain = [c.id for c in taxonomy.ancestors(gold.category_id)]
    if predicted is None or predicted not in taxonomy.categories:  # an id outside the taxonomy is wrong, not a crash
        return CategoryScore(False, len(gold_chain), [False] * len(gold_chain), 0, 0, len(gold_chain))
    chain = [c.id for c in taxonomy.ancestors(predicted)]
    if gold.coarse and gold.category_id in chain:
        # Inside a coarse gold node's subtree: the prediction is the gold.
        return CategoryScore(True, len(gold_chain), [True] * len(gold_chain), len(chain), len(chain), len(chain))
    hits = [depth < len(chain) and chain[depth] == node for depth, node in enumerate(gold_chain)]
    overlap = len(set(chain) & set(gold_chain))
    return CategoryScore(predicted == gold.category_id, len(gold_chain), hits, overlap, len(chain), len(gold_chain))


def attribute_verdict(predicted: list[str], accepted: list[str]) -> str:
    """The protocol's verdict for one pair; the prediction is the first predicted value (the protocol scores one)."""
    gold = {normalize(v) for v in accepted} - NA
    guess = normalize(predicted[0]) if predicted else ""
    if guess in NA:
        return "VN" if gold else "NN"
    if not gold:
        return "NV"
    return "VC" if guess in gold else "VW"


def value_scores(record: TagRecord, gold: Gold) -> list[dict[str, Any]]:
    """Each value of an attribute the gold scores, with its kind, score, confidence and whether it is right."""
    scored = []
    for evidence in record.evidence:
        accepted = gold.attributes.get(evidence.attribute)
        if accepted is None:
            continue
        right = normalize(evidence.value) in {normalize(v) for v in accepted} - NA
        scored.append(
            {
                "attribute": evidence.attribute,
                "value": evidence.value,
                "kind": calibrate.value_kind(evidence),
                "score": evidence.score,
                "confidence": evidence.confidence,
                "correct": right,
            }
        )
    return scored


def spans_hold(record: TagRecord, cleaned: Product) -> bool | None:
    """Whether every evidence span's text is the cleaned field's text at its offsets (None: the record has none)."""
    fields = {"title": cleaned.title, "description": cleaned.description, **cleaned.fields}
    spans = [span for evidence in record.evidence for span in evidence.spans]
    if not spans:
        return None
    return all(fields.get(s.field, "")[s.start : s.end] == s.text and s.start < s.end for s in spans)


def score(
    record: Record,
    gold: Gold,
    taxonomy: Taxonomy,
    product: Product,
    reference: Reference,
    cleaned: Product | None = None,
) -> ScoredSample:
    """One record against its gold; `conforms` comes from the independent check against `reference`; the evidence
    spans are checked against `cleaned` (the product as the pipeline cleaned it) when given."""
    usage = None if isinstance(record, ErrorRecord) else record.usage
    predicted = None if isinstance(record, ErrorRecord) else record.category.id
    values = {} if isinstance(record, ErrorRecord) else record.attributes
    nonconformity = None
    if isinstance(record, TagRecord):
        try:
            check_record(reference, record, product)
        except ConformanceError as exc:
            nonconformity = str(exc)
    tagged = record if isinstance(record, TagRecord) else None
    return ScoredSample(
        id=product.id,
        error=record.error.kind if isinstance(record, ErrorRecord) else None,
        conforms=isinstance(record, TagRecord) and nonconformity is None,
        category=score_category(taxonomy, predicted, gold),
        attributes={h: attribute_verdict(values.get(h, []), accepted) for h, accepted in gold.attributes.items()},
        predicted_category=predicted,
        predicted_attributes=values,
        seconds=usage.seconds if usage else 0.0,
        prompt_tokens=usage.prompt_tokens if usage else 0,
        completion_tokens=usage.completion_tokens if usage else 0,
        nonconformity=nonconformity,
        values=value_scores(tagged, gold) if tagged else [],
        category_kind=calibrate.category_kind(tagged.category) if tagged else None,
        category_score=tagged.category.score if tagged else None,
        category_confidence=tagged.category.confidence if tagged else None,
        evidence_valid=spans_hold(tagged, cleaned) if tagged and cleaned is not None else None,
    )
