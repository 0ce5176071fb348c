"""The one place a tagger is built: a typed spec (taxonomy, template, backend and its options, narrowing, cleaning)
and `build_taggers`, used by the command line, the evals, the benchmarks and the library alike.

A spec is plain data (it pickles and validates), so a run can be described in a file or shipped to another process
and built there the same way.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Sequence
from pathlib import Path
from types import ModuleType
from typing import TYPE_CHECKING, Any, Literal, Self

from pydantic import BaseModel, ConfigDict, Field, model_validator

from tagger._threads import cap_threads
from tagger.backends import BACKENDS, Backend, backend_options, make_backend
from tagger.calibrate import load_calibration
from tagger.clean import CleaningConfig
from tagger.errors import TaggerError
from tagger.prompt import load_template
from tagger.taxonomy import Taxonomy, load_taxonomy

if TYPE_CHECKING:
    from tagger.evidence import EvidenceMatcher
    from tagger.evidence.judge import PoolJudge
    from tagger.evidence.spans import SpanStudent
    from tagger.pipeline import Tagger
    from tagger.retrieval import ExamplePool, PoolItem, Shortlister

# Measured (README, "Large taxonomies"): on three Shopify-labeled dev sets, retrieval's own first guess (the nearest
# path; with a labeled pool, the nearest examples' vote) is right more often than the embedded 135M model choosing
# among the 10 nearest paths, with or without examples. So by default retrieval decides the category and the model
# fills the attributes; a larger model may do better choosing from a shortlist (shortlist=10).
DEFAULT_SHORTLIST = 1
DEFAULT_EXAMPLE_K = 3


class _Spec(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class Narrowing(_Spec):
    """What narrows the category before the model chooses, and which labeled examples it sees.

    shortlist: the model chooses among the K category paths nearest to the product (MiniLM); 1: retrieval decides
    (the nearest path, or the examples' vote), no model call; 0: every category (the flat enum).
    tree: the model walks the taxonomy level by level instead (with no shortlist and no examples)."""

    shortlist: int = Field(default=DEFAULT_SHORTLIST, ge=0)
    examples: Path | None = None  # a labeled JSONL pool: the nearest products become few-shot examples
    example_k: int = Field(default=DEFAULT_EXAMPLE_K, ge=1)
    tree: bool = False

    @model_validator(mode="before")
    @classmethod
    def _tree_walks_alone(cls, data: Any) -> Any:
        if isinstance(data, dict) and data.get("tree"):
            if data.get("shortlist") or data.get("examples"):
                raise ValueError("the tree strategy walks the taxonomy itself: use it without a shortlist or examples")
            data = {**data, "shortlist": 0}
        return data

    @property
    def uses_retrieval(self) -> bool:
        return self.shortlist > 0 or self.examples is not None


class BackendSpec(_Spec):
    name: str = "llamacpp"
    model: str | None = None  # a GGUF file (llamacpp), an HF folder or id (vllm), a served name (openai)
    options: dict[str, Any] = Field(default_factory=dict)  # checked against the backend's own option types

    @model_validator(mode="after")
    def _known(self) -> Self:
        backend_options(self.name, self.options)  # raises, naming the backend and the option
        return self


AttributeSource = Literal["evidence", "model"]


class TaggerSpec(_Spec):
    """Everything that makes a tagger, besides the products.

    attributes: "evidence" (the default): an attribute's values are those the product's text or the labeled pool
    supports, and the model only chooses where a single-valued attribute has several candidates; "model": the model
    fills every attribute of the category under the taxonomy's schema (measured far worse: README, "Evidence")."""

    taxonomy: str | None = None  # as --taxonomy: a YAML file, shopify, google, shopify:DIR, google:FILE
    template: str | None = None  # a .j2 file or a bundled template's name
    backend: BackendSpec = Field(default_factory=BackendSpec)
    narrowing: Narrowing = Field(default_factory=Narrowing)
    cleaning: CleaningConfig = Field(default_factory=CleaningConfig)
    attributes: AttributeSource = "evidence"
    infer: bool = False  # with evidence: the model may add closed values the text does not state, marked inferred
    # With evidence: the model copies a span for an extractive attribute no candidate was found for (decided "span").
    # Off by default: the embedded model copies whole titles (README, "Evidence").
    extract: bool = False
    # With evidence and a labeled pool: the judge fitted on the pool (tagger.evidence.judge) decides each attribute's
    # values and their confidence, instead of the model choosing among rivals (OA-Mine, 200 products: F1 0.707 against
    # 0.675 for string matching; README, "The pool's judge").
    judge: bool = True
    # With evidence: a span student's folder (`tagger train-spans`); it decides the extractive attributes it learned
    # (OA-Mine held apart: F1 0.729 against 0.677 without it; README, "The span student").
    spans: Path | None = None
    # Confidences: "default" (the calibration tagger ships, fitted on its dev sets with the embedded model), a file
    # `tagger calibrate` wrote, or "off". min_confidence: values less sure than this go to warnings.
    calibration: str = "default"
    min_confidence: float | None = Field(default=None, ge=0, le=1)

    def describe(self) -> str:
        return json.dumps(self.model_dump(mode="json"), sort_keys=True)


def build_tagger(spec: TaggerSpec | None = None, **kwargs: Any) -> Tagger:
    """One tagger; see `build_taggers`."""
    return build_taggers(spec or TaggerSpec(), 1, **kwargs)[0]


def build_taggers(
    spec: TaggerSpec,
    count: int = 1,
    *,
    taxonomy: Taxonomy | None = None,
    pool: Sequence[PoolItem] | None = None,
    load_model: bool = True,
    wrap: Callable[[Backend], Backend] | None = None,
) -> list[Tagger]:
    """`count` taggers (one per parallel worker, each with its own backend) sharing the taxonomy, the template and
    the retrieval indexes. `taxonomy`: already loaded (else the spec's is). `pool`: labeled examples given directly
    (an eval's own dataset) instead of the spec's pool file. `load_model=False`: backends that only render prompts.
    `wrap`: applied to each backend (a benchmark's timer, a test's recorder)."""
    from tagger.pipeline import Tagger

    cap_threads()
    chosen = taxonomy or load_taxonomy(spec.taxonomy)
    template = load_template(spec.template)
    if pool is None and spec.narrowing.examples is not None:
        pool = _read_pool(spec.narrowing.examples, chosen)
    shortlist, examples = _narrowing(spec.narrowing, chosen, pool)
    evidence = _evidence(chosen, pool) if spec.attributes == "evidence" else None
    judge = _judge(evidence) if evidence is not None and spec.judge else None
    spans = _span_student(spec.spans) if evidence is not None and spec.spans is not None else None
    calibration = load_calibration(spec.calibration)
    if spec.min_confidence is not None and calibration is None:
        raise TaggerError("--min-confidence needs a calibration (--calibration default or a file), not off")
    engines = [_backend(spec.backend, count, load_model) for _ in range(count)]
    if wrap is not None:
        engines = [wrap(engine) for engine in engines]
    return [
        Tagger(
            chosen,
            engine,
            template,
            spec.cleaning,
            shortlist=shortlist,
            examples=examples,
            tree=spec.narrowing.tree,
            evidence=evidence,
            judge=judge,
            infer=spec.infer,
            extract=spec.extract,
            spans=spans,
            calibration=calibration,
            min_confidence=spec.min_confidence,
        )
        for engine in engines
    ]


def _backend(spec: BackendSpec, workers: int, load_model: bool) -> Backend:
    options = backend_options(spec.name, spec.options).for_workers(workers)
    if not load_model:
        return options.offline(spec.model)
    return make_backend(spec.name, spec.model, options.given())


def _narrowing(
    narrowing: Narrowing, taxonomy: Taxonomy, pool: Sequence[PoolItem] | None
) -> tuple[Shortlister | None, ExamplePool | None]:
    """The shortlister and the example pool the narrowing asks for; one embedding model serves both."""
    if not narrowing.uses_retrieval and pool is None:
        return None, None
    retrieval = _retrieval()
    embedder = retrieval.Embedder()
    shortlist = retrieval.Shortlister(taxonomy, embedder, narrowing.shortlist) if narrowing.shortlist else None
    examples = retrieval.ExamplePool(pool, embedder, narrowing.example_k) if pool is not None else None
    return shortlist, examples


def _retrieval() -> ModuleType:
    try:
        import tagger.retrieval
    except ImportError as exc:  # a broken install: the default pipeline needs retrieval
        raise TaggerError(f"retrieval cannot be imported ({exc}): reinstall tagger with its dependencies") from exc
    return tagger.retrieval


def _read_pool(path: Path, taxonomy: Taxonomy) -> list[PoolItem]:
    items: list[PoolItem] = _retrieval().read_pool(path, taxonomy)
    return items


def _evidence(taxonomy: Taxonomy, pool: Sequence[PoolItem] | None) -> EvidenceMatcher:
    from tagger.evidence import EvidenceMatcher

    return EvidenceMatcher(taxonomy, pool)


def _judge(matcher: EvidenceMatcher) -> PoolJudge | None:
    from tagger.evidence.judge import PoolJudge

    return PoolJudge.fit(matcher)


def _span_student(folder: Path) -> SpanStudent:
    from tagger.evidence.spans import LABELS_FILE, SpanStudent

    if not (folder / LABELS_FILE).is_file():
        raise TaggerError(f"--spans {folder}: not a span student's folder (no {LABELS_FILE}; see tagger train-spans)")
    return SpanStudent(folder)


__all__ = [
    "BACKENDS",
    "DEFAULT_EXAMPLE_K",
    "DEFAULT_SHORTLIST",
    "BackendSpec",
    "Narrowing",
    "TaggerSpec",
    "build_tagger",
    "build_taggers",
]
