"""The OpenAI-compatible adapter without a server: request bodies, responses, retries and per-row errors.

The real server (`vllm serve`) is exercised in tests/vllm/; here httpx's transport seam stands in for the network.
"""

from __future__ import annotations

import json

import httpx
import pytest

from tagger.backends import Decoding, Request
from tagger.backends.openai import OpenAIBackend, parse_logprobs, parse_response, request_body
from tagger.prompt import Message
from tagger.schema import SchemaSet
from tagger.taxonomy import Taxonomy

ASK = [Message("user", "hi")]
OK = {
    "choices": [{"message": {"content": '{"a": 1}'}, "finish_reason": "stop"}],
    "usage": {"prompt_tokens": 5, "completion_tokens": 3},
}


def test_request_body_in_both_structured_modes(default_taxonomy: Taxonomy) -> None:
    schema = SchemaSet(default_taxonomy).attributes("t-shirts")
    assert schema is not None
    request = Request(ASK, schema, 64)
    body = request_body(request, "m", Decoding(), "structured_outputs")
    assert body["structured_outputs"] == {"json": schema.json_schema}
    assert (body["model"], body["max_tokens"], body["temperature"], body["messages"]) == (
        "m",
        64,
        0.0,
        [{"role": "user", "content": "hi"}],
    )
    standard = request_body(request, "m", Decoding(), "response_format")
    assert standard["response_format"]["type"] == "json_schema"
    assert standard["response_format"]["json_schema"]["schema"] == schema.json_schema
    assert standard["response_format"]["json_schema"]["name"] == "attributes_t-shirts"
    assert "structured_outputs" not in standard and "response_format" not in body
    assert "structured_outputs" not in request_body(Request(ASK, None, 8), "m", Decoding(), "structured_outputs")


def test_parse_response() -> None:
    completion = parse_response(OK)
    assert (completion.text, completion.prompt_tokens, completion.completion_tokens) == ('{"a": 1}', 5, 3)


def _content(*tokens: tuple[str, float]) -> list[dict[str, object]]:
    """`logprobs.content` as a server sends it: each token's text, logprob and UTF-8 bytes."""
    return [{"token": t, "logprob": lp, "bytes": list(t.encode()), "top_logprobs": []} for t, lp in tokens]


def test_logprobs_are_asked_for_by_default_and_can_be_turned_off() -> None:
    assert request_body(Request(ASK, None, 8), "m", Decoding(), "structured_outputs")["logprobs"] is True
    assert "logprobs" not in request_body(Request(ASK, None, 8), "m", Decoding(), "structured_outputs", False)
    assert "top_logprobs" not in request_body(Request(ASK, None, 8), "m", Decoding(), "structured_outputs")


def test_parse_response_reads_the_token_logprobs() -> None:
    data = {
        "choices": [
            {
                "message": {"content": '{"a":"b"}'},
                "finish_reason": "stop",
                "logprobs": {"content": _content(('{"', 0.0), ("a", -0.5), ('":"', 0.0), ("b", -1.25), ('"}', 0.0))},
            }
        ]
    }
    completion = parse_response(data)
    assert [(t.text, t.logprob) for t in completion.tokens] == [
        ('{"', 0.0),
        ("a", -0.5),
        ('":"', 0.0),
        ("b", -1.25),
        ('"}', 0.0),
    ]
    assert parse_response(OK).tokens == ()  # a server that sends no logprobs: no tokens, the text as ever


def test_a_character_split_over_tokens_is_whole_in_the_token_that_completes_it() -> None:
    # "é" as two byte tokens: each token string alone is a replacement character, the bytes are exact
    content = [
        {"token": '{"c":"caf', "logprob": -0.1, "bytes": list(b'{"c":"caf')},
        {"token": "\ufffd", "logprob": -0.2, "bytes": [0xC3]},
        {"token": "\ufffd", "logprob": -0.3, "bytes": [0xA9]},
        {"token": '"}', "logprob": 0.0, "bytes": list(b'"}')},
    ]
    tokens = parse_logprobs({"content": content}, '{"c":"café"}')
    assert [t.text for t in tokens] == ['{"c":"caf', "", "é", '"}']
    assert [t.logprob for t in tokens] == [-0.1, -0.2, -0.3, 0.0]


