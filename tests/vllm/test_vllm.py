"""vLLM for real on this CPU: the offline engine, `vllm serve` in both structured-output modes, agreement with
llama.cpp, and a server killed mid-run."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest

from tagger.backends import Request
from tagger.backends.openai import OpenAIBackend
from tagger.evals.conformance import check_record, read_reference
from tagger.io import read_rows
from tagger.pipeline import CATEGORY_MAX_TOKENS, Tagger
from tagger.product import Product
from tagger.records import ErrorRecord, Record, TagRecord
from tagger.taxonomy import Taxonomy
from tests.conftest import ROOT, SAMPLE_CATALOG
from tests.test_terminal import foreign_output
from tests.vllm.conftest import SERVED_NAME, Server, start_server

pytestmark = pytest.mark.vllm
# vLLM's CPU build is slow on these 2 AVX2-only cores (~0.1 s a decode step in float32, measured): 8 products keep the
# suite in minutes.
PRODUCTS = [p for _, p in read_rows(SAMPLE_CATALOG) if isinstance(p, Product)][:8]

SHORTLIST = "shortlist:all-MiniLM-L6-v2:k=1:title_description/leaf_parent"  # the default retrieval and its texts


def _all_conform(records: list[Record], taxonomy: Taxonomy) -> list[TagRecord]:
    tagged = [r for r in records if isinstance(r, TagRecord)]
    assert len(tagged) == len(records), [r for r in records if isinstance(r, ErrorRecord)]
    reference = read_reference(None)  # the default taxonomy, read apart from tagger.taxonomy
    assert reference.paths.keys() == taxonomy.categories.keys()
    for record, product in zip(tagged, PRODUCTS, strict=False):
        check_record(reference, record, product)
    return tagged


def test_offline_engine_tags_a_batch_inside_the_taxonomy(vllm_backend: object, default_taxonomy: Taxonomy) -> None:
    tagger = Tagger(default_taxonomy, vllm_backend)  # type: ignore[arg-type]
    records = _all_conform(tagger.tag_batch(PRODUCTS), default_taxonomy)
    assert records[0].provenance.backend == "vllm"
    assert all(r.usage.completion_tokens > 0 for r in records)


@pytest.mark.parametrize("structured", ["structured_outputs", "response_format"])
def test_server_in_both_structured_modes(vllm_server: Server, default_taxonomy: Taxonomy, structured: str) -> None:
    backend = OpenAIBackend(vllm_server.url, structured=structured, concurrency=8)  # type: ignore[arg-type]
    records = _all_conform(Tagger(default_taxonomy, backend).tag_batch(PRODUCTS), default_taxonomy)
    assert backend.model == SERVED_NAME  # discovered from /v1/models
    assert records[0].provenance.backend == "openai"


def test_answers_are_compact_json(vllm_backend: object, vllm_server: Server, default_taxonomy: Taxonomy) -> None:
    """Whitespace is fixed in the engine's config (vLLM ignores the per-request flag): no free newlines or indents."""
    tagger = Tagger(default_taxonomy, vllm_backend)  # type: ignore[arg-type]
    schema = tagger.schemas.category
    requests = [Request(tagger.prompts.category_messages(p), schema, CATEGORY_MAX_TOKENS) for p in PRODUCTS[:4]]
    for engine in (vllm_backend, OpenAIBackend(vllm_server.url, concurrency=4)):
        texts = [c.text for c in engine.generate(requests)]  # type: ignore[attr-defined]
        assert texts == [json.dumps(json.loads(t), separators=(",", ":"), ensure_ascii=False) for t in texts]


def test_three_backends_agree_report(
    backend: object, vllm_backend: object, vllm_server: Server, default_taxonomy: Taxonomy, tmp_path: Path
) -> None:
    """The same products, greedy, through llama.cpp, vLLM offline and vLLM server: all valid; agreement reported."""
    engines = {
        "llamacpp": backend,
        "vllm": vllm_backend,
        "openai": OpenAIBackend(vllm_server.url, concurrency=8),
    }
    results = {
        name: _all_conform(Tagger(default_taxonomy, e).tag_batch(PRODUCTS), default_taxonomy)
        for name, e in engines.items()
    }  # type: ignore[arg-type]

    def agree(a: str, b: str) -> float:
        pairs = zip(results[a], results[b], strict=True)
        return sum(x.category.id == y.category.id and x.attributes == y.attributes for x, y in pairs) / len(PRODUCTS)

    report = {f"{a}~{b}": agree(a, b) for a, b in (("llamacpp", "vllm"), ("llamacpp", "openai"), ("vllm", "openai"))}
    print("backend agreement (same category and attributes):", json.dumps(report))
    # The offline engine and its own server run the same weights and kernels: they should agree almost always.
    assert report["vllm~openai"] >= 0.8


