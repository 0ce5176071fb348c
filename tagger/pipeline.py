"""The pipeline for one batch of products: taxonomy -> schema -> prompt -> backend -> validation -> record.

Two stages, as Shopify's own classifier does: choose the category, then only that category's attributes (its own
and its ancestors'). With an evidence matcher (the default), an attribute's values are those the product's text (or
the labeled pool) supports: a value with no rival is written with its evidence, and the model only chooses where a
single-valued attribute has several candidates; with a labeled pool, the judge fitted on it decides instead (it
chose better than the model on every dev set). Without one, the model fills every attribute under the taxonomy's
schema. A batch goes through each stage in one backend call, so engines that batch (vLLM) see the whole batch at once.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from typing import TYPE_CHECKING, Any, Literal

from tagger import __version__
from tagger.backends import Backend, Completion, Request, make_backend
from tagger.calibrate import Calibration, hold_below
from tagger.clean import Cleaned, Cleaner, CleaningConfig
from tagger.confidence import attribute_probabilities, category_probability
from tagger.product import Product
from tagger.prompt import Example, Message, PromptBuilder, PromptError, PromptTemplate, load_template
from tagger.records import (
    CategoryEvidence,
    CategoryRef,
    ErrorInfo,
    ErrorRecord,
    Evidence,
    Provenance,
    Record,
    TagRecord,
    Truncation,
    Usage,
)
from tagger.schema import MAX_LIST_ITEMS, SchemaSet, attribute_schema, with_spans
from tagger.taxonomy import Attribute, Category, Taxonomy, load_taxonomy
from tagger.validate import AnswerError, read_attributes, read_category

if TYPE_CHECKING:  # retrieval needs numpy and sentence-transformers: only those who use it import it
    from tagger.evidence import EvidenceMatcher
    from tagger.evidence.judge import PoolJudge
    from tagger.evidence.spans import SpanStudent
    from tagger.retrieval.examples import ExamplePool, PoolItem
    from tagger.retrieval.shortlist import Shortlister

CATEGORY_MAX_TOKENS = 96  # the longest Shopify path is ~45 tokens, plus the JSON around it
ATTRIBUTE_MAX_TOKENS = 384


Stage = Literal["category", "attributes"]


@dataclass(frozen=True)
class Rendered:
    """What the pipeline sends first for a product (`Tagger.render`)."""

    category: Category | None  # known before any model call (given, or decided by retrieval); None: the model chooses
    stage: Stage
    messages: list[Message]


@dataclass(frozen=True)
class FirstCall:
    """The first model call a run makes for a product, built and not sent (`Tagger.first_calls`)."""

    category: Category | None  # known before any model call (given, or decided by retrieval); None: the model chooses
    stage: Stage
    request: Request | None  # None: no call at all (a category without attributes, or nothing left to choose)


@dataclass
class _Pending:
    """A product between the stages."""

    product: Product
    usage: Usage
    truncated: list[Truncation]
    shots: list[PoolItem] = field(default_factory=list)  # the nearest labeled products, shown as examples
    category: Category | None = None
    why: CategoryEvidence = field(default_factory=lambda: CategoryEvidence(source="model"))  # the category's evidence
    score: float | None = None  # what measured the category: the vote share, retrieval's softmax share, the model's
    error: ErrorRecord | None = None
    values: dict[str, list[str]] = field(default_factory=dict)
    evidence: list[Evidence] = field(default_factory=list)
    choices: dict[str, list[Evidence]] = field(default_factory=dict)  # the candidates left to the model, by handle
    inferring: list[str] = field(default_factory=list)  # with infer: closed attributes the text gives no value for
    extracting: list[str] = field(default_factory=list)  # extractive attributes with no candidate: the model's spans
    warnings: list[str] = field(default_factory=list)


class Tagger:
    """Tags products into one taxonomy with one backend and one template. Reuse it: schemas and constraints are kept."""

    def __init__(
        self,
        taxonomy: Taxonomy | None = None,
        backend: Backend | None = None,
        template: PromptTemplate | None = None,
        cleaning: CleaningConfig | None = None,
        *,
        shortlist: Shortlister | None = None,
        examples: ExamplePool | None = None,
        tree: bool = False,
        evidence: EvidenceMatcher | None = None,
        judge: PoolJudge | None = None,
        infer: bool = False,
        extract: bool = False,
        spans: SpanStudent | None = None,
        calibration: Calibration | None = None,
        min_confidence: float | None = None,
    ) -> None:
        if tree and (shortlist is not None or examples is not None):
            raise ValueError("the tree strategy walks the taxonomy itself: use it without a shortlist or examples")
        self.taxonomy = taxonomy or load_taxonomy()
        self.backend = backend or make_backend()
        self.template = template or load_template()
        self.cleaner = Cleaner(cleaning, self.backend.tokenizer)
        self.prompts = PromptBuilder(self.taxonomy, self.template)
        self.schemas = SchemaSet(self.taxonomy)
        self.shortlist = shortlist
        self.examples = examples
        self.tree = tree
        self.evidence = evidence
        self.judge = judge if evidence is not None else None
        self.infer = infer and evidence is not None  # without evidence the model fills every attribute anyway
        self.extract = extract and evidence is not None
        self.spans = spans if evidence is not None else None
        self.calibration = calibration
        if min_confidence is not None and calibration is None:
            raise ValueError("a minimum confidence needs a calibration: without one no value has a confidence")
        self.min_confidence = min_confidence
        strategy = ["tree"] if tree else [part.name for part in (shortlist, examples) if part is not None]
        if evidence is not None:
            strategy.append(
                "+".join(
                    [
                        "evidence",
                        *([self.judge.name] if self.judge else []),
                        *(["infer"] if self.infer else []),
                        *(["extract"] if self.extract else []),
                        *([f"spans={self.spans.name}"] if self.spans else []),
                    ]
                )
            )
        self.provenance = Provenance(
            model=self.backend.model,
            backend=self.backend.name,
            template=self.template.name,
            template_hash=self.template.hash,
            taxonomy=self.taxonomy.name,
            taxonomy_version=self.taxonomy.version,
            taxonomy_fingerprint=self.taxonomy.fingerprint,
            tagger_version=__version__,
            decoding=self.backend.decoding.as_dict(),
            cleaning=self.cleaner.config.hash,
            strategy="+".join(strategy) or "flat",
            calibration=calibration.hash if calibration is not None else "none",
            min_confidence=min_confidence,
        )

    @property
    def scope(self) -> dict[str, Any]:
        """Everything that shapes an answer besides the product: the result cache's key, with the content's."""
        return self.provenance.model_dump(exclude={"truncated"})

    # --- tagging ---------------------------------------------------------------------------------------------------

    def tag(self, product: Product) -> Record:
        return self.tag_batch([product])[0]

    def tag_batch(self, products: Sequence[Product], categories: Sequence[Category] | None = None) -> list[Record]:
        """Records in input order, each product cleaned first. With `categories` (one per product), only the
        attribute stage runs."""
        return self.tag_cleaned([self.cleaner.clean(p) for p in products], categories)

    def tag_cleaned(self, items: Sequence[Cleaned], categories: Sequence[Category] | None = None) -> list[Record]:
        """`tag_batch` for products cleaned already (a bulk run cleans first to find duplicates and cache hits)."""
        pending = [_Pending(item.product, Usage(), item.truncated) for item in items]
        if categories is None:
            self._choose_categories(pending)
        else:
            self._take_given(pending, categories)
        self._fill_attributes([p for p in pending if p.error is None])
        return [p.error or self._record(p) for p in pending]

    def _run_stage(self, items: list[tuple[_Pending, Request]]) -> list[tuple[_Pending, Completion]]:
        completions = self.backend.generate([request for _, request in items])
        done = []
        for (item, _), completion in zip(items, completions, strict=True):
            item.usage.add(completion.prompt_tokens, completion.completion_tokens, completion.seconds)
            if completion.error is not None:
                item.error = _error(item.product, "backend_error", completion.error)
            else:
                done.append((item, completion))
        return done

    def _narrow(
        self, products: Sequence[Product]
    ) -> tuple[list[list[Category] | None], list[list[PoolItem]], list[float | None]]:
        """Per product: the categories the model may choose from (None: all), its nearest labeled examples, and the
        retrieval's score for the nearest category (its softmax share among the nearest ten)."""
        shortlists: list[list[Category] | None] = [None] * len(products)
        shares: list[float | None] = [None] * len(products)
        if self.shortlist is not None:
            scored = self.shortlist.scored(products)
            shortlists, shares = [s for s, _ in scored], [round(share, 4) for _, share in scored]
        if not self.examples:
            return shortlists, [[] for _ in products], shares
        from tagger.retrieval.examples import vote

        neighbours = self.examples.nearest(products)
        for i, (choices, shots) in enumerate(zip(shortlists, neighbours, strict=True)):
            if choices is None or not shots:
                continue
            if self.shortlist is not None and self.shortlist.k == 1:  # retrieval decides: the examples' vote
                shortlists[i] = [vote(shots)]
            else:  # the examples' categories join the shortlist: the model may follow them
                shortlists[i] = list({c.id: c for c in [*(s.category for s in shots), *choices]}.values())
        return shortlists, neighbours, shares

    def render(self, product: Product, category: Category | None = None) -> Rendered:
        """The first model call for one product, built by the same code as a run's (cleaned first): the category
        stage's messages, or, when the category is given or retrieval decides it, the attribute stage's (none when
        that category has no attributes: then no call at all)."""
        [call] = self.first_calls([product], None if category is None else [category])
        return Rendered(call.category, call.stage, list(call.request.messages) if call.request else [])

    def first_calls(self, products: Sequence[Product], categories: Sequence[Category] | None = None) -> list[FirstCall]:
        """Per product, in order, the first model call a run makes for it, built by the run's own code (cleaned
        first, the same narrowing) and not sent: the category stage's request, or, when the category is given or
        retrieval decides it, the attribute stage's. Raises PromptError for a product whose prompt cannot be built.
        What `render` shows, and what benchmarks send to an engine of their own."""
        pending = [_Pending(self.cleaner.clean(product).product, Usage(), []) for product in products]
        first: dict[int, tuple[Stage, Request]] = {}
        if categories is not None:
            self._take_given(pending, categories)
        else:
            asked = self._level_requests(pending) if self.tree else self._category_requests(pending)
            first.update({id(item): ("category", request) for item, request in asked})
        waiting = [item for item in pending if id(item) not in first and item.error is None]
        first.update({id(item): ("attributes", request) for item, request in self._attribute_requests(waiting)})
        calls = []
        for item in pending:
            if item.error is not None:
                raise PromptError(item.error.error.message)
            if id(item) in first:
                stage, request = first[id(item)]
                calls.append(FirstCall(item.category if stage == "attributes" else None, stage, request))
            else:
                calls.append(FirstCall(item.category, "attributes", None))
        return calls

    def _choose_categories(self, pending: list[_Pending]) -> None:
        if self.tree:
            self._descend(pending)
            return
        for item, completion in self._run_stage(self._category_requests(pending)):
            try:
                truncated = completion.finish_reason == "length"
                item.category = read_category(completion.text, self.taxonomy.by_path, truncated)
            except AnswerError as exc:
                item.error = _error(item.product, exc.kind, str(exc))
                continue
            item.score = _rounded(category_probability(completion.text, completion.tokens))

    def _category_requests(self, pending: list[_Pending]) -> list[tuple[_Pending, Request]]:
        """Category-stage requests under each product's narrowing; a product whose shortlist holds one category
        gets it here, with no request."""
        shortlists, neighbours, shares = self._narrow([item.product for item in pending])
        requests = []
        for item, choices, shots, share in zip(pending, shortlists, neighbours, shares, strict=True):
            item.shots = shots
            if choices is not None and len(choices) == 1:  # nothing to choose: retrieval has decided
                item.category, item.score = choices[0], share
                self._retrieval_evidence(item)
                continue
            try:
                messages = self.prompts.category_messages(item.product, choices, _category_examples(shots))
            except PromptError as exc:
                item.error = _error(item.product, "prompt_error", str(exc))
                continue
            schema = self.schemas.category if choices is None else self.schemas.category_among(choices)
            requests.append((item, Request(messages, schema, CATEGORY_MAX_TOKENS)))
        return requests

    def _retrieval_evidence(self, item: _Pending) -> None:
        """Why retrieval chose the category: the examples that voted for it and their share of the vote, or the
        product's words that stand in the category's path."""
        assert item.category is not None
        voters = [s.product.id for s in item.shots if s.category.id == item.category.id]
        if voters:
            item.why = CategoryEvidence(source="examples", examples=voters)
            item.score = round(len(voters) / len(item.shots), 4)
            return
        from tagger.evidence.text import words

        named = {w.norm for name in item.category.path for w in words(name) if len(w.norm) > 2}
        title = item.product.title
        matched = dict.fromkeys(title[w.start : w.end] for w in words(title) if w.norm in named)
        item.why = CategoryEvidence(source="retrieval", words=list(matched))

    def _take_given(self, pending: list[_Pending], categories: Sequence[Category]) -> None:
        """Known categories: only the attribute stage runs, with examples of the same category when there is a pool."""
        products = [item.product for item in pending]
        neighbours = self.examples.nearest(products, categories) if self.examples else [[] for _ in pending]
        for item, category, shots in zip(pending, categories, neighbours, strict=True):
            item.category, item.shots = category, shots
            item.why = CategoryEvidence(source="given")

    def _descend(self, pending: list[_Pending]) -> None:
        """The tree strategy: a top-level category first, then one of the chosen node's children, level by level,
        until the model keeps the node it is at or reaches a leaf. Each level is one backend call for the batch,
        each request under the small enum of that node's children (and the node itself, to stop there)."""
        active = list(pending)
        while active:
            requests = self._level_requests(active)
            active = []
            for item, completion in self._run_stage(requests):
                try:
                    truncated = completion.finish_reason == "length"
                    chosen = read_category(completion.text, self.taxonomy.by_path, truncated)
                except AnswerError as exc:
                    item.error = _error(item.product, exc.kind, str(exc))
                    continue
                if chosen is not item.category and chosen.children:
                    active.append(item)  # went one level down, and there is more below
                item.category = chosen

    def _level_requests(self, active: list[_Pending]) -> list[tuple[_Pending, Request]]:
        """One tree level: each product chooses among its current node (to stop there) and the node's children."""
        requests = []
        for item in active:
            node = item.category
            children = [self.taxonomy.categories[c] for c in node.children] if node else self.taxonomy.roots
            choices = [node, *children] if node else children
            try:
                messages = self.prompts.category_messages(item.product, choices)
            except PromptError as exc:
                item.error = _error(item.product, "prompt_error", str(exc))
                continue
            requests.append((item, Request(messages, self.schemas.category_among(choices), CATEGORY_MAX_TOKENS)))
        return requests

    def _fill_attributes(self, pending: list[_Pending]) -> None:
        for item, completion in self._run_stage(self._attribute_requests(pending)):
            assert item.category is not None
            asked = self._asked(item) or self.taxonomy.attributes_for(item.category.id)
            try:
                found = read_attributes(completion.text, asked, item.product.text, completion.finish_reason == "length")
            except AnswerError as exc:
                # The category is sound; keep it and say why the attributes are missing.
                item.warnings.append(f"attributes: {exc}")
                continue
            item.values, item.warnings = found.values, found.warnings
            # Each chosen value keeps the evidence that offered it, scored by the model's probability of choosing it
            # (read off its tokens under the constraint), where the backend gives token log-probabilities.
            chances = attribute_probabilities(completion.text, completion.tokens) if completion.tokens else {}
            for handle, values in found.values.items():
                chosen = [e for e in item.choices.get(handle, []) if e.value in values]
                if handle in item.inferring:
                    chosen = [Evidence(attribute=handle, value=v, source="inferred", matched="model") for v in values]
                elif handle in item.extracting:  # a span of the text: its evidence is where the text states it
                    from tagger.evidence import spans_of

                    spans = {v: spans_of(v, item.product) for v in values}
                    chosen = [
                        Evidence(attribute=handle, value=v, source="text", spans=spans[v], matched="model")
                        for v in values
                        if spans[v]
                    ]
                for evidence in chosen:
                    evidence.decided = "span" if handle in item.extracting else "model"
                    evidence.score = _rounded(chances.get(handle, {}).get(evidence.value))
                item.evidence += chosen
        if self.evidence is not None:
            for item in pending:
                self._settle(item)

    def _attribute_requests(self, pending: list[_Pending]) -> list[tuple[_Pending, Request]]:
        """Attribute-stage requests for products with a category; none for a category without attributes, nor,
        with evidence, for a product whose evidence leaves nothing to choose."""
        if self.evidence is not None:
            return self._choice_requests(pending)
        requests = []
        for item in pending:
            assert item.category is not None
            schema = self.schemas.attributes(item.category.id)
            if schema is None:
                continue
            attributes = self.taxonomy.attributes_for(item.category.id)
            if self.backend.grammars and any(a.extractive for a in attributes):
                schema = with_spans(schema, attributes, item.product.text)  # spans of this product's text only
            examples = [Example(s.product, _attribute_answer(attributes, s.attributes)) for s in item.shots]
            try:
                messages = self.prompts.attribute_messages(item.product, item.category, examples)
            except PromptError as exc:
                item.error = _error(item.product, "prompt_error", str(exc))
                continue
            requests.append((item, Request(messages, schema, ATTRIBUTE_MAX_TOKENS)))
        return requests

    def _choice_requests(self, pending: list[_Pending]) -> list[tuple[_Pending, Request]]:
        """The evidence stage: every attribute's candidates; a value with no rival is kept as it is, and where a
        single-valued attribute has several candidates the model chooses among them (or none), under a schema that
        offers only those. With infer, the model may also give closed attributes the text does not state."""
        from tagger.evidence.claims import one_attribute_per_span

        assert self.evidence is not None
        requests = []
        for item in pending:
            assert item.category is not None
            candidates = self.evidence.candidates(item.product, item.category)
            if self.judge is not None:  # the pool's judge leaves one value per single-valued attribute: no rivals
                candidates = self.judge.judge(item.product, item.category, candidates)
            attributes = self.taxonomy.attributes_for(item.category.id)
            if self.spans is not None:  # the span student decides the extractive attributes it learned
                candidates = self.spans.decide(item.product, item.category, attributes, candidates)
            if self.judge is not None or self.spans is not None:  # what they decided: a span of text, one attribute
                candidates = one_attribute_per_span(candidates, {a.handle for a in attributes if a.extractive})
            for attribute in attributes:
                found = candidates.get(attribute.handle, [])
                if len({e.value for e in found}) > 1 and not attribute.multi:
                    item.choices[attribute.handle] = found
                elif not found and self.infer and not attribute.extractive:
                    item.inferring.append(attribute.handle)  # an extractive value is never inferred: it is a span
                elif not found and self.extract and attribute.extractive:
                    item.extracting.append(attribute.handle)
                else:
                    item.evidence += found
            asked = self._asked(item)
            if not asked:
                continue
            try:
                messages = self.prompts.attribute_messages(item.product, item.category, attributes=asked)
            except PromptError as exc:
                item.error = _error(item.product, "prompt_error", str(exc))
                continue
            # Rivals are values the text states: the model picks one of them, as null lost values the text gives
            # (smoke: F1 without brand 0.889 with null allowed, 0.897 without; README, "Evidence").
            schema = attribute_schema(item.category, asked, must_choose=list(item.choices))
            if item.extracting and self.backend.grammars:
                schema = with_spans(schema, asked, item.product.text)  # spans of this product's text only
            requests.append((item, Request(messages, schema, ATTRIBUTE_MAX_TOKENS)))
        return requests

    def _asked(self, item: _Pending) -> list[Attribute]:
        """The attributes left to the model: rivals narrowed to their candidates (a closed list, spans included),
        with infer the closed attributes the text says nothing about, with all their values, and with extract the
        extractive attributes no candidate was found for, as spans of the text."""
        if item.category is None or not (item.choices or item.inferring or item.extracting):
            return []
        return [
            replace(a, values=tuple(dict.fromkeys(e.value for e in item.choices[a.handle])), extractive=False)
            if a.handle in item.choices
            else a
            for a in self.taxonomy.attributes_for(item.category.id)
            if a.handle in item.choices or a.handle in item.inferring or a.handle in item.extracting
        ]

    def _settle(self, item: _Pending) -> None:
        """The values of the evidence kept (settled or chosen), in the taxonomy's attribute order, each checked by
        the same validation as a model's answer."""
        assert item.category is not None
        attributes = self.taxonomy.attributes_for(item.category.id)
        answer = {a.handle: [e.value for e in item.evidence if e.attribute == a.handle] for a in attributes}
        found = read_attributes(json.dumps({k: v for k, v in answer.items() if v}), attributes, item.product.text)
        item.values = found.values
        item.warnings += found.warnings
        item.evidence = [e for e in item.evidence if e.value in found.values.get(e.attribute, [])]

    def _record(self, item: _Pending) -> TagRecord:
        assert item.category is not None
        record = TagRecord(
            id=item.product.id,
            category=CategoryRef(
                id=item.category.id, path=list(item.category.path), score=item.score, evidence=item.why
            ),
            attributes=item.values,
            evidence=item.evidence,
            warnings=item.warnings,
            usage=item.usage,
            provenance=self._provenance(item.truncated),
        )
        if self.calibration is not None:
            self.calibration.apply(record)
        if self.examples is not None and item.why.source == "examples" and item.score is not None:
            # How often this pool's vote is right at this share, measured on the pool itself: it stands over the
            # shipped calibration, fitted on other catalogs.
            record.category.confidence = round(self.examples.vote_confidence(item.product, item.score), 4)
        if self.min_confidence is not None:
            hold_below(record, self.min_confidence)
        return record

    def _provenance(self, truncated: list[Truncation]) -> Provenance:
        return self.provenance.model_copy(update={"truncated": truncated}) if truncated else self.provenance

    def reuse(self, result: dict[str, Any], product_id: str, truncated: list[Truncation]) -> TagRecord:
        """A record for `product_id` from another product's result (the cache, or a duplicate in this run)."""
        return TagRecord(
            id=product_id,
            category=CategoryRef.model_validate(result["category"]),
            attributes=result["attributes"],
            evidence=result.get("evidence", []),  # cache entries written before evidence existed have none
            warnings=result["warnings"],
            provenance=self._provenance(truncated),
            reused_from=result["id"],
        )

    def close(self) -> None:
        self.backend.close()


def _rounded(probability: float | None) -> float | None:
    return None if probability is None else round(probability, 4)


def _category_examples(shots: Sequence[PoolItem]) -> list[Example]:
    return [Example(s.product, json.dumps({"category": s.category.full_path}, ensure_ascii=False)) for s in shots]


def _attribute_answer(attributes: Sequence[Attribute], known: dict[str, list[str]]) -> str:
    """An example's answer in the shape of this category's schema: what the example's labels say, null or []
    for the rest. Closed values outside the attribute's list are left out: an example must not teach them."""
    answer: dict[str, Any] = {}
    for attribute in attributes:
        values = [v for v in known.get(attribute.handle, []) if attribute.extractive or v in attribute.values]
        answer[attribute.handle] = values[:MAX_LIST_ITEMS] if attribute.multi else (values[0] if values else None)
    return json.dumps(answer, ensure_ascii=False)


def _error(product: Product, kind: str, message: str) -> ErrorRecord:
    return ErrorRecord(id=product.id, error=ErrorInfo(kind=kind, message=message))
