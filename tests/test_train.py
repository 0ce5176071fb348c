"""`tagger train` and `tagger distill` with the real embedded model: tiny real runs (a few steps on a few products),
a kill mid-training and a resume, two data-parallel processes against one, the GGUF export against the HF model
(SmolLM2's llama layout and Gemma 3's), and bad pool rows. Training is slow on CPUs (STACK.md: ~130 tokens/s on 2
threads): every run here is a few steps."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest

pytest.importorskip("peft")
pytest.importorskip("gguf")

from tagger.build import BackendSpec, Narrowing, TaggerSpec, build_tagger
from tagger.product import Product
from tagger.records import TagRecord
from tagger.taxonomy import load_taxonomy
from tagger.train.pairs import render_pairs, render_tagger
from tagger.train.pool import read_pool

ROOT = Path(__file__).resolve().parents[1]
CATALOG = ROOT / "examples" / "catalog.jsonl"
# OA-Mine rows (titles only: the shortest prompts, ~260-300 tokens) and the benchmark's own small taxonomy.
OA_MINE = ROOT / "tests" / "fixtures" / "oa-mine.jsonl"
OA_TAXONOMY = str(ROOT / "evals" / "taxonomies" / "oa-mine.yaml")
SHORT = [0, 1, 2, 11, 13]  # fixture rows whose pairs are at most 300 tokens
TINY = ["-t", OA_TAXONOMY, "--batch-size", "2", "--max-length", "300", "--gguf-type", "q8_0", "-q"]


def _env() -> dict[str, str]:
    return {**os.environ, "TAGGER_THREADS": "1", "PYTHONPATH": str(ROOT)}


def _tagger(*args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
    command = [sys.executable, "-m", "tagger", *args]
    return subprocess.run(command, env=_env(), capture_output=True, text=True, check=check, timeout=600)


def _oa_mine_pool(path: Path, rows: list[int]) -> Path:
    lines = OA_MINE.read_text().splitlines()
    path.write_text("".join(lines[i] + "\n" for i in rows))
    return path


@pytest.fixture(scope="module")
def student(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A student trained for 2 steps on 5 products (one held out), killed (SIGKILL) after its first checkpoint and
    resumed."""
    work = tmp_path_factory.mktemp("student")
    pool = _oa_mine_pool(work / "pool.jsonl", SHORT)
    out = work / "model"
    args = ["train", str(pool), "-o", str(out), "--validation", "0.2", "--max-steps", "2", "--checkpoint-every", "1"]
    args += TINY
    running = subprocess.Popen([sys.executable, "-m", "tagger", *args], env=_env(), stderr=subprocess.PIPE, text=True)
    state = out / "checkpoint" / "state.json"
    deadline = time.monotonic() + 400
    while not state.is_file() and running.poll() is None and time.monotonic() < deadline:
        time.sleep(0.2)
    running.send_signal(signal.SIGKILL)
    running.wait()
    assert running.returncode == -signal.SIGKILL, running.stderr.read() if running.stderr else ""
    killed_at = json.loads(state.read_text())["step"]
    assert killed_at == 1
    done = _tagger(*args)
    assert f"resumed at step {killed_at}" in done.stderr
    return out


def test_resume_after_sigkill_finishes_the_same_run(student: Path) -> None:
    facts = json.loads((student / "training.json").read_text())
    assert facts["run"]["steps"] == 2
    steps = [h["step"] for h in facts["run"]["history"] if "train_loss" in h]
    assert steps == [1, 2]  # each step once: the resumed run neither repeated nor skipped one
    data = facts["data"]
    assert data["train"] + data["validation"] + len(data["skipped"]) == 5  # a pair over --max-length is skipped
    assert all(row["problem"] for row in data["skipped"])
    assert facts["run"]["best_loss"] is not None  # the held-out product was validated
    assert (student / "MODEL_CARD.md").read_text().startswith("# model: a tagger student")
    assert not (student / "checkpoint").exists()  # the finished run leaves the model files only


def _assert_tags_under_the_constraint(student: Path) -> None:
    """The student's folder as `--model`: it tags a shoe through llama.cpp, its provenance names it, and the grammar
    held (nothing outside the taxonomy had to be dropped)."""
    facts = json.loads((student / "training.json").read_text())
    spec = TaggerSpec(
        taxonomy=OA_TAXONOMY,
        backend=BackendSpec(model=str(student)),
        narrowing=Narrowing(shortlist=0),
        attributes="model",
    )
    tagger = build_tagger(spec)
    try:
        taxonomy = tagger.taxonomy
        product = Product("p1", "Ellie Shoes Women's 8400, Red Patent, 14 M US")
        record = tagger.tag_batch([product], [taxonomy.categories["shoes"]])[0]
    finally:
        tagger.close()
    assert isinstance(record, TagRecord), record
    trained_on = f"student {student.name} (trained on sha256:{facts['data']['sha256'][:16]})"
    assert record.provenance.model.startswith(trained_on)
    assert record.warnings == []
    for handle, values in record.attributes.items():
        attribute = taxonomy.attributes[handle]
        assert all(v in attribute.values or attribute.extractive for v in values)


