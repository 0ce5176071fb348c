"""Token logprobs -> value probabilities: hand-made token lists for the mapping, then the real model's tokens."""

from __future__ import annotations

import json
import math
from collections.abc import Sequence
from typing import Any

import pytest

from tagger.backends import Request
from tagger.backends.base import TokenLogprob, joined_tokens, texts_of_pieces
from tagger.backends.llamacpp import LlamaCppBackend
from tagger.confidence import (
    attribute_probabilities,
    category_probability,
    token_offsets,
    value_probabilities,
)
from tagger.prompt import Message
from tagger.schema import SchemaSet, with_spans
from tagger.schema.build import category_schema
from tagger.taxonomy import Taxonomy


def _tokens(*pairs: tuple[str, float]) -> list[TokenLogprob]:
    """Tokens from (text, probability) pairs."""
    return [TokenLogprob(text, math.log(p)) for text, p in pairs]


# --- the mapping, on hand-made tokens --------------------------------------------------------------------------


def test_category_probability_is_the_product_over_the_path_s_tokens() -> None:
    tokens = _tokens(('{"', 1.0), ("category", 1.0), ('":"', 1.0), ("Tops", 0.5), (" > ", 0.8), ("Shirts", 0.25))
    tokens += _tokens(('"}', 1.0))
    text = '{"category":"Tops > Shirts"}'
    assert category_probability(text, tokens) == pytest.approx(0.5 * 0.8 * 0.25)


def test_a_token_over_the_closing_quote_and_the_comma_counts_for_both_items() -> None:
    text = '{"color":["Navy","Red"],"size":null}'
    tokens = _tokens(
        ('{"color":["', 0.8),  # the list is not null and not empty
        ("Navy", 0.5),
        ('","', 0.6),  # closes Navy and goes on with the list
        ("Red", 0.7),
        ('"],"', 0.9),  # closes Red and the list, opens the next key's quote
        ('size":', 1.0),
        ("null", 0.4),
        ("}", 1.0),
    )
    found = value_probabilities(text, tokens)
    assert [(v.key, v.index, v.value) for v in found] == [
        ("color", 0, "Navy"),
        ("color", 1, "Red"),
        ("size", None, None),
    ]
    navy, red, size = (v.probability for v in found)
    assert navy == pytest.approx(0.8 * 0.5 * 0.6)
    assert red == pytest.approx(0.6 * 0.7 * 0.9)  # the comma that continued the list, the spelling, the close
    # the key's opening quote is in '"],"': the token before the key's name is not charged to size
    assert size == pytest.approx(1.0 * 0.4)
    assert attribute_probabilities(text, tokens) == {
        "color": {"Navy": pytest.approx(0.24), "Red": pytest.approx(0.378)},
        "size": {None: pytest.approx(0.4)},
    }


def test_null_against_a_value_is_decided_by_the_token_that_opens_the_value() -> None:
    text = '{"fit":"Slim","brand":null}'
    tokens = _tokens(('{"', 1), ("fit", 1), ('":"', 0.3), ("Slim", 0.9), ('","', 1), ("brand", 1), ('":', 1))
    tokens += _tokens(("null", 0.6), ("}", 1))
    assert attribute_probabilities(text, tokens) == {
        "fit": {"Slim": pytest.approx(0.3 * 0.9)},
        "brand": {None: pytest.approx(0.6)},
    }


def test_an_empty_list_is_the_probability_of_no_value_and_repeats_keep_the_first() -> None:
    text = '{"material":[],"color":["Red","Red"]}'
    tokens = _tokens(('{"material":[', 0.9), ("]", 0.2), (',"color":["', 1), ("Red", 0.5), ('","', 0.5))
    tokens += _tokens(("Red", 0.1), ('"]}', 1))
    found = attribute_probabilities(text, tokens)
    assert found["material"] == {None: pytest.approx(0.9 * 0.2)}
    assert found["color"] == {"Red": pytest.approx(0.5 * 0.5)}


def test_whitespace_numbers_and_a_token_split_inside_a_value() -> None:
    text = '{ "n" : 12 , "tags" : [ "a b" ] }'
    tokens = _tokens(('{ "', 1), ('n" : 1', 0.5), ("2 , ", 0.5), ('"tags" : [ "a', 0.25), (' b" ] }', 1))
    found = {(v.key, v.index): v for v in value_probabilities(text, tokens)}
    assert found["n", None].value == 12 and found["n", None].probability == pytest.approx(0.25)
    assert found["tags", 0].value == "a b" and found["tags", 0].probability == pytest.approx(0.25)


