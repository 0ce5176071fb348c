"""The OpenAI-compatible adapter without a server: request bodies, responses, retries and per-row errors.

The real server (`vllm serve`) is exercised in tests/vllm/; here httpx's transport seam stands in for the network.
"""

from __future__ import annotations

import json

import httpx
import pytest

from tagger.backends import Decoding, Request
from tagger.backends.openai import OpenAIBackend, parse_response, request_body
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
