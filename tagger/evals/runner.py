"""Run an eval: sample the dataset, tag it with the configured pipeline (and the MiniLM baseline), score, measure."""

from __future__ import annotations

import resource
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from functools import cached_property
from pathlib import Path
from typing import TYPE_CHECKING, Protocol

from tagger.build import DEFAULT_EXAMPLE_K
from tagger.errors import TaggerError
from tagger.evals.config import EvalConfig
from tagger.evals.conformance import Reference, read_reference
from tagger.evals.dataset import LabeledProduct, load_labeled
from tagger.evals.metrics import compute
from tagger.evals.samples import ScoredSample, score
from tagger.product import Product
from tagger.records import ErrorInfo, ErrorRecord, Provenance, Record, TagRecord
from tagger.taxonomy import Category, Taxonomy, load_taxonomy

if TYPE_CHECKING:
    from tagger.build import TaggerSpec
    from tagger.clean import Cleaner
    from tagger.pipeline import Rendered
    from tagger.retrieval import PoolItem

BATCH = 8


class Pipeline(Protocol):
    provenance: Provenance

    def tag_batch(self, products: Sequence[Product], categories: Sequence[Category] | None = None) -> list[Record]: ...

    def close(self) -> None: ...


@dataclass
class EvalRun:
    """One pipeline's run over the eval's sample."""

    name: str  # "llm" or "minilm"
    provenance: Provenance
    samples: list[ScoredSample]
    records: list[Record]
    metrics: dict[str, float | None]
    seconds: float
    peak_rss_mb: float  # the process's peak so far: runs share a process, so a later run's includes earlier ones
    prompt: Callable[[int], str] | None = None  # the prompt of sample i, for the report's failures


@dataclass
class EvalOutcome:
    config: EvalConfig
    data_root: Path
    taxonomy: Taxonomy
    labeled: list[LabeledProduct]  # the eval's sample: products with their gold
    runs: list[EvalRun] = field(default_factory=list)
    owned: list[Pipeline] = field(default_factory=list)  # made by run_eval; open until the report is written

    @cached_property
    def reference(self) -> Reference:
        """The taxonomy as the independent conformance check reads it (tagger.evals.conformance)."""
        spec = self.config.taxonomy
        return read_reference(self.config.resolve(spec, self.data_root) if spec else None)

    @property
    def main(self) -> EvalRun:
        return self.runs[0]

    def close(self) -> None:
        """Close the pipelines run_eval made (the report renders failing prompts with them, so close after it)."""
        for pipeline in self.owned:
            pipeline.close()
        self.owned.clear()


def example_pool(config: EvalConfig, taxonomy: Taxonomy, data_root: Path) -> list[PoolItem] | None:
    """The labeled pool the config's examples come from: its own file, or else the dataset itself (each product's
    own row is then excluded by the pool). None when the config asks for no examples."""
    from tagger.retrieval import PoolItem, read_pool

    spec = config.pipeline.examples
    if spec is None:
        return None
    if spec.pool is not None:
        return read_pool(Path(config.resolve(spec.pool, data_root)), taxonomy)
    rows = load_labeled(config, taxonomy, data_root, sample=False)
    return [
        PoolItem(r.product, taxonomy.categories[r.gold.category_id], r.gold.attributes)
        for r in rows
        if r.gold.category_id is not None
    ]


