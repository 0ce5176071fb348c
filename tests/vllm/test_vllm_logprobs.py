"""Token logprobs from vLLM, offline and served: they spell the answer, and they are after the structured-output
mask (a single allowed value comes out certain)."""

from __future__ import annotations

import math

import pytest

from tagger.backends import Completion, Request
from tagger.backends.openai import OpenAIBackend
from tagger.confidence import category_probability
from tagger.prompt import Message
from tagger.schema.build import category_schema
from tagger.taxonomy import Taxonomy
from tests.vllm.conftest import Server

pytestmark = pytest.mark.vllm
ASK = [Message("system", "You answer with JSON only."), Message("user", "Which category fits 'Blue denim jeans'?")]


def _check(completion: Completion) -> None:
    assert completion.ok, completion.error
    assert completion.tokens, completion.extra
    assert "".join(t.text for t in completion.tokens) == completion.text
    assert all(math.isfinite(t.logprob) and t.logprob <= 0 for t in completion.tokens)


def _engines(vllm_backend: object, vllm_server: Server) -> list[object]:
    return [vllm_backend, OpenAIBackend(vllm_server.url, concurrency=2)]


def test_a_single_allowed_value_is_certain(
    vllm_backend: object, vllm_server: Server, default_taxonomy: Taxonomy
) -> None:
    schema = category_schema([default_taxonomy.categories["skirts"]])
    for engine in _engines(vllm_backend, vllm_server):
        [completion] = engine.generate([Request(ASK, schema, 96)])  # type: ignore[attr-defined]
        _check(completion)
        assert category_probability(completion.text, completion.tokens) == pytest.approx(1.0, abs=1e-3)


def test_a_choice_among_several_is_not_certain(
    vllm_backend: object, vllm_server: Server, default_taxonomy: Taxonomy
) -> None:
    schema = category_schema([default_taxonomy.categories[c] for c in ("t-shirts", "jeans", "shirts", "skirts")])
    found = []
    for engine in _engines(vllm_backend, vllm_server):
        [completion] = engine.generate([Request(ASK, schema, 96)])  # type: ignore[attr-defined]
        _check(completion)
        probability = category_probability(completion.text, completion.tokens)
        assert probability is not None and 0 < probability < 1
        found.append((completion.text, probability))
    if found[0][0] == found[1][0]:  # the same answer offline and served: the same probability, up to float noise
        assert found[0][1] == pytest.approx(found[1][1], rel=0.05)