def test_an_empty_token_covers_the_character_the_next_token_completes() -> None:
    # "é" in two byte tokens: the first decodes to nothing, the second to the whole character
    texts = texts_of_pieces([b'{"c":"caf', b"\xc3", b"\xa9", b'"}'])
    assert texts == ['{"c":"caf', "", "é", '"}']
    text = '{"c":"café"}'
    tokens = [TokenLogprob(t, math.log(p)) for t, p in zip(texts, [0.5, 0.5, 1.0, 1.0], strict=True)]
    assert token_offsets(text, tokens)[1] == (9, 10)
    assert category_probability(text, tokens) is None
    assert attribute_probabilities(text, tokens) == {"c": {"café": pytest.approx(0.25)}}


def test_tokens_that_do_not_spell_the_answer_are_refused() -> None:
    text = '{"category":"A"}'
    wrong = _tokens(('{"category":"', 1), ("B", 0.5), ('"}', 1))
    assert joined_tokens(text, wrong) == ()
    with pytest.raises(ValueError, match="do not join"):
        value_probabilities(text, wrong)
    with pytest.raises(ValueError, match=r"not a JSON answer|expected"):
        value_probabilities('{"category":"A', _tokens(('{"category":"A', 1)))
    assert value_probabilities(text, []) == [] and category_probability(text, []) is None


# --- the real model: the logprobs are recorded after the mask ---------------------------------------------------

ASK = [Message("system", "You answer with JSON only."), Message("user", "Which category fits 'Blue denim jeans'?")]


def _check_tokens(completion: Any) -> None:
    assert completion.ok, completion.error
    assert completion.tokens, completion.extra
    assert "".join(t.text for t in completion.tokens) == completion.text
    assert len(completion.tokens) == completion.completion_tokens  # every token but the stop token, once
    assert all(math.isfinite(t.logprob) and t.logprob <= 0 for t in completion.tokens)


def test_a_single_allowed_value_has_probability_one(backend: LlamaCppBackend, default_taxonomy: Taxonomy) -> None:
    # The raw distribution puts mass elsewhere (the model would rather write prose); under the mask nothing else
    # is allowed, so every recorded token is certain. A recorder reading the logits before the mask fails here.
    only = default_taxonomy.categories["skirts"]
    [completion] = backend.generate([Request(ASK, category_schema([only]), 96)])
    _check_tokens(completion)
    assert json.loads(completion.text) == {"category": only.full_path}
    assert all(t.logprob == pytest.approx(0.0, abs=1e-5) for t in completion.tokens)
    assert category_probability(completion.text, completion.tokens) == pytest.approx(1.0, abs=1e-4)


def test_category_and_attribute_answers_carry_their_tokens(
    backend: LlamaCppBackend, default_taxonomy: Taxonomy
) -> None:
    choices = [default_taxonomy.categories[c] for c in ("t-shirts", "jeans", "shirts", "skirts")]
    [category] = backend.generate([Request(ASK, category_schema(choices), 96)])
    _check_tokens(category)
    probability = category_probability(category.text, category.tokens)
    assert probability is not None and 0 < probability < 1  # four real alternatives: not certain
    schemas = SchemaSet(default_taxonomy)
    products = ["Riverstone Slim Fit Stretch Jeans for Men - Black", "Lumen Women's Floral Wrap Dress, Long Sleeve"]
    for title, category_id in zip(products, ("jeans", "dresses"), strict=True):
        schema = schemas.attributes(category_id)
        assert schema is not None
        attributes = default_taxonomy.attributes_for(category_id)
        ask = [Message("user", f"Attributes of: {title}")]
        [answer] = backend.generate([Request(ask, with_spans(schema, attributes, title), 256)])
        _check_tokens(answer)
        found = attribute_probabilities(answer.text, answer.tokens)
        assert set(found) == set(json.loads(answer.text))
        assert all(0 < p <= 1 for values in found.values() for p in values.values())


def test_sampled_tokens_are_tracked_by_the_next_step_s_input(default_taxonomy: Taxonomy) -> None:
    # With sampling the drawn token is often not the argmax: the recorder learns it from the next step's input
    # ids. Token texts come from those ids, so a recorder that assumed the argmax would not spell the text.
    from tagger.backends import Decoding

    engine = LlamaCppBackend(decoding=Decoding(temperature=1.5, seed=7))
    try:
        schema = SchemaSet(default_taxonomy).attributes("jeans")
        ask = [Message("user", "Attributes of: Riverstone Slim Fit Stretch Jeans for Men - Black")]
        completions = engine.generate(
            [Request(ask, schema, 256), Request(ASK, SchemaSet(default_taxonomy).category, 96)]
        )
    finally:
        engine.close()
    for completion in completions:
        _check_tokens(completion)  # also when cut at max_tokens: the last token is then found from the text
        if completion.finish_reason == "stop":
            assert value_probabilities(completion.text, completion.tokens)