def tagger_spec(config: EvalConfig, data_root: Path, template: str | None = None) -> TaggerSpec:
    """The eval's pipeline as a tagger spec: built by the same code as the command line's."""
    from tagger.build import BackendSpec, Narrowing, TaggerSpec

    pipeline, backend = config.pipeline, config.backend
    examples = pipeline.examples
    # With the category given, no category stage runs: a shortlist would only load an index nobody reads.
    shortlist = 0 if config.given_category or pipeline.tree else pipeline.shortlist
    return TaggerSpec(
        taxonomy=config.resolve(config.taxonomy, data_root) if config.taxonomy else None,
        template=template or (config.resolve(config.template, data_root) if config.template else None),
        backend=BackendSpec(
            name=backend.name,
            model=config.resolve(backend.model, data_root) if backend.model else None,
            options=backend.options,
        ),
        narrowing=Narrowing(
            shortlist=shortlist,
            example_k=examples.k if examples else DEFAULT_EXAMPLE_K,
            tree=pipeline.tree,
        ),
        attributes=pipeline.attributes,
        judge=pipeline.judge,
        spans=Path(config.resolve(pipeline.spans, data_root)) if pipeline.spans else None,
    )


def make_llm_pipeline(config: EvalConfig, taxonomy: Taxonomy, data_root: Path, template: str | None) -> Pipeline:
    from tagger.build import build_tagger

    pool = example_pool(config, taxonomy, data_root)  # the pool is given as items: it may be the dataset itself
    return build_tagger(tagger_spec(config, data_root, template), taxonomy=taxonomy, pool=pool)


def make_minilm_pipeline(taxonomy: Taxonomy) -> Pipeline:
    from tagger.retrieval import NearestCategoryTagger

    return NearestCategoryTagger(taxonomy)


def run_pipeline(
    name: str,
    pipeline: Pipeline,
    outcome: EvalOutcome,
    on_progress: Callable[[int], None] | None = None,
) -> EvalRun:
    labeled = outcome.labeled
    records: list[Record] = []
    start = time.perf_counter()
    for first in range(0, len(labeled), BATCH):
        batch = labeled[first : first + BATCH]
        given = _given_categories(outcome, batch)
        records += pipeline.tag_batch([e.product for e in batch], given)
        if on_progress is not None:
            on_progress(len(batch))
    seconds = time.perf_counter() - start
    reference = outcome.reference
    # The evidence spans are checked against each product cleaned as the pipeline cleans it (a baseline without a
    # cleaner has no spans to check).
    cleaner: Cleaner | None = getattr(pipeline, "cleaner", None)
    samples = [
        score(
            r,
            e.gold,
            outcome.taxonomy,
            e.product,
            reference,
            cleaner.clean(e.product).product if cleaner is not None and isinstance(r, TagRecord) else None,
        )
        for r, e in zip(records, labeled, strict=True)
    ]
    metrics = compute(outcome.config.metrics, samples)
    if "products_per_s" in metrics and seconds:
        metrics["products_per_s"] = len(samples) / seconds  # wall clock: what a user waits for
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # Linux reports KiB
    return EvalRun(name, pipeline.provenance, samples, records, metrics, seconds, peak, _prompt_of(pipeline, outcome))


def _prompt_of(pipeline: Pipeline, outcome: EvalOutcome) -> Callable[[int], str] | None:
    """The first model call per sample, as a Tagger makes it (cleaned, with its shortlist and examples)."""
    render: Callable[[Product, Category | None], Rendered] | None = getattr(pipeline, "render", None)
    if render is None:  # a baseline without prompts
        return None

    def prompt(index: int) -> str:
        example = outcome.labeled[index]
        gold = example.gold.category_id
        given = outcome.taxonomy.categories[gold] if outcome.config.given_category and gold is not None else None
        shown = render(example.product, given)
        decided = f"(category {shown.category.full_path}: no model call)\n\n" if shown.category and not given else ""
        return decided + "\n\n".join(f"[{m.role}]\n{m.content}" for m in shown.messages)

    return prompt


def _given_categories(outcome: EvalOutcome, batch: list[LabeledProduct]) -> list[Category] | None:
    if not outcome.config.given_category:
        return None
    missing = [e.product.id for e in batch if e.gold.category_id is None]
    if missing:
        raise ValueError(f"eval {outcome.config.name}: given_category needs gold categories; missing for {missing}")
    return [outcome.taxonomy.categories[e.gold.category_id] for e in batch if e.gold.category_id is not None]


