"""The backend seam: every engine (llama.cpp, vLLM offline, an OpenAI-compatible server) implements `generate`.

A backend receives a batch of requests (chat messages + an optional JSON Schema) and returns one completion per
request, in order. It never raises for one bad request: that request's completion carries the error, so a bulk
run goes on. Whatever a backend promises about the schema, its text is re-validated downstream.
"""

from __future__ import annotations

import codecs
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol, Self, runtime_checkable

from pydantic import BaseModel, ConfigDict

from tagger.clean import Tokenizer
from tagger.prompt import Message
from tagger.schema import OutputSchema


@dataclass(frozen=True)
class Decoding:
    """Sampling settings. Greedy by default, so a rerun gives the same tags."""

    temperature: float = 0.0
    seed: int = 0

    def as_dict(self) -> dict[str, float | int]:
        return {"temperature": self.temperature, "seed": self.seed}


@dataclass(frozen=True)
class Request:
    messages: Sequence[Message]
    schema: OutputSchema | None  # None: unconstrained (benchmarks and the constraint's own test)
    max_tokens: int


@dataclass(frozen=True)
class TokenLogprob:
    """One generated token: its text and the log-probability the model gave it UNDER THE CONSTRAINT, i.e. the
    log-softmax of the logits after the grammar mask (forbidden tokens at -inf), at temperature 1, whatever the
    sampling temperature. A token the constraint forces has logprob 0."""

    text: str
    logprob: float


@dataclass
class Completion:
    text: str = ""
    error: str | None = None
    finish_reason: str = "stop"
    prompt_tokens: int = 0
    completion_tokens: int = 0
    seconds: float = 0.0
    extra: dict[str, object] = field(default_factory=dict)
    # The generated tokens in order, whose texts join to `text` exactly (`joined_tokens` enforces it); the stop
    # token is not among them. Empty when the backend cannot give them (no constraint, a server without logprobs).
    tokens: tuple[TokenLogprob, ...] = ()

    @property
    def ok(self) -> bool:
        return self.error is None


def texts_of_pieces(pieces: Sequence[bytes]) -> list[str]:
    """Each token's text from its raw bytes. Byte-level tokenizers split a character over tokens (an emoji is 4
    bytes): such a character belongs to the token that completes it, the others get "". Invalid bytes are dropped,
    as llama.cpp and vLLM drop them when they build the completion text."""
    decoder = codecs.getincrementaldecoder("utf-8")(errors="ignore")
    texts = [decoder.decode(piece) for piece in pieces]
    if texts:
        texts[-1] += decoder.decode(b"", final=True)
    return texts


def joined_tokens(text: str, tokens: Sequence[TokenLogprob]) -> tuple[TokenLogprob, ...]:
    """`tokens` when their texts join to `text`, else () with nothing recorded: a confidence read off tokens that
    do not spell the answer would be credited to the wrong characters. (A tokenizer whose single-token decode
    differs from its running decode, e.g. a SentencePiece word-start space, is the usual cause.)"""
    if "".join(t.text for t in tokens) != text:
        return ()
    return tuple(tokens)


@runtime_checkable
class Backend(Protocol):
    name: str
    model: str  # what made the output, as it goes into provenance
    decoding: Decoding

    @property
    def grammars(self) -> bool:
        """Whether requests may carry a Lark grammar (`OutputSchema.grammar`) that the backend enforces."""
        ...

    @property
    def tokenizer(self) -> Tokenizer | None:
        """None for a remote server: token budgets are then estimated from characters."""
        ...

    def generate(self, requests: Sequence[Request]) -> list[Completion]:
        """One completion per request, in order; errors are returned, not raised."""
        ...

    def close(self) -> None: ...


class BackendOptions(BaseModel):
    """A backend's typed options, as a spec or an eval config gives them. Every field defaults to None: "the
    backend's own default", so each default is written once, in the backend's constructor."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    def given(self) -> dict[str, Any]:
        """The options that were set, as keyword arguments for the backend's constructor."""
        return self.model_dump(exclude_none=True)

    def for_workers(self, workers: int) -> Self:
        """The options of one of `workers` instances running side by side (shares of cores, of requests in flight)."""
        return self

    def create(self, model: str | None, decoding: Decoding) -> Backend:
        raise NotImplementedError

    def offline(self, model: str | None) -> Backend:
        """The backend's tokenizer without its engine: prompts render and clean exactly, no weights are loaded."""
        raise NotImplementedError


@dataclass
class NoEngine:
    """A backend that only renders: the model's name and tokenizer, no weights (`tagger render`)."""

    name: str
    model: str
    tokenizer: Tokenizer | None
    decoding: Decoding = field(default_factory=Decoding)
    grammars: bool = False

    def generate(self, requests: Sequence[Request]) -> list[Completion]:
        raise RuntimeError(f"the {self.name} backend was built to render prompts only: no model is loaded")

    def close(self) -> None:
        pass
