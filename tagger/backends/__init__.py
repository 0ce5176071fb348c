"""Backends: one small adapter per engine behind the `Backend.generate` seam.

Each adapter module holds its backend and its typed options (a `BackendOptions`); the registry below names the
options class of each, so a new backend is one module, one line here, and its test. Heavy engines are imported
inside their adapter only, so `import tagger` needs none of them.
"""

from __future__ import annotations

import importlib
from collections.abc import Mapping
from typing import Any

from pydantic import ValidationError

from tagger.backends.base import Backend, BackendOptions, Completion, Decoding, NoEngine, Request
from tagger.errors import TaggerError

__all__ = [
    "BACKENDS",
    "Backend",
    "BackendOptions",
    "Completion",
    "Decoding",
    "NoEngine",
    "Request",
    "backend_options",
    "make_backend",
]

# name -> "module:options class"
BACKENDS: dict[str, str] = {
    "llamacpp": "tagger.backends.llamacpp:LlamaCppOptions",
    "vllm": "tagger.backends.vllm:VLLMOptions",
    "openai": "tagger.backends.openai:OpenAIOptions",
}


def backend_options(name: str, options: Mapping[str, Any] | None = None) -> BackendOptions:
    """`options` checked against backend `name`'s option types: a misspelt or mistyped option fails here, by name."""
    if name not in BACKENDS:
        raise TaggerError(f"unknown backend {name!r}; choose one of {', '.join(BACKENDS)}")
    module, _, kind = BACKENDS[name].partition(":")
    options_type: type[BackendOptions] = getattr(importlib.import_module(module), kind)
    try:
        return options_type.model_validate(dict(options or {}))
    except ValidationError as exc:
        problems = "; ".join(f"{'.'.join(map(str, e['loc']))}: {e['msg']}" for e in exc.errors())
        raise TaggerError(f"backend {name} options: {problems}") from exc


def make_backend(
    name: str = "llamacpp",
    model: str | None = None,
    options: Mapping[str, Any] | None = None,
    decoding: Decoding | None = None,
) -> Backend:
    """A backend by name. `model`: a GGUF file (llamacpp), an HF model folder or id (vllm), a served name (openai)."""
    return backend_options(name, options).create(model, decoding or Decoding())
