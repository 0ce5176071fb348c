"""Shared fixtures: the real embedded model (loaded once), the taxonomies shipped with tagger, dataset fixtures.

The default suite needs nothing beside the repository: Shopify's and Google's taxonomies are bundled in the package,
dataset rows come from tests/fixtures/ (see its README). Tests of the real data sets and of the taxonomy source
folders take the `data_root` fixture ($TAGGER_DATA_ROOT, default ../shared/data) and skip where it is missing.
"""

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
FIXTURES = ROOT / "tests" / "fixtures"
# A few dozen rows of each dev set (tests/fixtures/README.md): several categories each.
WDC_PAVE_ROWS = FIXTURES / "wdc-pave.jsonl"
OA_MINE_ROWS = FIXTURES / "oa-mine.jsonl"
FLIPKART_ROWS = FIXTURES / "flipkart.jsonl"


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


@pytest.fixture(scope="session", autouse=True)
def private_cache(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    """Every cache tagger keeps (taxonomies, embeddings, results) goes to a folder of this session, never
    ~/.cache/tagger: a test must not pass on what an earlier run left there. Subprocesses inherit it."""
    folder = tmp_path_factory.mktemp("tagger-cache")
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("TAGGER_CACHE_DIR", str(folder))
        yield folder


@pytest.fixture(scope="session")
def data_root() -> Path:
    """The real data sets (and taxonomy source folders): data-dependent tests skip where they are missing."""
    if not DATA_ROOT.is_dir():
        pytest.skip(f"real data not found at {DATA_ROOT} (set TAGGER_DATA_ROOT to run the tests that need it)")
    return DATA_ROOT


@pytest.fixture(scope="session")
def default_taxonomy() -> Taxonomy:
    return load_taxonomy()


@pytest.fixture(scope="session")
def shopify() -> Taxonomy:
    """Shopify's Standard Product Taxonomy 2025-08, as shipped inside tagger."""
    return load_taxonomy("shopify")


@pytest.fixture(scope="session")
def backend() -> Iterator[LlamaCppBackend]:
    engine = LlamaCppBackend()
    yield engine
    engine.close()


@pytest.fixture(scope="session")
def tagger(backend: LlamaCppBackend, default_taxonomy: Taxonomy) -> Tagger:
    return Tagger(default_taxonomy, backend)
