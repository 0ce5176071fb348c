"""The eval harness end to end with the real embedded model: outputs, the gate on a planted regression, compare."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
from typer.testing import CliRunner

from tagger.backends.llamacpp import LlamaCppBackend
from tagger.cli import app
from tagger.evals.compare import changed_products
from tagger.evals.config import EvalConfig, Threshold, load_config
from tagger.evals.gate import check_gate
from tagger.evals.output import load_result, load_samples, to_result, write_outputs
from tagger.evals.runner import EvalOutcome, run_eval
from tagger.pipeline import Tagger
from tagger.prompt import load_template
from tagger.taxonomy import Taxonomy
from tests.conftest import DATA_ROOT, ROOT

SMOKE = ROOT / "evals" / "smoke.yaml"
BLIND = ROOT / "tests" / "fixtures" / "blind.j2"
LIMIT = 6


@pytest.fixture(scope="module")
def config() -> EvalConfig:
    return load_config(SMOKE)


@pytest.fixture(scope="module")
def good(config: EvalConfig, tagger: Tagger) -> EvalOutcome:
    # the smoke eval reads the sample catalog beside it: no data root is needed
    return run_eval(config, DATA_ROOT, limit=LIMIT, pipeline=tagger, minilm=False)


@pytest.fixture(scope="module")
def blind(config: EvalConfig, backend: LlamaCppBackend, default_taxonomy: Taxonomy) -> EvalOutcome:
    planted = Tagger(default_taxonomy, backend, load_template(BLIND))
    return run_eval(config, DATA_ROOT, limit=LIMIT, pipeline=planted, minilm=False)


def test_every_shipped_eval_config_loads() -> None:
    names = sorted(p.stem for p in (ROOT / "evals").glob("*.yaml"))
    assert {"smoke", "wdc-pave", "oa-mine", "flipkart-shopify"} <= set(names)
    for name in names:
        load_config(ROOT / "evals" / f"{name}.yaml")


def test_smoke_run_writes_three_outputs(good: EvalOutcome, tmp_path: Path) -> None:
    result = to_result(good)
    write_outputs(good, result, tmp_path)
    loaded = load_result(tmp_path)
    assert loaded.eval == "smoke" and loaded.run().n == LIMIT
    metrics = loaded.run().metrics
    assert metrics["validity"] == 1.0 and metrics["conformance"] == 1.0
    precision, recall = metrics["attribute_precision"], metrics["attribute_recall"]
    assert precision is not None and recall is not None
    assert metrics["attribute_f1"] == pytest.approx(2 * precision * recall / (precision + recall))
    assert loaded.run().provenance.template_hash == load_template().hash
    peak = loaded.run().peak_rss_mb  # the process holds the model: well above an empty interpreter's ~30 MB
    assert peak is not None and peak > 150
    lines = [json.loads(line) for line in (tmp_path / "samples.jsonl").read_text().splitlines()]
    runs = {line["run"] for line in lines}
    assert runs == {run.name for run in good.runs} and "lexical" in runs  # string matching beside the model
    for name in runs:
        assert [line["id"] for line in lines if line["run"] == name] == [e.product.id for e in good.labeled]
    assert lines[0]["gold"]["category"] == "Apparel & Accessories > Clothing > Tops > T-Shirts"
    report = (tmp_path / "report.md").read_text()
    assert "| peak RSS after the run, MB |" in report
    assert "| attribute_f1 |" in report and "## Example failures" in report and "[system]" in report
    assert (tmp_path / "category_accuracy.png").read_bytes()[:4] == b"\x89PNG"


def test_gate_fails_on_a_planted_regression(good: EvalOutcome, blind: EvalOutcome) -> None:
    baseline = good.main.metrics
    gate = {"attribute_f1": Threshold(tolerance=0.05), "conformance": Threshold(min=1.0)}
    assert check_gate(baseline, gate, baseline) == []
    assert baseline["attribute_f1"] is not None and baseline["attribute_f1"] > 0.1  # brand is read from the text
    failures = check_gate(blind.main.metrics, gate, baseline)
    assert len(failures) == 1 and failures[0].startswith("attribute_f1 = ")
    assert blind.main.metrics["conformance"] == 1.0  # blind, but still inside the taxonomy


def test_compare_lists_exactly_the_changed_products(good: EvalOutcome, blind: EvalOutcome, tmp_path: Path) -> None:
    write_outputs(good, to_result(good), tmp_path / "a")
    write_outputs(blind, to_result(blind), tmp_path / "b")
    a, b = load_samples(tmp_path / "a"), load_samples(tmp_path / "b")
    expected = set()
    for left, right in zip(a, b, strict=True):
        hits = (sum(v == "VC" for v in left.attributes.values()), sum(v == "VC" for v in right.attributes.values()))
        if left.category.exact != right.category.exact or hits[0] != hits[1]:  # type: ignore[union-attr]
            expected.add(left.id)
    changes = changed_products(a, b)
    assert expected and {c.id for c in changes} == expected
    result = CliRunner().invoke(app, ["compare", str(tmp_path / "a"), str(tmp_path / "b")])
    assert result.exit_code == 0, result.output
    for change in changes:
        assert f"{change.id}: {change.what}" in result.output


def _cli_config(tmp_path: Path, gate: str) -> Path:
    config = tmp_path / "gate.yaml"
    config.write_text(
        f"""name: cli-gate
version: 1
dataset:
  path: {ROOT / "examples" / "catalog.jsonl"}
  category: {{field: gold.category, kind: id}}
  attributes: {{field: gold.attributes}}
metrics: [category_hf1, attribute_f1, validity, conformance]
gate:
{gate}
"""
    )
    return config


@pytest.mark.parametrize(
    ("gate", "code", "message"),
    [
        ("  conformance: {min: 1.0}\n  validity: {min: 1.0}", 0, "gate passed"),
        ("  conformance: {min: 1.0}\n  attribute_f1: {min: 1.01}", 4, "attribute_f1 = "),
    ],
)
def test_eval_command_exit_codes(tmp_path: Path, gate: str, code: int, message: str) -> None:
    """The CLI as CI runs it: a metric under its floor exits 4; the outputs are written either way."""
    done = subprocess.run(
        [
            sys.executable,
            "-m",
            "tagger",
            "eval",
            str(_cli_config(tmp_path, gate)),
            "--limit",
            "2",
            "--out",
            str(tmp_path / "out"),
            "--no-minilm",
        ],
        capture_output=True,
        text=True,
        timeout=600,
        check=False,
    )
    assert done.returncode == code, done.stderr
    assert message in done.stderr
    failures = load_result(tmp_path / "out").gate
    assert failures is not None
    assert (failures == []) == (code == 0)
    assert (tmp_path / "out" / "report.md").is_file()
