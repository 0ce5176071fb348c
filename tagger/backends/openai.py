"""Any OpenAI-compatible chat server (`vllm serve`, SGLang, llama.cpp's server): async, bounded, retried.

Requests go out concurrently, at most `concurrency` in flight. A 429, a 5xx, a timeout or a dropped connection is
retried with exponential backoff; after the last try the request's completion carries the error, so one bad row
never stops a bulk run. The schema goes out as vLLM's `structured_outputs` extra body or as the standard
`response_format` json_schema (`structured="response_format"`). The API key is sent, never logged.
"""

from __future__ import annotations

import asyncio
import os
import random
import time
from collections.abc import Sequence
from typing import Any, Literal

import httpx

from tagger.backends.base import (
    Backend,
    BackendOptions,
    Completion,
    Decoding,
    NoEngine,
    Request,
    TokenLogprob,
    joined_tokens,
    texts_of_pieces,
)

Structured = Literal["structured_outputs", "response_format"]
RETRY_STATUS = {408, 409, 429, 500, 502, 503, 504}
ENV_BASE_URL = "TAGGER_OPENAI_BASE_URL"
ENV_MODEL = "TAGGER_OPENAI_MODEL"
ENV_API_KEY = "TAGGER_OPENAI_API_KEY"
DEFAULT_CONCURRENCY = 8


def request_body(
    request: Request, model: str, decoding: Decoding, structured: Structured, logprobs: bool = True
) -> dict[str, Any]:
    """The JSON body for one chat completion (no network: tested on its own)."""
    body: dict[str, Any] = {
        "model": model,
        "messages": [m.as_dict() for m in request.messages],
        "max_tokens": request.max_tokens,
        "temperature": decoding.temperature,
        "seed": decoding.seed,
    }
    if logprobs:  # the chosen token's logprob only (no top_logprobs): a few bytes a token
        body["logprobs"] = True
    if request.schema is not None:
        if structured == "structured_outputs":
            body["structured_outputs"] = {"json": request.schema.json_schema}
        else:
            body["response_format"] = {
                "type": "json_schema",
                "json_schema": {
                    "name": request.schema.name.replace(":", "_")[:64],
                    "schema": request.schema.json_schema,
                },
            }
    return body


def parse_response(data: dict[str, Any]) -> Completion:
    choice = data["choices"][0]
    usage = data.get("usage") or {}
    completion = Completion(
        text=(choice.get("message") or {}).get("content") or "",
        finish_reason=choice.get("finish_reason") or "stop",
        prompt_tokens=int(usage.get("prompt_tokens") or 0),
        completion_tokens=int(usage.get("completion_tokens") or 0),
    )
    completion.tokens = parse_logprobs(choice.get("logprobs"), completion.text)
    return completion


def parse_logprobs(logprobs: Any, text: str) -> tuple[TokenLogprob, ...]:
    """The tokens of `choices[0].logprobs.content` (`{token, logprob, bytes}` each), or () when the server sent none,
    left one out, or its tokens do not spell the text. The texts come from `bytes` where every token has them (a
    character split over tokens is then whole in the token that completes it), else from `token`; whichever joins
    to the text is kept. vLLM's logprobs are after the structured-output mask (its runner masks the logits before
    the sampler computes them); other servers' are what they report."""
    content = logprobs.get("content") if isinstance(logprobs, dict) else None
    if not content or any(not isinstance(t, dict) or not isinstance(t.get("logprob"), int | float) for t in content):
        return ()
    values = [min(float(t["logprob"]), 0.0) for t in content]  # float rounding can give a forced token +1e-7
    spellings = []
    if all(isinstance(t.get("bytes"), list) for t in content):
        spellings.append(texts_of_pieces([bytes(t["bytes"]) for t in content]))
    if all(isinstance(t.get("token"), str) for t in content):
        spellings.append([t["token"] for t in content])
    for texts in spellings:
        tokens = [TokenLogprob(t, v) for t, v in zip(texts, values, strict=True)]
        # vLLM lists the end-of-sequence token too ("<|im_end|>"), with no text in the answer: left out
        joined = joined_tokens(text, tokens) or joined_tokens(text, tokens[:-1])
        if joined:
            return joined
    return ()