def _score(
    backend: LlamaCppBackend, messages: Sequence[Message], schema: Any, path: Sequence[int]
) -> list[TokenLogprob]:
    """The recorded tokens when the sampler is made to write the token ids `path` under `schema`'s mask: a second
    processor, after tagger's, keeps only the next token of the path, so the recorder sees the masked distribution
    and a chosen token that is mostly not its argmax."""
    import numpy as np
    from llama_cpp import LogitsProcessorList

    llama = backend._llama
    forced = [*path, llama.token_eos()]
    step = {"n": 0}

    def force(input_ids: Any, logits: Any) -> Any:
        keep = forced[min(step["n"], len(forced) - 1)]
        step["n"] += 1
        out = np.full_like(logits, -np.inf)
        out[keep] = logits[keep]
        return out

    processor = backend._build_processor(schema)
    llama.create_chat_completion(
        messages=[m.as_dict() for m in messages],  # type: ignore[misc]
        max_tokens=len(forced) + 2,
        temperature=0.0,
        logits_processor=LogitsProcessorList([processor, force]),
    )
    ids = [token for token, _ in processor.recorder.chosen]
    assert ids == list(path)  # the path's tokens, in order; the stop token is not listed
    texts = texts_of_pieces([llama.detokenize([t]) for t in ids])
    return [TokenLogprob(t, lp) for t, (_, lp) in zip(texts, processor.recorder.chosen, strict=True)]


def test_alternatives_of_an_enum_share_at_most_the_whole_mass(
    backend: LlamaCppBackend, default_taxonomy: Taxonomy
) -> None:
    choices = [default_taxonomy.categories[c] for c in ("t-shirts", "jeans", "shirts", "skirts")]
    schema = category_schema(choices)
    scored = {}
    for choice in choices:
        answer = json.dumps({"category": choice.full_path}, separators=(",", ":"))
        tokens = _score(backend, ASK, schema, backend.tokenizer.encode(answer))
        assert all(math.isfinite(t.logprob) and t.logprob <= 0 for t in tokens)  # every forced token was allowed
        probability = category_probability(answer, tokens)
        assert probability is not None
        scored[choice.full_path] = probability
    # Each alternative possible, none certain, together at most 1. They sum to much less: llguidance lets the
    # model spell a path in other tokens (" " then "S" then "h"...), and those token paths hold the rest.
    assert all(0 < p < 1 for p in scored.values()), scored
    assert sum(scored.values()) <= 1 + 1e-6, scored
    # A recorder that gave whatever token was drawn the argmax's logprob would score these alike.
    assert len({round(p, 6) for p in scored.values()}) == len(scored), scored


def test_a_free_answer_rescored_token_by_token_gets_the_same_logprobs(
    backend: LlamaCppBackend, default_taxonomy: Taxonomy
) -> None:
    schema = category_schema([default_taxonomy.categories[c] for c in ("t-shirts", "jeans", "shirts", "skirts")])
    [free] = backend.generate([Request(ASK, schema, 96)])
    _check_tokens(free)
    path = [backend.tokenizer.encode(t.text) for t in free.tokens]
    assert all(len(ids) == 1 for ids in path)  # each recorded text is one token of the vocabulary
    forced = _score(backend, ASK, schema, [ids[0] for ids in path])
    assert [t.text for t in forced] == [t.text for t in free.tokens]
    assert [t.logprob for t in forced] == pytest.approx([t.logprob for t in free.tokens], abs=1e-4)
    assert any(t.logprob < -0.01 for t in forced)  # a real choice was made somewhere


# --- vLLM's output shape (the engine itself runs in tests/vllm/) ------------------------------------------------


def _vllm_output(text: str, finish: str, *tokens: tuple[int, str | None, float]) -> Any:
    """A stand-in for vLLM 0.32's CompletionOutput: token ids, and per position {sampled id: Logprob}."""
    from types import SimpleNamespace

    positions = [{i: SimpleNamespace(logprob=lp, rank=1, decoded_token=t)} for i, t, lp in tokens]
    return SimpleNamespace(text=text, finish_reason=finish, token_ids=[i for i, _, _ in tokens], logprobs=positions)


def test_vllm_outputs_give_their_sampled_tokens_without_the_stop_token() -> None:
    from tagger.backends.vllm import output_tokens

    output = _vllm_output('{"a":"b"}', "stop", (1, '{"', 0.0), (2, "a", -0.5), (3, '":"', 0.0), (4, 'b"}', -0.25))
    assert [(t.text, t.logprob) for t in output_tokens(output)] == [
        ('{"', 0.0),
        ("a", -0.5),
        ('":"', 0.0),
        ('b"}', -0.25),
    ]
    with_eos = _vllm_output("ok", "stop", (5, "o", -0.1), (6, "k", -0.2), (0, "<|im_end|>", -0.01))
    assert [t.text for t in output_tokens(with_eos)] == ["o", "k"]
    assert output_tokens(_vllm_output("ok", "stop", (5, "o", -0.1), (6, None, -0.2))) == ()
    no_logprobs = _vllm_output("ok", "stop", (5, "o", -0.1))
    no_logprobs.logprobs = None
    assert output_tokens(no_logprobs) == ()