def test_student_tags_through_llamacpp_with_the_constraint(student: Path) -> None:
    _assert_tags_under_the_constraint(student)


def _assert_same_logits(student: Path, ids: list[int]) -> None:
    import numpy as np
    import torch
    from llama_cpp import Llama
    from transformers import AutoModelForCausalLM

    hf = AutoModelForCausalLM.from_pretrained(str(student / "hf"), dtype=torch.float32)
    with torch.no_grad():
        expected = hf(torch.tensor([ids])).logits[0].numpy()
    llama = Llama(model_path=str(student / "model.gguf"), n_threads=1, logits_all=True, verbose=False)
    llama.eval(ids)
    got = np.array(llama.scores[: len(ids)])
    llama.close()
    # bf16 (HF folder) against f16 / q8_0 (GGUF) weights: close, not equal. A wrong Q/K row order scrambles
    # attention; Gemma's norms stored without their 1 + w shift scale every layer wrong.
    assert (got.argmax(-1) == expected.argmax(-1)).mean() >= 0.9
    assert np.corrcoef(got.ravel(), expected.ravel())[0, 1] > 0.99


def test_gguf_export_computes_the_hf_models_logits(student: Path) -> None:
    _assert_same_logits(student, [1, 9690, 198, 4093, 2, 198, 1, 520, 9531, 198, 19, 2, 198])


