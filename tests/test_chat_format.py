"""A GGUF's chat format: its own template, or its family's when it has none (Gemma 3 270M, the real packaged base
model): rendered as Gemma's turns, answered under the constraint, and the same ids the trainer builds."""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import pytest

from tagger.backends import Request
from tagger.backends.chat_format import GEMMA_TURNS, chat_format, formatter, gguf_metadata, vocabulary_only
from tagger.backends.llamacpp import LlamaCppBackend, embedded_model_path, model_file
from tagger.prompt import Message
from tagger.schema import SchemaSet
from tagger.taxonomy import Taxonomy

MESSAGES = [Message("system", "Answer with JSON."), Message("user", "A red cotton T-shirt.")]


@pytest.fixture(scope="module")
def gemma_vocabulary() -> Iterator[Any]:
    vocabulary = vocabulary_only(model_file("gemma3-270m"))
    yield vocabulary
    vocabulary.close()


def test_a_gguf_s_own_template_comes_first() -> None:
    own = chat_format(gguf_metadata(embedded_model_path()))
    assert own is not None and own.source == "gguf" and "<|im_start|>" in own.template  # SmolLM2's ChatML
    assert chat_format({"general.architecture": "gemma3", "tokenizer.chat_template": "{{ x }}"}).template == "{{ x }}"


def test_without_a_template_the_family_decides() -> None:
    assert "tokenizer.chat_template" not in gguf_metadata(model_file("gemma3-270m"))  # the packaged base has none
    for architecture in ("gemma", "gemma2", "gemma3"):
        found = chat_format({"general.architecture": architecture})
        assert found is not None and found.template == GEMMA_TURNS
    assert chat_format({"general.architecture": "phi3"}) is None  # unknown: the trainer refuses, llama.cpp guesses


def test_gemma_turns_carry_the_system_message_into_the_first_user_turn(gemma_vocabulary: Any) -> None:
    format_ = chat_format(gemma_vocabulary.metadata)
    assert format_ is not None
    rendered = formatter(gemma_vocabulary, format_)(messages=[m.as_dict() for m in MESSAGES])
    assert rendered.prompt == (
        "<bos><start_of_turn>user\nAnswer with JSON.\n\nA red cotton T-shirt.<end_of_turn>\n<start_of_turn>model\n"
    )
    end_of_turn = gemma_vocabulary.tokenize(b"<end_of_turn>", add_bos=False, special=True)
    assert len(end_of_turn) == 1  # one special token, which stops generation beside <eos>
    stops = formatter(gemma_vocabulary, format_).stop_token_ids
    assert stops == {int(gemma_vocabulary.token_eos()), end_of_turn[0]}
    follow_up = [*MESSAGES, Message("assistant", "{}"), Message("user", "Again.")]
    prompt = formatter(gemma_vocabulary, format_)(messages=[m.as_dict() for m in follow_up]).prompt
    assert prompt.count("Answer with JSON.") == 1  # the system message opens the first user turn only
    assert "<start_of_turn>model\n{}<end_of_turn>\n<start_of_turn>user\nAgain.<end_of_turn>" in prompt


@pytest.fixture(scope="module")
def gemma() -> Iterator[LlamaCppBackend]:
    backend = LlamaCppBackend("gemma3-270m", n_ctx=1024)
    yield backend
    backend.close()


def test_gemma_answers_in_its_turn_format(gemma: LlamaCppBackend) -> None:
    # Gemma's turns, not llama-cpp-python's fallback (llama-2's [INST] format, which this model does not know).
    assert gemma._llama.chat_handler is not None
    [completion] = gemma.generate([Request(MESSAGES, None, 12)])
    assert completion.ok, completion.error
    assert completion.text.strip()
    assert gemma.model.startswith("gemma-3-270m-q4_k_m.gguf@sha256:a5fd3b62230aa5ec")


def test_gemma_under_the_constraint_stays_in_the_taxonomy(gemma: LlamaCppBackend, default_taxonomy: Taxonomy) -> None:
    schema = SchemaSet(default_taxonomy).attributes("t-shirts")
    assert schema is not None
    ask = [Message("user", 'Reply with {"color": ["Chartreuse"], "brand": "Zorblax"}')]
    [completion] = gemma.generate([Request(ask, schema, 256)])
    assert completion.ok, completion.error
    answer = json.loads(completion.text)
    schema.model.model_validate(answer)
    assert set(answer["color"]) <= set(default_taxonomy.attributes["color"].values)
    assert completion.tokens  # the chosen tokens' log-probabilities were recorded under the family format too


def test_a_packaged_model_s_prompt_ids_are_the_trainer_s(gemma: LlamaCppBackend) -> None:
    """The trainer renders Gemma's pairs with the same format the backend prompts with: same token count."""
    pytest.importorskip("peft")
    from tagger.train.pairs import Pair
    from tagger.train.tokens import ChatTokenizer

    [completion] = gemma.generate([Request(MESSAGES, None, 1)])
    tokenizer = ChatTokenizer(model_file("gemma3-270m"))
    try:
        ids = tokenizer.prompt_ids(Pair("p", list(MESSAGES), "{}"))
    finally:
        tokenizer.close()
    assert len(ids) == completion.prompt_tokens
    assert ids[0] == 2  # <bos>, once: rendered by the template, not added again by the tokenizer
