"""Token logprobs from vLLM, offline and served: they spell the answer, and they are after the structured-output
mask: the same tokens under a narrower constraint are more probable, and only where the wider one had a choice.
(Raw logprobs would not depend on the constraint at all.)

A single allowed value is NOT certain here, unlike llama.cpp with llguidance: xgrammar allows every tokenization
of the forced text ("A" "p" "pa" "re" "l"), so mass is lost to other spellings at every step. Measured offline on
2 CPU cores: 44 tokens, probability 8.6e-4 with one allowed category, 4.9e-4 with four; the tokens' logprobs
differed only at the four branch points.
"""

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


def _post_mask(engine: object, taxonomy: Taxonomy) -> None:
    four = [taxonomy.categories[c] for c in ("t-shirts", "jeans", "shirts", "skirts")]
    [wide] = engine.generate([Request(ASK, category_schema(four), 96)])  # type: ignore[attr-defined]
    _check(wide)
    chosen = taxonomy.by_path[wide.text.split('"')[3]]
    [narrow] = engine.generate([Request(ASK, category_schema([chosen]), 96)])  # type: ignore[attr-defined]
    _check(narrow)
    assert [t.text for t in narrow.tokens] == [t.text for t in wide.tokens]  # greedy: the same path
    pairs = list(zip(narrow.tokens, wide.tokens, strict=True))
    assert all(n.logprob >= w.logprob - 1e-4 for n, w in pairs)  # each mask is a subset of the wider one
    assert any(n.logprob > w.logprob + 1e-3 for n, w in pairs)  # and where the wider one let others in, it shows
    narrow_p, wide_p = category_probability(narrow.text, narrow.tokens), category_probability(wide.text, wide.tokens)
    assert narrow_p is not None and wide_p is not None and 0 < wide_p < narrow_p <= 1


def test_offline_logprobs_are_after_the_mask(vllm_backend: object, default_taxonomy: Taxonomy) -> None:
    _post_mask(vllm_backend, default_taxonomy)


def test_served_logprobs_are_after_the_mask(vllm_server: Server, default_taxonomy: Taxonomy) -> None:
    _post_mask(OpenAIBackend(vllm_server.url, concurrency=2), default_taxonomy)
