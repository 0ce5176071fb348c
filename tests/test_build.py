"""One place builds a tagger: the spec's defaults, its checks, the backends' typed options, rendering without a
model, and the command line's one-line errors."""

from __future__ import annotations

import json
import pickle
from pathlib import Path

import pytest
from typer.testing import CliRunner

from tagger.backends import NoEngine, backend_options
from tagger.build import DEFAULT_EXAMPLE_K, DEFAULT_SHORTLIST, BackendSpec, Narrowing, TaggerSpec, build_tagger
from tagger.cli import app
from tagger.errors import TaggerError
from tagger.evals.config import load_config
from tagger.evals.runner import tagger_spec
from tagger.pipeline import Tagger
from tagger.product import Product

ROOT = Path(__file__).resolve().parent.parent
KETTLE = Product("k1", "Stainless steel electric kettle 1.7 L", "Boils water fast.", {"brand": "Acme"})


def test_the_defaults_live_in_one_place() -> None:
    spec = TaggerSpec()
    assert spec.narrowing.shortlist == DEFAULT_SHORTLIST == 1  # retrieval decides the category
    assert spec.narrowing.example_k == DEFAULT_EXAMPLE_K == 3
    assert spec.backend == BackendSpec(name="llamacpp", model=None, options={})
    # The evals build the same tagger as the command line from the same words.
    smoke = tagger_spec(load_config(ROOT / "evals" / "smoke.yaml"), ROOT)
    assert smoke.narrowing == spec.narrowing
    assert smoke.backend == spec.backend


def test_tree_walks_alone() -> None:
    assert Narrowing(tree=True).shortlist == 0
    with pytest.raises(ValueError, match="tree strategy"):
        Narrowing(tree=True, shortlist=10)
    with pytest.raises(ValueError, match="tree strategy"):
        Narrowing(tree=True, examples=Path("pool.jsonl"))


def test_backend_options_are_typed_and_named() -> None:
    with pytest.raises(TaggerError, match="unknown backend 'llama'"):
        BackendSpec(name="llama")
    with pytest.raises(TaggerError, match="backend llamacpp options: n_thread: Extra inputs"):
        BackendSpec(options={"n_thread": 2})
    with pytest.raises(TaggerError, match="backend vllm options: enforce_eager"):
        BackendSpec(name="vllm", options={"enforce_eager": "sometimes"})
    assert backend_options("openai", {"concurrency": 4}).given() == {"concurrency": 4}  # unset options stay unset


def test_options_are_shared_out_between_workers(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("TAGGER_THREADS", "4")
    assert backend_options("llamacpp").for_workers(2).given() == {"n_threads": 2}
    assert backend_options("llamacpp", {"n_threads": 3}).for_workers(2).given() == {"n_threads": 3}  # as asked
    assert backend_options("openai", {"concurrency": 8}).for_workers(3).given() == {"concurrency": 3}
    assert backend_options("llamacpp").for_workers(1).given() == {}


def test_a_spec_is_plain_data() -> None:
    spec = TaggerSpec(
        taxonomy="shopify",
        backend=BackendSpec(name="openai", options={"base_url": "http://127.0.0.1:1/v1"}),
        narrowing=Narrowing(shortlist=10, examples=Path("pool.jsonl"), example_k=5),
    )
    assert pickle.loads(pickle.dumps(spec)) == spec
    assert TaggerSpec.model_validate(json.loads(spec.describe())) == spec


def test_render_needs_no_model_weights(tagger: Tagger) -> None:
    """`load_model=False` gives the tokenizer only; the messages are those of a loaded tagger, token cuts included."""
    long = Product("long", "Kettle " + "steel " * 200, "word " * 2_000, {"brand": "Acme"})
    renderer = build_tagger(TaggerSpec(narrowing=Narrowing(shortlist=0)), load_model=False)
    try:
        assert isinstance(renderer.backend, NoEngine)
        assert renderer.backend.model == tagger.backend.model
        with pytest.raises(RuntimeError, match="render prompts only"):
            renderer.backend.generate([])
        for product in (KETTLE, long):
            assert renderer.render(product).messages == tagger.render(product).messages
    finally:
        renderer.close()


def test_cli_errors_are_one_line(tmp_path: Path) -> None:
    runner = CliRunner()
    missing = runner.invoke(app, ["tag", "--title", "Kettle", "--taxonomy", str(tmp_path / "none.yaml")])
    assert missing.exit_code == 1
    assert "taxonomy file not found" in missing.output
    assert "Traceback" not in missing.output
    pool = tmp_path / "pool.jsonl"
    pool.write_text('{"id": "a", "title": "Kettle"\n')
    broken = runner.invoke(app, ["render", "--title", "Kettle", "--examples", str(pool)])
    assert broken.exit_code == 1
    assert f"example pool {pool}, line 1: not JSON" in " ".join(broken.output.split())
    wrong = runner.invoke(app, ["tag", "--title", "Kettle", "--tree", "--shortlist", "10"])
    assert wrong.exit_code == 1
    assert "tree strategy" in wrong.output
    no_data = runner.invoke(app, ["eval", str(ROOT / "evals" / "wdc-pave.yaml"), "--data-root", str(tmp_path)])
    assert no_data.exit_code == 1
    assert "eval wdc-pave: dataset not found" in " ".join(no_data.output.split())
    assert "Traceback" not in no_data.output


_THREADS = """
import sys
import numpy
from threadpoolctl import threadpool_info
from tagger.build import Narrowing, TaggerSpec, build_tagger
from tagger.evidence.judge import _Trees
if sys.argv[1] == "build":
    build_tagger(TaggerSpec(narrowing=Narrowing(shortlist=0)), load_model=False)
    _Trees.fit(numpy.arange(40.0).reshape(20, 2), numpy.arange(20) % 2)  # the judge loads scikit-learn's OpenMP
else:
    import sklearn.ensemble
most = {}  # per API, its largest pool: every pool capped when it is 1
for pool in threadpool_info():
    most[pool["user_api"]] = max(most.get(pool["user_api"], 0), pool["num_threads"])
print(most)
"""


def _threads(threads: str, build: bool) -> dict[str, int]:
    import os
    import subprocess
    import sys

    command = [sys.executable, "-c", _THREADS, "build" if build else "none"]
    env = {**os.environ, "TAGGER_THREADS": threads}
    env.pop("OMP_NUM_THREADS", None)
    run = subprocess.run(command, env=env, capture_output=True, text=True, check=True)
    found: dict[str, int] = json.loads(run.stdout.strip().splitlines()[-1].replace("'", '"'))
    assert {"blas", "openmp"} <= set(found), found
    return found


def test_tagger_threads_caps_blas_and_openmp() -> None:
    """`$TAGGER_THREADS` caps numpy's BLAS (MiniLM's matrix products) and scikit-learn's OpenMP (the judge's trees) as
    it caps llama.cpp: their own default is a thread per core whatever llama.cpp was told, and on shared cores the
    extra threads spin. Unset: their defaults."""
    assert _threads("1", build=True) == {"blas": 1, "openmp": 1}
    assert _threads("", build=True) == _threads("", build=False)


def test_an_evals_span_student_is_read_from_the_data_root(tmp_path: Path) -> None:
    config = load_config(ROOT / "evals" / "oa-mine.yaml")
    config.pipeline.spans = "{data_root}/students/oa-spans"
    assert tagger_spec(config, tmp_path).spans == tmp_path / "students" / "oa-spans"
    assert tagger_spec(load_config(ROOT / "evals" / "oa-mine.yaml"), tmp_path).spans is None