def test_server_killed_mid_run_gives_row_errors_and_a_rerun_completes(hf_model: Path, tmp_path: Path) -> None:
    server = start_server(hf_model, tmp_path / "fault.log")
    source, output = tmp_path / "in.jsonl", tmp_path / "out.jsonl"
    source.write_text("".join(line + "\n" for line in SAMPLE_CATALOG.read_text().splitlines()[: len(PRODUCTS)]))

    def command(url: str) -> list[str]:
        # --attributes model: every product asks the server (the evidence default settles most without a call).
        return [sys.executable, "-m", "tagger", "generate", str(source), "-o", str(output), "-q",
                "--backend", "openai", "--base-url", url, "--batch-size", "1", "--no-cache",
                "--attributes", "model"]  # fmt: skip

    try:
        run = subprocess.Popen(command(server.url), stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        deadline = time.monotonic() + 300
        while time.monotonic() < deadline and (not output.exists() or len(output.read_text().splitlines()) < 2):
            time.sleep(0.2)
        server.kill()  # SIGKILL mid-run: connections drop, new ones are refused
        _, stderr = run.communicate(timeout=600)
    finally:
        server.stop()
    assert run.returncode == 3, stderr
    assert "Traceback" not in stderr
    records = [json.loads(line) for line in output.read_text().splitlines()]
    # Retrieval decided the category (then the server filled the attributes), not the flat enum that an environment
    # without the retrieval runtime used to fall back to.
    assert {r["provenance"]["strategy"] for r in records} == {SHORTLIST}
    tagged = [r["id"] for r in records]
    rejects_file = tmp_path / "out.rejects.jsonl"
    failed = [json.loads(line) for line in rejects_file.read_text().splitlines()]
    assert len(tagged) >= 2 and failed
    assert len(tagged) + len(failed) == len(PRODUCTS)  # every row is either tagged or a reject
    assert {line["error"]["kind"] for line in failed} == {"backend_error"}
    assert all(line["id"] and line["row"] for line in failed)

    server = start_server(hf_model, tmp_path / "again.log")
    try:
        again = subprocess.run(command(server.url), capture_output=True, text=True, timeout=600, check=False)
    finally:
        server.stop()
    assert again.returncode == 0, again.stderr
    ids = [json.loads(line)["id"] for line in output.read_text().splitlines()]
    assert ids[: len(tagged)] == tagged  # the first run's work is kept; the rerun retried only the rejects
    assert sorted(ids) == sorted(p.id for p in PRODUCTS) and len(ids) == len(set(ids))
    assert not rejects_file.exists()  # a run with no rejects leaves no rejects file


def test_generate_with_the_vllm_backend_as_a_user_runs_it(tmp_path: Path) -> None:
    """`tagger generate --backend vllm` with nothing set by hand: no VLLM_CPU_KVCACHE_SPACE, no engine options. The
    backend sizes the KV cache and runs eagerly on a CPU by itself; only tagger's own output reaches stderr."""
    source, output = tmp_path / "in.jsonl", tmp_path / "out.jsonl"
    source.write_text("".join(line + "\n" for line in SAMPLE_CATALOG.read_text().splitlines()[:3]))
    env = {k: v for k, v in os.environ.items() if not k.startswith(("VLLM_", "TQDM_"))}
    env["PYTHONPATH"] = str(ROOT)
    command = [sys.executable, "-m", "tagger", "generate", str(source), "-o", str(output), "--backend", "vllm",
               "--no-cache"]  # fmt: skip
    done = subprocess.run(command, capture_output=True, text=True, timeout=1800, env=env, check=False)
    assert done.returncode == 0, done.stderr[-3000:]
    records = [json.loads(line) for line in output.read_text().splitlines()]
    assert [r["id"] for r in records] == [json.loads(line)["id"] for line in source.read_text().splitlines()]
    assert {r["provenance"]["backend"] for r in records} == {"vllm"}
    assert {r["provenance"]["strategy"] for r in records} == {f"{SHORTLIST}+evidence"}
    assert foreign_output(done.stderr) == [], done.stderr[-3000:]
    assert done.stdout == ""  # vLLM logs to stdout, where `tagger tag` writes its record
