"""Backends: one small adapter per engine behind the `Backend.generate` seam.

Heavy engines are imported inside their adapter only, so `import tagger` needs none of them.
"""

from __future__ import annotations

from typing import Any

from tagger.backends.base import Backend, Completion, Decoding, Request

__all__ = ["BACKENDS", "Backend", "Completion", "Decoding", "Request", "make_backend"]

BACKENDS = ("llamacpp", "vllm", "openai")


def make_backend(name: str = "llamacpp", model: str | None = None, **options: Any) -> Backend:
    """A backend by name. `model`: a GGUF file (llamacpp), an HF model folder or id (vllm), a served name (openai)."""
    if name == "llamacpp":
        from tagger.backends.llamacpp import LlamaCppBackend

        return LlamaCppBackend(model, **options)
    if name == "vllm":
        from tagger.backends.vllm import VLLMBackend

        return VLLMBackend(model, **options)
    if name == "openai":
        from tagger.backends.openai import OpenAIBackend

        return OpenAIBackend(model=model, **options)
    raise ValueError(f"unknown backend {name!r}; choose one of {', '.join(BACKENDS)}")