class OpenAIBackend:
    name = "openai"
    grammars = False  # a server's grammar dialect is unknown: JSON Schema only, spans checked after
    tokenizer = None  # the server's tokenizer is remote: token budgets are estimated

    def __init__(
        self,
        base_url: str | None = None,
        model: str | None = None,
        *,
        api_key: str | None = None,
        structured: Structured = "structured_outputs",
        logprobs: bool = True,
        concurrency: int = DEFAULT_CONCURRENCY,
        timeout_s: float = 120.0,
        retries: int = 3,
        backoff_s: float = 0.5,
        decoding: Decoding | None = None,
        transport: httpx.AsyncBaseTransport | None = None,
    ) -> None:
        url = base_url or os.environ.get(ENV_BASE_URL)
        if not url:
            raise ValueError(f"the openai backend needs a base URL (--base-url or ${ENV_BASE_URL})")
        self.base_url = url.rstrip("/")
        self.model = model or os.environ.get(ENV_MODEL) or ""
        self._api_key = api_key or os.environ.get(ENV_API_KEY) or os.environ.get("OPENAI_API_KEY")
        self.structured: Structured = structured
        self.logprobs = logprobs  # off for a server that refuses the field
        self.concurrency = concurrency
        self.timeout_s = timeout_s
        self.retries = retries
        self.backoff_s = backoff_s
        self.decoding = decoding or Decoding()
        self._transport = transport

    def __repr__(self) -> str:  # the key stays out of logs and tracebacks
        return f"OpenAIBackend(base_url={self.base_url!r}, model={self.model!r}, structured={self.structured!r})"

    def _client(self) -> httpx.AsyncClient:
        headers = {"Authorization": f"Bearer {self._api_key}"} if self._api_key else {}
        limits = httpx.Limits(max_connections=self.concurrency, max_keepalive_connections=self.concurrency)
        return httpx.AsyncClient(
            base_url=self.base_url, headers=headers, timeout=self.timeout_s, limits=limits, transport=self._transport
        )

    def generate(self, requests: Sequence[Request]) -> list[Completion]:
        return asyncio.run(self.agenerate(requests))

    async def agenerate(self, requests: Sequence[Request]) -> list[Completion]:
        if not self.model:
            self.model = await self._served_model()
        gate = asyncio.Semaphore(self.concurrency)
        async with self._client() as client:

            async def one(request: Request) -> Completion:
                async with gate:
                    return await self._post(client, request)

            return list(await asyncio.gather(*(one(r) for r in requests)))

    async def _served_model(self) -> str:
        """The first model the server lists, when none was named."""
        async with self._client() as client:
            response = await client.get("/models")
            response.raise_for_status()
            return str(response.json()["data"][0]["id"])

    async def _post(self, client: httpx.AsyncClient, request: Request) -> Completion:
        body = request_body(request, self.model, self.decoding, self.structured, self.logprobs)
        start = time.perf_counter()
        error = ""
        for attempt in range(self.retries + 1):
            if attempt:
                # Exponential backoff with jitter, so retrying clients do not stampede a recovering server.
                await asyncio.sleep(self.backoff_s * 2 ** (attempt - 1) * (1 + random.random()))
            try:
                response = await client.post("/chat/completions", json=body)
            except httpx.TransportError as exc:  # refused, dropped, timed out
                error = f"{type(exc).__name__}: {exc}"
                continue
            if response.status_code in RETRY_STATUS:
                error = f"HTTP {response.status_code}: {response.text[:200]}"
                continue
            if response.status_code >= 400:
                error = f"HTTP {response.status_code}: {response.text[:200]}"
                break  # a client error will not get better by asking again
            completion = parse_response(response.json())
            completion.seconds = time.perf_counter() - start
            completion.extra["attempts"] = attempt + 1
            return completion
        return Completion(error=f"{error} (after {attempt + 1} tries)", seconds=time.perf_counter() - start)

    def close(self) -> None:
        pass


class OpenAIOptions(BackendOptions):
    base_url: str | None = None  # default: $TAGGER_OPENAI_BASE_URL
    api_key: str | None = None  # default: $TAGGER_OPENAI_API_KEY or $OPENAI_API_KEY; never logged
    structured: Structured | None = None
    concurrency: int | None = None  # requests in flight
    timeout_s: float | None = None
    retries: int | None = None
    backoff_s: float | None = None

    def for_workers(self, workers: int) -> OpenAIOptions:
        total = self.concurrency or DEFAULT_CONCURRENCY  # the requests in flight over all workers
        return self.model_copy(update={"concurrency": max(1, -(-total // max(1, workers)))})

    def create(self, model: str | None, decoding: Decoding) -> Backend:
        return OpenAIBackend(model=model, decoding=decoding, **self.given())

    def offline(self, model: str | None) -> Backend:
        return NoEngine(OpenAIBackend.name, model or "", None)
