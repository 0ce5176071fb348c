"""Backends: one small adapter per engine behind the `Backend.generate` seam.

Heavy engines are imported inside their adapter only, so `import tagger` needs none of them.
"""

from __future__ import annotations

from typing import Any

from tagger.backends.base import Backend, Completion, Decoding, Request

__all__ = ["BACKENDS", "Backend", "Completion", "Decoding", "Request", "make_backend"]

BACKENDS = ("llamacpp",)


def make_backend(name: str = "llamacpp", **options: Any) -> Backend:
    if name == "llamacpp":
        from tagger.backends.llamacpp import LlamaCppBackend

        return LlamaCppBackend(**options)
    raise ValueError(f"unknown backend {name!r}; choose one of {', '.join(BACKENDS)}")