@pytest.fixture(scope="module")
def gemma_student(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A student of Gemma 3 270M (the packaged base model: its GGUF has no chat template), 2 steps on 4 products."""
    work = tmp_path_factory.mktemp("gemma")
    pool = _oa_mine_pool(work / "pool.jsonl", SHORT)
    out = work / "gemma-student"
    _tagger("train", str(pool), "-o", str(out), "--base", "gemma3-270m", "--validation", "0.2", "--max-steps", "2",
            *TINY)  # fmt: skip
    return out


def test_a_gemma_student_exports_for_both_engines(gemma_student: Path) -> None:
    facts = json.loads((gemma_student / "training.json").read_text())
    assert facts["base"]["gguf"].endswith("gemma-3-270m-q4_k_m.gguf")
    assert facts["run"]["steps"] == 2 and facts["data"]["train"] + facts["data"]["validation"] >= 4
    # <bos><start_of_turn>user\nThe capital of France is<end_of_turn>\n<start_of_turn>model\n
    _assert_same_logits(gemma_student, [2, 105, 2364, 107, 818, 5279, 529, 7001, 563, 106, 107, 105, 4368, 107])


def test_a_gemma_student_tags_through_llamacpp_with_the_constraint(gemma_student: Path) -> None:
    _assert_tags_under_the_constraint(gemma_student)


def test_prompt_tokens_are_the_backends(student: Path) -> None:
    """The ids trained on are those llama.cpp reads at tagging time: same count as the backend's prompt usage."""
    from tagger.backends import Request
    from tagger.backends.llamacpp import LlamaCppBackend, embedded_model_path
    from tagger.train.tokens import ChatTokenizer

    taxonomy = load_taxonomy(OA_TAXONOMY)
    pool = read_pool(_oa_mine_pool(student.parent / "one.jsonl", [3]), taxonomy)
    pair = render_pairs(render_tagger(TaggerSpec(), taxonomy, str(embedded_model_path())), pool.items)[0][0]
    backend = LlamaCppBackend()
    try:
        completion = backend.generate([Request(pair.messages, None, 1)])[0]
    finally:
        backend.close()
    tokenizer = ChatTokenizer(embedded_model_path())
    assert len(tokenizer.prompt_ids(pair)) == completion.prompt_tokens


def test_bad_pool_rows_are_reported_and_skipped(tmp_path: Path) -> None:
    rows = [
        {
            "id": "ok",
            "title": "Northwind Men's T-Shirt, Navy",
            "category": "t-shirts",
            "attributes": {"color": ["Navy"]},
        },
        {"id": "cat", "title": "A thing", "category": "no-such-category"},
        {"id": "val", "title": "A shirt", "category": "t-shirts", "attributes": {"color": ["Plaid-ish"]}},
        {"id": "notitle", "category": "t-shirts"},
        {"id": "attr", "title": "A shirt", "category": "t-shirts", "attributes": {"wingspan": ["3 m"]}},
        {"id": "span", "title": "A shirt", "category": "t-shirts", "attributes": {"brand": ["Acme"]}},
    ]
    pool_path = tmp_path / "pool.jsonl"
    pool_path.write_text("\n".join(json.dumps(r) for r in rows) + "\nnot json\n")
    taxonomy = load_taxonomy()
    pool = read_pool(pool_path, taxonomy)
    from tagger.backends.llamacpp import embedded_model_path

    pairs, problems = render_pairs(render_tagger(TaggerSpec(), taxonomy, str(embedded_model_path())), pool.items)
    assert [p.product_id for p in pairs] == ["ok"]
    reported = {p.product_id: p.message for p in [*pool.problems, *problems]}
    assert "not in taxonomy" in reported["cat"]
    assert "'Plaid-ish' is not an allowed value" in reported["val"]
    assert "title" in reported["notitle"]
    assert "'wingspan' is not one of its category's" in reported["attr"]
    assert "not in the product's" in reported["span"]
    assert reported[None] == "not JSON (Expecting value)"
    assert json.loads(pairs[0].answer)["color"] == ["Navy"]  # compact JSON, as the constraint writes it
    assert pairs[0].answer.startswith("{") and ", " not in pairs[0].answer


def test_a_killed_run_is_exported_where_its_checkpoint_is_and_no_other_run_is(tmp_path: Path) -> None:
    """`--max-steps` at the checkpoint's step claims the killed run's folder (nothing left to train); any other
    change, or a limit the checkpoint has not reached, is another run and is refused."""
    from tagger.errors import TaggerError
    from tagger.train.loop import Settings
    from tagger.train.run import _claim

    def run(**settings: Any) -> dict[str, Any]:
        return {"data": "sha", "settings": Settings(epochs=1, **settings).model_dump(), "spec": "{}", "base": "b"}

    _claim(tmp_path, run(), fresh=False)
    (tmp_path / "checkpoint").mkdir()
    (tmp_path / "checkpoint" / "state.json").write_text(json.dumps({"step": 4}))
    for other in (run(max_steps=3), run(max_steps=5), run(max_steps=4, learning_rate=1e-3)):
        with pytest.raises(TaggerError, match="another run"):
            _claim(tmp_path, other, fresh=False)
    _claim(tmp_path, run(max_steps=4), fresh=False)
    assert (tmp_path / "checkpoint" / "state.json").is_file()  # kept: the export reads its weights


def test_two_processes_take_the_same_steps_as_one(tmp_path: Path) -> None:
    """Data parallel on gloo: two processes, each half of every global batch, end with one process's weights.
    Each process's examples shape the update, so a rank that did not train would change the result."""
    import torch

    pool = _oa_mine_pool(tmp_path / "pool.jsonl", [11, 13])
    common = ["--max-steps", "1", "--validation", "0", "--no-export", *TINY]
    _tagger("train", str(pool), "-o", str(tmp_path / "one"), *common)
    _tagger("train", str(pool), "-o", str(tmp_path / "two"), "--processes", "2", *common)
    one = torch.load(tmp_path / "one" / "checkpoint" / "train.pt", weights_only=False)["weights"]
    two = torch.load(tmp_path / "two" / "checkpoint" / "train.pt", weights_only=False)["weights"]
    base = torch.load(tmp_path / "one" / "checkpoint" / "train.pt", weights_only=False)["weights"]
    assert one.keys() == two.keys()
    moved = max(float((one[k] - two[k]).abs().max()) for k in one)
    assert moved < 1e-5
    lora_b = [k for k in base if "lora_B" in k]
    assert any(float(one[k].abs().max()) > 0 for k in lora_b)  # the steps did train (LoRA B starts at zero)


def test_distill_trains_on_the_teachers_evidenced_values(tmp_path: Path) -> None:
    catalog = tmp_path / "catalog.jsonl"
    catalog.write_text("\n".join(CATALOG.read_text().splitlines()[:2]) + "\n")
    out = tmp_path / "student"
    run = _tagger("distill", str(catalog), "-o", str(out), "--max-steps", "1", "--batch-size", "2",
                  "--validation", "0", "--no-export", "-q")  # fmt: skip
    assert "teacher: 2 products labeled" in run.stderr
    records = [json.loads(line) for line in (out / "teacher.jsonl").read_text().splitlines()]
    pool = [json.loads(line) for line in (out / "teacher-pool.jsonl").read_text().splitlines()]
    assert len(pool) == 2
    for record, row in zip(records, pool, strict=True):
        evidenced = {(e["attribute"], e["value"]) for e in record["evidence"] if e["source"] != "inferred"}
        assert {(a, v) for a, values in row["attributes"].items() for v in values} <= evidenced
    state = json.loads((out / "checkpoint" / "state.json").read_text())
    assert state["step"] == 1