def test_logprobs_that_do_not_spell_the_text_or_miss_a_value_are_dropped() -> None:
    assert parse_logprobs({"content": _content(('{"a":', -0.1), ('"x"}', -0.2))}, '{"a":"b"}') == ()
    missing = _content(('{"a":', -0.1), ('"b"}', -0.2))
    missing[1]["logprob"] = None
    assert parse_logprobs({"content": missing}, '{"a":"b"}') == ()
    without_bytes = [{"token": t, "logprob": lp} for t, lp in [('{"a":', -0.1), ('"b"}', -0.2)]]
    assert [t.text for t in parse_logprobs({"content": without_bytes}, '{"a":"b"}')] == ['{"a":', '"b"}']
    assert parse_logprobs(None, "x") == () and parse_logprobs({"content": None}, "x") == ()
    with_eos = parse_logprobs({"content": _content(("o", -0.1), ("k", -0.2), ("<|im_end|>", -0.01))}, "ok")
    assert [t.text for t in with_eos] == ["o", "k"]


def test_the_backend_sends_the_flag_and_returns_the_tokens() -> None:
    bodies: list[dict[str, object]] = []

    def handler(request: httpx.Request) -> httpx.Response:
        bodies.append(json.loads(request.content))
        choice = {
            "message": {"content": "ok"},
            "finish_reason": "stop",
            "logprobs": {"content": _content(("o", -0.25), ("k", -0.5))},
        }
        return httpx.Response(200, json={"choices": [choice]})

    [completion] = _backend(handler).generate([Request(ASK, None, 8)])
    assert bodies[0]["logprobs"] is True
    assert [(t.text, t.logprob) for t in completion.tokens] == [("o", -0.25), ("k", -0.5)]
    _backend(handler, logprobs=False).generate([Request(ASK, None, 8)])
    assert "logprobs" not in bodies[1]


def _backend(handler: object, **options: object) -> OpenAIBackend:
    return OpenAIBackend("http://test/v1", "m", transport=httpx.MockTransport(handler), backoff_s=0.001, **options)  # type: ignore[arg-type]


def test_retries_then_succeeds_and_sends_the_key() -> None:
    seen: list[httpx.Request] = []

    def handler(request: httpx.Request) -> httpx.Response:
        seen.append(request)
        return httpx.Response(429 if len(seen) < 3 else 200, json=OK)

    backend = _backend(handler, api_key="sk-secret")
    [completion] = backend.generate([Request(ASK, None, 8)])
    assert completion.ok and completion.extra["attempts"] == 3
    assert seen[0].headers["authorization"] == "Bearer sk-secret"
    assert json.loads(seen[0].content)["model"] == "m"
    assert "sk-secret" not in repr(backend)


def test_gives_up_with_a_per_row_error() -> None:
    calls = {"n": 0}

    def handler(request: httpx.Request) -> httpx.Response:
        calls["n"] += 1
        if b"bad" in request.content:
            return httpx.Response(400, text="bad request")
        raise httpx.ConnectError("connection refused")

    done = _backend(handler, retries=2).generate([Request(ASK, None, 8), Request([Message("user", "bad")], None, 8)])
    assert done[0].error is not None and "ConnectError" in done[0].error and "after 3 tries" in done[0].error
    assert done[1].error is not None and done[1].error.startswith("HTTP 400") and "after 1 tries" in done[1].error
    assert calls["n"] == 4  # 3 tries for the dropped connection, 1 for the client error


def test_bounded_concurrency() -> None:
    import threading

    lock, state = threading.Lock(), {"now": 0, "peak": 0}

    async def handler(request: httpx.Request) -> httpx.Response:
        import asyncio

        with lock:
            state["now"] += 1
            state["peak"] = max(state["peak"], state["now"])
        await asyncio.sleep(0.01)
        with lock:
            state["now"] -= 1
        return httpx.Response(200, json=OK)

    done = _backend(handler, concurrency=3).generate([Request(ASK, None, 8)] * 12)
    assert all(c.ok for c in done) and state["peak"] == 3


def test_needs_a_base_url(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("TAGGER_OPENAI_BASE_URL", raising=False)
    with pytest.raises(ValueError, match="needs a base URL"):
        OpenAIBackend()
