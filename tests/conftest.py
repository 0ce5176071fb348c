"""Shared fixtures: the real embedded model (loaded once), the real taxonomies from ../shared/data."""

from __future__ import annotations

import importlib.util
from collections.abc import Iterator, Sequence
from pathlib import Path

import pytest

from tagger.backends import Backend, Completion, Request
from tagger.backends.llamacpp import LlamaCppBackend
from tagger.evals.config import default_data_root
from tagger.pipeline import Tagger
from tagger.taxonomy import Taxonomy, load_taxonomy

ROOT = Path(__file__).resolve().parent.parent
# tests/vllm needs vLLM's own environment (.venv-vllm, `make test-vllm`); elsewhere it is not collected.
collect_ignore = [] if importlib.util.find_spec("vllm") else ["vllm"]

# Where the shared datasets live; point TAGGER_DATA_ROOT at your own copy.
DATA_ROOT = default_data_root()
SHOPIFY_DIR = DATA_ROOT / "shopify-taxonomy"
GOOGLE_FILE = DATA_ROOT / "google-taxonomy" / "taxonomy-with-ids.en-US.txt"
SAMPLE_CATALOG = ROOT / "examples" / "catalog.jsonl"


class RecordingBackend:
    """The real backend, keeping every request it receives (to count model calls, or look at a prompt)."""

    def __init__(self, inner: Backend) -> None:
        self.inner = inner
        self.name, self.model, self.decoding, self.tokenizer = inner.name, inner.model, inner.decoding, inner.tokenizer
        self.grammars = inner.grammars
        self.requests: list[Request] = []

    def generate(self, requests: Sequence[Request]) -> list[Completion]:
        self.requests.extend(requests)
        return self.inner.generate(requests)

    def close(self) -> None:
        pass  # the session's backend outlives this wrapper


@pytest.fixture(scope="session")
def data_root() -> Path:
    if not DATA_ROOT.is_dir():
        pytest.fail(f"shared data not found at {DATA_ROOT}; set TAGGER_DATA_ROOT")
    return DATA_ROOT


@pytest.fixture(scope="session")
def default_taxonomy() -> Taxonomy:
    return load_taxonomy()


@pytest.fixture(scope="session")
def shopify(data_root: Path) -> Taxonomy:
    return load_taxonomy(f"shopify:{SHOPIFY_DIR}")


@pytest.fixture(scope="session")
def backend() -> Iterator[LlamaCppBackend]:
    engine = LlamaCppBackend()
    yield engine
    engine.close()


@pytest.fixture(scope="session")
def tagger(backend: LlamaCppBackend, default_taxonomy: Taxonomy) -> Tagger:
    return Tagger(default_taxonomy, backend)
