"""Output records: one JSON line per input product, a tag record or an error record."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, Literal

from pydantic import BaseModel, Field

if TYPE_CHECKING:
    from tagger.taxonomy import Taxonomy


class Truncation(BaseModel):
    """A field cut to its token budget by cleaning."""

    field: str
    chars: int  # the cleaned text's length before the cut
    kept_tokens: int


class Span(BaseModel):
    """Where a value stands in the product: the cleaned field's text at [start, end) is `text`."""

    field: str  # "title", "description", or the name of a field shown to the model
    start: int
    end: int
    text: str


Matched = Literal["name", "field", "dictionary", "rule", "shape", "common", "segment", "model", "student"]


class Evidence(BaseModel):
    """Why one attribute value is in a record."""

    attribute: str
    value: str
    source: Literal["text", "pool", "inferred"]  # stated in the product, learned from the labeled pool, inferred
    spans: list[Span] = Field(default_factory=list)
    # What found it: a taxonomy name or alias (or an amount in its range) the text states, a field named as the
    # attribute, a value of the pool's dictionary, one of the pool's n-gram rules, a shape the pool's labels have
    # (identifiers, amounts), a word or amount common to every catalog for an extractive attribute (a gender, a
    # colour, "12 oz": tagger.evidence.common), the title's leading words (segment: offered only to the pool's
    # judge), the model, or the span student (tagger.evidence.spans).
    matched: Matched | None = None
    # Who settled it: the evidence alone (no rival), the model (a choice among rivals, or, for an inferred value,
    # the model's guess), the model's span (an extractive value no candidate offered: the model copied it from the
    # text, and `spans` say where the text states it), or the judge learned from the labeled pool
    # (tagger.evidence.judge), which chose it among its rivals and kept it as more likely right than not worth it,
    # or the span student, which marked it in the text.
    decided: Literal["evidence", "model", "span", "judge", "student"] = "evidence"
    # What was measured before calibration: the model's probability of choosing the value, the pool's precision for
    # the pattern that found it, or the judge's probability; None for a name stated in the text with no rival.
    score: float | None = None
    # The probability that the value is right: calibrated on the dev sets (tagger.calibrate) from the evidence's kind
    # and its score, or the judge's probability, fitted on the catalog's own pool; None where nothing measured it.
    confidence: float | None = None


class CategoryEvidence(BaseModel):
    """Why the category was chosen."""

    source: Literal["retrieval", "examples", "model", "given"]
    words: list[str] = Field(default_factory=list)  # product words that match the category's path
    examples: list[str] = Field(default_factory=list)  # ids of the pool products that voted for it


class CategoryRef(BaseModel):
    id: str
    path: list[str]
    # What was measured: the retrieval's margin, the examples' vote share, or the model's probability.
    score: float | None = None
    confidence: float | None = None  # the calibrated probability that the category is right (tagger.calibrate)
    evidence: CategoryEvidence | None = None


class Provenance(BaseModel):
    """What made a record, so that any tag can be traced and reproduced."""

    model: str
    backend: str
    template: str
    template_hash: str
    taxonomy: str
    taxonomy_version: str
    taxonomy_fingerprint: str = ""  # the defaults keep results written before these fields readable
    tagger_version: str
    decoding: dict[str, float | int]
    cleaning: str = "off"  # the cleaning config's hash, or "off"
    strategy: str = "flat"  # how the category was narrowed before the model chose: flat, shortlist, examples
    calibration: str = "none"  # the calibration's hash (tagger.calibrate), or "none": confidences are not set
    min_confidence: float | None = None  # values below it were moved to warnings
    truncated: list[Truncation] = Field(default_factory=list)  # fields cut to their token budget for this product


class Usage(BaseModel):
    prompt_tokens: int = 0
    completion_tokens: int = 0
    seconds: float = 0.0

    def add(self, prompt_tokens: int, completion_tokens: int, seconds: float) -> None:
        self.prompt_tokens += prompt_tokens
        self.completion_tokens += completion_tokens
        self.seconds = round(self.seconds + seconds, 4)


class TagRecord(BaseModel):
    id: str
    category: CategoryRef
    attributes: dict[str, list[str]] = Field(default_factory=dict)
    evidence: list[Evidence] = Field(default_factory=list)  # one entry per value in `attributes`
    warnings: list[str] = Field(default_factory=list)
    usage: Usage = Field(default_factory=Usage)
    provenance: Provenance
    reused_from: str | None = None  # the product whose generation this record reuses (cache or duplicate content)


class ErrorInfo(BaseModel):
    kind: str
    message: str


class ErrorRecord(BaseModel):
    id: str | None
    row: int | None = None
    error: ErrorInfo


Record = TagRecord | ErrorRecord


def model_free_provenance(
    taxonomy: Taxonomy, method: str, backend: str, strategy: str = "flat", cleaning: str = "off"
) -> Provenance:
    """What made a record that no model and no template made: a baseline (MiniLM, k-NN, lexical) or a planted
    pipeline. `method` stands where a model's name would."""
    from tagger import __version__

    return Provenance(
        model=method,
        backend=backend,
        template="-",
        template_hash="-",
        taxonomy=taxonomy.name,
        taxonomy_version=taxonomy.version,
        taxonomy_fingerprint=taxonomy.fingerprint,
        tagger_version=__version__,
        decoding={},
        cleaning=cleaning,
        strategy=strategy,
    )


def result_of(record: TagRecord) -> dict[str, Any]:
    """What a record's tags are, apart from whose they are: what the cache keeps and a duplicate reuses."""
    return {
        "id": record.reused_from or record.id,
        "category": record.category.model_dump(),
        "attributes": record.attributes,
        "evidence": [e.model_dump() for e in record.evidence],
        "warnings": record.warnings,
    }


def to_json_line(record: Record) -> str:
    return record.model_dump_json() + "\n"
