"""The CLI through typer's runner (fast paths) and as a real subprocess (the model paths)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
from typer.testing import CliRunner

from tagger.cli import app
from tests.conftest import SAMPLE_CATALOG

runner = CliRunner()
TAGGER = [sys.executable, "-m", "tagger"]


def test_taxonomy_summary_and_find() -> None:
    result = runner.invoke(app, ["taxonomy"])
    assert result.exit_code == 0, result.output
    assert "tagger-default" in result.output and "132" in result.output
    found = runner.invoke(app, ["taxonomy", "--find", "coffee maker"])
    assert found.exit_code == 0
    assert "Home & Kitchen > Kitchen Appliances > Coffee Makers" in found.output
    assert "coffee-makers" in found.output


def test_taxonomy_on_shopify() -> None:
    result = runner.invoke(app, ["taxonomy", "-t", "shopify"])
    assert result.exit_code == 0, result.output
    assert "10,595" in result.output and "20,635" in result.output


def test_taxonomy_errors_are_clear() -> None:
    result = runner.invoke(app, ["taxonomy", "-t", "shopify:/no/such/dir"])
    assert result.exit_code == 1
    assert "Shopify taxonomy folder not found: /no/such/dir" in result.output


def test_schema_command() -> None:
    result = runner.invoke(app, ["schema"])
    assert result.exit_code == 0
    assert len(json.loads(result.output)["properties"]["category"]["enum"]) == 132
    shirts = runner.invoke(app, ["schema", "-c", "Apparel & Accessories > Clothing > Tops > T-Shirts"])
    assert shirts.exit_code == 0
    assert "sleeve_length" in json.loads(shirts.output)["properties"]
    assert runner.invoke(app, ["schema", "-c", "nope"]).exit_code == 1


def test_render_prints_the_first_model_call() -> None:
    scarf = ["render", "--json", '{"id": "a", "title": "Blue wool scarf", "brand": "Loom"}']
    # The default: retrieval decides the category, evidence the attributes: the scarf's are all stated, no call.
    settled = runner.invoke(app, scarf)
    assert settled.exit_code == 0, settled.output
    assert (
        "(decided by shortlist:all-MiniLM-L6-v2:k=1:title_description/leaf_parent+evidence: no model call)"
        in settled.output
    )
    assert "no model call for the attributes" in settled.output and "stage: user" not in settled.output
    assert "llama_context" not in settled.output  # the tokenizer loads quietly
    result = runner.invoke(app, [*scarf, "--attributes", "model"])  # the model fills every attribute
    assert result.exit_code == 0, result.output
    assert "Title: Blue wool scarf\nBrand: Loom" in result.output
    assert "sha256:" in result.output
    assert "(decided by shortlist:all-MiniLM-L6-v2:k=1:title_description/leaf_parent: no model call)" in result.output
    assert "attributes stage: user" in result.output and "category stage" not in result.output
    rivals = '{"id": "b", "title": "Slim fit or regular fit cotton T-Shirt, short sleeve and long sleeve options"}'
    chosen = runner.invoke(app, ["render", "--json", rivals])  # evidence leaves the model rivals to choose between
    assert chosen.exit_code == 0, chosen.output
    assert "attributes stage: user" in chosen.output
    assert "- fit (Fit): Slim, Regular" in chosen.output and "Relaxed" not in chosen.output
    flat = runner.invoke(app, [*scarf, "--shortlist", "0"])  # the model chooses among every category
    assert flat.exit_code == 0, flat.output
    assert "category stage: user" in flat.output and "no model call" not in flat.output
    given = runner.invoke(app, [*scarf, "--shortlist", "0", "--category", "scarves", "--attributes", "model"])
    assert given.exit_code == 0, given.output
    assert "attributes stage: user" in given.output and "no model call" not in given.output
    missing = runner.invoke(app, ["render", "--json", '{"id": "a"}'])
    assert missing.exit_code == 1 and "no 'title'" in missing.output


def test_tag_one_product_as_a_subprocess() -> None:
    done = subprocess.run(
        [*TAGGER, "tag", "--title", "Stainless steel electric kettle, 1.7 L", "--brand", "Brewmaster"],
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    record = json.loads(done.stdout)
    assert record["id"] == "cli"
    assert record["provenance"]["backend"] == "llamacpp"
    # The default: retrieval decides the category (a shortlist of one), the model fills the attributes.
    assert record["provenance"]["strategy"] == "shortlist:all-MiniLM-L6-v2:k=1:title_description/leaf_parent+evidence"
    assert record["category"]["path"] == ["Home & Kitchen", "Kitchen Appliances", "Kettles"]


def test_a_broken_install_fails_loudly_instead_of_falling_back(monkeypatch: pytest.MonkeyPatch) -> None:
    """Retrieval is part of the default install; where it cannot be imported, tagger says so in one line (it used
    to fall back to the flat enum, which put every Shopify product in "Product Add-Ons")."""
    monkeypatch.setitem(sys.modules, "tagger.retrieval", None)  # import tagger.retrieval raises ImportError
    done = runner.invoke(app, ["tag", "--title", "Blue wool scarf"])
    assert done.exit_code == 1
    assert "retrieval cannot be imported" in done.output
    assert "Traceback" not in done.output
    flat = runner.invoke(app, ["tag", "--title", "Blue wool scarf", "--shortlist", "0"])  # asks for no retrieval
    assert flat.exit_code == 0, flat.output
    assert json.loads(flat.stdout)["provenance"]["strategy"] == "evidence"  # no narrowing: the model chooses


def test_generate_limit_and_missing_input(tmp_path: Path) -> None:
    output = tmp_path / "out.jsonl"
    done = subprocess.run(
        [*TAGGER, "generate", str(SAMPLE_CATALOG), "-o", str(output), "--limit", "2", "--no-cache", "-q"],
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    assert len(output.read_text().splitlines()) == 2
    missing = runner.invoke(app, ["generate", str(tmp_path / "nope.jsonl"), "-o", str(output)])
    assert missing.exit_code == 1 and "input file not found" in missing.output
    wrong = runner.invoke(app, ["generate", str(SAMPLE_CATALOG), "-o", str(tmp_path / "out.csv")])
    assert wrong.exit_code == 1 and "must be a .jsonl or .parquet file" in wrong.output
