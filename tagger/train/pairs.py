"""Training pairs: the call the student will get, rendered by the code that tags, and the answer it should give.

The student learns the `--attributes model` attribute call (the category given, the model fills every attribute of
it under the taxonomy's schema): the one call where a trained model can beat string matching, and the one the
evidence strategy narrows (its rival-choice call is the same prompt with fewer attributes). The prompt comes from
`Tagger.render` of a tagger built by `build_tagger` (same template, cleaning and tokenizer as a run), and the answer
is written as the constraint lets the model write it: compact JSON, every attribute in the schema's order, an
extractive value a run of the product text's words (`span_text`), null or [] where the label says nothing.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from tagger.build import BackendSpec, Narrowing, TaggerSpec, build_tagger
from tagger.pipeline import Tagger
from tagger.product import ProductError
from tagger.prompt import Message
from tagger.schema import MAX_LIST_ITEMS
from tagger.schema.build import MAX_EXTRACT_CHARS, span_text
from tagger.taxonomy import Attribute, Taxonomy
from tagger.train.pool import Labeled, Problem
from tagger.validate import find_span


@dataclass(frozen=True)
class Pair:
    product_id: str
    messages: list[Message]
    answer: str  # the JSON text the student should generate, before its end-of-turn token


def render_tagger(spec: TaggerSpec, taxonomy: Taxonomy, gguf: str) -> Tagger:
    """A tagger that renders the student's calls: the spec's template and cleaning, the attribute stage of the
    `model` strategy, and the tokenizer of the GGUF the student starts from (no weights are loaded)."""
    student = spec.model_copy(
        update={
            "attributes": "model",
            "narrowing": Narrowing(shortlist=0),  # the category is given: nothing to narrow, no embedder to load
            "backend": BackendSpec(name="llamacpp", model=gguf),
        }
    )
    return build_tagger(student, taxonomy=taxonomy, load_model=False)


def render_pairs(tagger: Tagger, items: Sequence[Labeled]) -> tuple[list[Pair], list[Problem]]:
    pairs: list[Pair] = []
    problems: list[Problem] = []
    for item in items:
        try:
            pairs.append(render_pair(tagger, item))
        except ProductError as exc:
            problems.append(Problem(item.row, item.product.id, exc.detail))
    return pairs, problems


def render_pair(tagger: Tagger, item: Labeled) -> Pair:
    rendered = tagger.render(item.product, item.category)
    if rendered.stage != "attributes" or not rendered.messages:
        raise ProductError("no_attributes", f"category {item.category.full_path!r} has no attributes", item.product.id)
    text = tagger.cleaner.clean(item.product).product.text  # the text the constraint draws spans from
    attributes = tagger.taxonomy.attributes_for(item.category.id)
    answer = {a.handle: _answer_value(a, item.attributes.get(a.handle, []), text, item.product.id) for a in attributes}
    return Pair(item.product.id, rendered.messages, json.dumps(answer, ensure_ascii=False, separators=(",", ":")))


def _answer_value(attribute: Attribute, values: list[str], text: str, product_id: str) -> Any:
    if not attribute.extractive:
        kept = [v for v in values if v in attribute.values]  # the pool reader refused any other
        return kept[:MAX_LIST_ITEMS] if attribute.multi else (kept[0] if kept else None)
    if not values:
        return None
    # A gold attribute may list several accepted spellings: the first the constraint can write is the answer.
    for value in values:
        found = find_span(value, text)
        span = span_text(found) if found else ""
        if span and len(span) <= MAX_EXTRACT_CHARS and span in span_text(text):
            return span
    # Training on null would teach the student to miss a value the label says is there: the row is skipped.
    raise ProductError(
        "value_not_in_text", f"{attribute.handle}={values[0][:80]!r} is not in the product's (cleaned) text", product_id
    )