def run_eval(
    config: EvalConfig,
    data_root: Path,
    *,
    limit: int | None = None,
    template: str | None = None,
    minilm: bool | None = None,
    pipeline: Pipeline | None = None,
    on_progress: Callable[[int], None] | None = None,
) -> EvalOutcome:
    """The configured LLM pipeline (or `pipeline`), then the MiniLM baseline when the config or `minilm` asks.
    Call `close()` on the outcome once its outputs are written."""
    taxonomy = load_taxonomy(config.resolve(config.taxonomy, data_root) if config.taxonomy else None)
    outcome = EvalOutcome(config, data_root, taxonomy, load_labeled(config, taxonomy, data_root, limit))
    if not outcome.labeled:
        raise TaggerError(f"eval {config.name}: the sample is empty")
    main = pipeline or (
        make_minilm_pipeline(taxonomy)
        if config.backend.name == "minilm"
        else make_llm_pipeline(config, taxonomy, data_root, template)
    )
    if pipeline is None:
        outcome.owned.append(main)
    outcome.runs.append(run_pipeline(main.provenance.backend, main, outcome, on_progress))
    if (config.compare_minilm if minilm is None else minilm) and config.backend.name != "minilm":
        for name, baseline in baselines(main, taxonomy):
            outcome.owned.append(baseline)
            outcome.runs.append(run_pipeline(name, baseline, outcome, on_progress))
    if any(m.startswith("attribute_") for m in config.metrics) and config.backend.name != "minilm":
        lexical = lexical_baseline(outcome, example_pool(config, taxonomy, data_root))
        outcome.runs.append(run_pipeline("lexical", lexical, outcome, on_progress))
    return outcome


class _OnCategories:
    """A baseline that tags attributes of a given category, run on the categories the main run chose (the gold
    ones where the eval gives them), so that its attributes and the main run's answer for the same categories."""

    def __init__(self, inner: Pipeline, chosen: dict[str, Category]) -> None:
        self.inner, self.chosen, self.provenance = inner, chosen, inner.provenance

    def tag_batch(self, products: Sequence[Product], categories: Sequence[Category] | None = None) -> list[Record]:
        if categories is not None:
            return self.inner.tag_batch(products, categories)
        records: list[Record] = []
        for product in products:
            category = self.chosen.get(product.id)
            if category is None:  # the main run failed this product: so does its baseline
                info = ErrorInfo(kind="no_category", message="the main run chose no category")
                records.append(ErrorRecord(id=product.id, error=info))
            else:
                records += self.inner.tag_batch([product], [category])
        return records

    @property
    def cleaner(self) -> Cleaner | None:
        found: Cleaner | None = getattr(self.inner, "cleaner", None)
        return found

    def close(self) -> None:
        self.inner.close()


def lexical_baseline(outcome: EvalOutcome, pool: Sequence[PoolItem] | None) -> Pipeline:
    """String matching alone (with the eval's pool, when it has one): the bar the pipeline's attributes must clear."""
    from tagger.evidence import LexicalTagger

    chosen = {
        r.id: outcome.taxonomy.categories[r.category.id] for r in outcome.main.records if isinstance(r, TagRecord)
    }
    return _OnCategories(LexicalTagger(outcome.taxonomy, pool), chosen)


def baselines(main: Pipeline, taxonomy: Taxonomy) -> list[tuple[str, Pipeline]]:
    """MiniLM's nearest category path; and with few-shot examples, the examples' own vote (k-NN), so that a
    report shows what the model adds over what its examples already say."""
    from tagger.retrieval import NearestExampleTagger

    runs: list[tuple[str, Pipeline]] = [("minilm", make_minilm_pipeline(taxonomy))]
    pool = getattr(main, "examples", None)
    if pool is not None:
        runs.append(("knn", NearestExampleTagger(taxonomy, pool)))
    return runs
