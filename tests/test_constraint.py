"""The constraint really holds on the real model, and the same prompt without it really escapes the taxonomy."""

from __future__ import annotations

import json

from tagger.backends import Request
from tagger.backends.llamacpp import LlamaCppBackend
from tagger.prompt import Message
from tagger.schema import SchemaSet, with_spans
from tagger.taxonomy import Taxonomy
from tagger.validate import find_span

BEGGING = [
    Message("system", "You answer with JSON only."),
    Message("user", 'Reply with exactly this JSON and nothing else: {"color": ["Chartreuse"], "brand": "Zorblax"}'),
]


def test_without_the_constraint_the_model_leaves_the_taxonomy(backend: LlamaCppBackend) -> None:
    [completion] = backend.generate([Request(BEGGING, None, 120)])
    assert completion.ok
    assert "Chartreuse" in completion.text  # the value the prompt begs for, which the taxonomy does not have


def test_with_the_constraint_every_value_is_in_the_taxonomy(
    backend: LlamaCppBackend, default_taxonomy: Taxonomy
) -> None:
    schema = SchemaSet(default_taxonomy).attributes("t-shirts")
    assert schema is not None
    [completion] = backend.generate([Request(BEGGING, schema, 384)])
    assert completion.ok, completion.error
    answer = json.loads(completion.text)
    assert list(answer) == list(schema.json_schema["properties"])  # closed object, every key, schema order
    assert set(answer["color"]) <= set(default_taxonomy.attributes["color"].values)
    assert "Chartreuse" not in completion.text
    schema.model.model_validate(answer)  # the pydantic model agrees


def test_category_constraint_on_the_full_shopify_taxonomy(backend: LlamaCppBackend, shopify: Taxonomy) -> None:
    ask = [Message("user", 'Reply with {"category": "Chartreuse Widgets > Deluxe"}')]
    [completion] = backend.generate([Request(ask, SchemaSet(shopify).category, 96)])
    assert completion.ok, completion.error
    assert json.loads(completion.text)["category"] in shopify.by_path


def test_greedy_decoding_is_repeatable(backend: LlamaCppBackend, default_taxonomy: Taxonomy) -> None:
    schema = SchemaSet(default_taxonomy).category
    ask = [Message("user", "Which category fits 'stainless steel kettle'?")]
    first, second = backend.generate([Request(ask, schema, 96), Request(ask, schema, 96)])
    assert first.text == second.text
    assert first.prompt_tokens > 0 and first.completion_tokens > 0


def test_a_prompt_over_the_context_is_that_request_s_error(backend: LlamaCppBackend) -> None:
    huge = [Message("user", "word " * 6000)]
    short = [Message("user", "Say hi")]
    failed, fine = backend.generate([Request(huge, None, 8), Request(short, None, 8)])
    assert not failed.ok and "context" in (failed.error or "").lower()
    assert fine.ok


def test_extractive_values_are_held_to_spans_of_the_text_while_decoding(
    backend: LlamaCppBackend, default_taxonomy: Taxonomy
) -> None:
    schema = SchemaSet(default_taxonomy).attributes("t-shirts")
    assert schema is not None
    text = 'Northwind "Classic" crew-neck tee\nSoft organic cotton, navy'
    spanned = with_spans(schema, default_taxonomy.attributes_for("t-shirts"), text)
    assert spanned.grammar is not None and spanned.hash != schema.hash
    plain, held = backend.generate([Request(BEGGING, schema, 384), Request(BEGGING, spanned, 384)])
    assert json.loads(plain.text)["brand"] == "Zorblax"  # the JSON Schema alone lets the model invent a brand
    brand = json.loads(held.text)["brand"]
    assert brand is None or find_span(brand, text) is not None, held.text  # the grammar does not
    assert "Zorblax" not in held.text
    schema.model.model_validate(json.loads(held.text))  # still the same JSON answer
