"""Calibrated confidence: kinds, the isotonic fit, applying it to records, --min-confidence, and the metrics that
judge it (ECE, reliability, precision-coverage, evidence_valid)."""

from __future__ import annotations

import itertools
import json
import random
from pathlib import Path

import pytest
from typer.testing import CliRunner

from tagger.backends.llamacpp import LlamaCppBackend
from tagger.calibrate import Calibration, Curve, category_kind, hold_below, load_calibration, value_kind
from tagger.calibrate.fit import MIN_BLOCK, Observation, fit, isotonic
from tagger.cli import app
from tagger.errors import TaggerError
from tagger.evals.metrics import calibration_noise, expected_calibration_error, precision_coverage, reliability
from tagger.evals.samples import Gold, spans_hold, value_scores
from tagger.pipeline import Tagger
from tagger.product import Product
from tagger.records import CategoryEvidence, CategoryRef, Evidence, Span, TagRecord
from tagger.taxonomy import Taxonomy
from tests.conftest import ROOT

SPAN = Span(field="title", start=0, end=4, text="Navy")


def _record(*evidence: Evidence, category_score: float | None = None) -> TagRecord:
    from tagger.records import model_free_provenance
    from tagger.taxonomy import load_taxonomy

    attributes: dict[str, list[str]] = {}
    for item in evidence:
        attributes.setdefault(item.attribute, []).append(item.value)
    return TagRecord(
        id="p1",
        category=CategoryRef(
            id="t-shirts", path=["T-Shirts"], score=category_score, evidence=CategoryEvidence(source="examples")
        ),
        attributes=attributes,
        evidence=list(evidence),
        provenance=model_free_provenance(load_taxonomy(), "test", "test"),
    )


def test_each_value_has_one_kind() -> None:
    assert value_kind(Evidence(attribute="c", value="Navy", source="text", spans=[SPAN])) == "text:title"
    described = Span(field="description", start=0, end=4, text="Navy")
    assert value_kind(Evidence(attribute="c", value="Navy", source="text", spans=[described])) == "text:description"
    branded = Span(field="brand", start=0, end=4, text="Acme")
    assert value_kind(Evidence(attribute="b", value="Acme", source="text", spans=[branded])) == "text:field"
    assert value_kind(Evidence(attribute="c", value="Navy", source="pool", score=0.8)) == "pool"
    chosen = Evidence(attribute="c", value="Navy", source="text", spans=[SPAN], decided="model", score=0.4)
    assert value_kind(chosen) == "text:model"
    assert value_kind(Evidence(attribute="c", value="Navy", source="inferred", decided="model")) == "inferred"
    assert category_kind(CategoryRef(id="x", path=["X"], evidence=CategoryEvidence(source="retrieval"))) == (
        "category:retrieval"
    )
    assert category_kind(CategoryRef(id="x", path=["X"])) == "category:model"


def test_isotonic_steps_rise_with_the_score_and_are_never_certain() -> None:
    rng = random.Random(0)
    points = [(s, rng.random() < s) for s in (rng.random() for _ in range(400))]
    bounds, rates = isotonic(points)
    assert bounds == sorted(bounds) and rates == sorted(rates)
    assert len(rates) >= 3  # a rising relation is found, not one flat step
    assert 0 < rates[0] < 0.3 and 0.7 < rates[-1] < 1  # smoothed: no step says 0 or 1
    assert all(isinstance(b, float) for b in bounds)
    # every step rests on at least MIN_BLOCK points
    edges = [-1.0, *bounds]
    for low, high in itertools.pairwise(edges):
        assert sum(low < s <= high for s, _ in points) >= MIN_BLOCK


def test_fit_gives_each_kind_its_own_rate_and_a_family_fallback() -> None:
    found = [Observation("text:title", None, i % 10 != 0) for i in range(100)]  # 90% right
    found += [Observation("text:description", None, i % 2 == 0) for i in range(40)]  # 50% right
    found += [Observation("pool", 0.9, True) for _ in range(5)]  # too few for a kind of its own
    found += [Observation("category:examples", i / 50, i >= 25) for i in range(50)]
    calibration = fit(found, ["test"])
    assert calibration.probability("text:title", None) == pytest.approx(91 / 102, abs=1e-4)
    assert calibration.probability("text:description", None) == pytest.approx(21 / 42, abs=1e-4)
    assert "pool" not in calibration.kinds
    assert calibration.probability("pool", 0.9) == calibration.kinds["value:*"].rate  # the family's rate
    low, high = calibration.probability("category:examples", 0.1), calibration.probability("category:examples", 0.9)
    assert low is not None and high is not None and low < 0.2 < 0.8 < high
    assert Calibration(kinds={}).probability("pool", 0.5) is None  # nothing measured: no confidence


def test_apply_sets_confidences_and_min_confidence_holds_values_back() -> None:
    calibration = Calibration(
        kinds={
            "text:title": Curve(n=100, rate=0.95),
            "text:model": Curve(n=100, rate=0.5, bounds=[0.5, 1.0], rates=[0.3, 0.8]),
            "category:examples": Curve(n=100, rate=0.9, bounds=[0.5, 1.0], rates=[0.4, 0.95]),
        }
    )
    stated = Evidence(attribute="color", value="Navy", source="text", spans=[SPAN])
    unsure = Evidence(attribute="fit", value="Slim", source="text", spans=[SPAN], decided="model", score=0.3)
    record = _record(stated, unsure, category_score=1.0)
    calibration.apply(record)
    assert (stated.confidence, unsure.confidence, record.category.confidence) == (0.95, 0.3, 0.95)
    given = _record(category_score=None)
    given.category.evidence = CategoryEvidence(source="given")
    calibration.apply(given)
    assert given.category.confidence is None  # the user's category: nothing tagger measured
    judged = Evidence(attribute="brand", value="Acme", source="text", spans=[SPAN], decided="judge", score=0.62)
    judged.confidence = 0.62
    calibration.apply(_record(judged))
    assert value_kind(judged) == "judge" and judged.confidence == 0.62  # fitted on the catalog's pool: it stands
    student = Evidence(attribute="brand", value="Acme", source="text", spans=[SPAN], decided="student", score=0.9)
    uncalibrated = student.model_copy()
    student.confidence = 0.81  # a calibrated student's, fitted on the pool products held out of it: it stands
    Calibration(kinds={"text:student": Curve(n=50, rate=0.7)}).apply(_record(student, uncalibrated))
    assert (student.confidence, uncalibrated.confidence) == (0.81, 0.7)  # a student without one: the run's
    hold_below(record, 0.5)
    assert record.attributes == {"color": ["Navy"]}
    assert [e.value for e in record.evidence] == ["Navy"]
    assert record.warnings == ["fit: 'Slim' held back: confidence 0.3 < 0.5"]


def test_the_shipped_calibration_is_fitted_and_loads(tmp_path: Path) -> None:
    shipped = load_calibration("default")
    assert shipped is not None and shipped.fitted_on  # fitted on named eval runs, not written by hand
    assert {"text:title", "text:common", "category:retrieval"} <= shipped.kinds.keys()
    assert load_calibration("off") is None
    bad = tmp_path / "bad.json"
    bad.write_text("{not json")
    with pytest.raises(TaggerError, match="not a calibration file"):
        load_calibration(bad)
    with pytest.raises(TaggerError, match=r"missing\.json"):
        load_calibration(tmp_path / "missing.json")


def test_a_minimum_confidence_needs_a_calibration(default_taxonomy: Taxonomy, backend: LlamaCppBackend) -> None:
    with pytest.raises(ValueError, match="calibration"):
        Tagger(default_taxonomy, backend, min_confidence=0.5)


def test_ece_reliability_and_coverage_by_hand() -> None:
    pairs = [(0.95, True)] * 9 + [(0.95, False)] + [(0.25, True)] + [(0.25, False)] * 3
    bins = reliability(pairs)
    assert bins == [(0.25, 0.25, 4), (0.95, 0.9, 10)]
    assert expected_calibration_error(pairs) == pytest.approx((0 * 4 + 0.05 * 10) / 14)
    assert expected_calibration_error([]) is None
    rows = precision_coverage(pairs, [0.0, 0.5, 0.99])
    assert rows[0] == (0.0, 1.0, 10 / 14)
    assert rows[1] == (0.5, 10 / 14, 0.9)
    assert rows[2] == (0.99, 0.0, None)


def test_calibration_noise_is_the_ece_of_a_calibrated_confidence_by_chance() -> None:
    # Two values at 0.5, one bin: right 0, 1 or 2 times with chances 1/4, 1/2, 1/4, so ECE 0.5, 0 or 0.5: mean 0.25.
    assert calibration_noise([(0.5, True)] * 2, draws=4000) == pytest.approx(0.25, abs=0.02)
    assert calibration_noise([(1.0, True)] * 50) == 0.0  # certain values are never wrong by chance
    few, many = calibration_noise([(0.7, True)] * 100), calibration_noise([(0.7, True)] * 2500)
    assert few is not None and many is not None and many < few / 3  # the noise falls as 1 / sqrt(n)
    assert calibration_noise([]) is None


def test_value_scores_and_span_checks() -> None:
    right = Evidence(attribute="color", value="Navy", source="text", spans=[SPAN], confidence=0.9)
    wrong = Evidence(attribute="material", value="Wool", source="pool", score=0.7, confidence=0.6)
    unscored = Evidence(attribute="fit", value="Slim", source="text", spans=[SPAN])
    record = _record(right, wrong, unscored)
    scored = value_scores(record, Gold("t-shirts", attributes={"color": ["navy"], "material": []}))
    assert [(v["value"], v["kind"], v["correct"]) for v in scored] == [
        ("Navy", "text:title", True),
        ("Wool", "pool", False),
    ]
    product = Product("p1", "Navy tee")
    assert spans_hold(record, product) is True
    moved = Evidence(
        attribute="color", value="Navy", source="text", spans=[Span(field="title", start=1, end=5, text="Navy")]
    )
    assert spans_hold(_record(moved), product) is False  # the text at those offsets is "avy "
    assert spans_hold(_record(), product) is None


def test_calibrate_command_fits_on_eval_samples_and_generate_uses_it(tmp_path: Path) -> None:
    """An eval's samples.jsonl -> `tagger calibrate` -> `tagger generate --calibration FILE --min-confidence P`."""
    runs = tmp_path / "run"
    runs.mkdir()
    lines = []
    for i in range(60):
        values = [{"attribute": "color", "value": "Navy", "kind": "text:title", "score": None, "confidence": None,
                   "correct": i % 4 != 0}]  # fmt: skip
        score = {"id": f"p{i}", "error": None, "conforms": True, "category": None, "attributes": {}, "values": values}
        lines.append(json.dumps({"run": "llamacpp", "id": f"p{i}", "score": score}))
    (runs / "samples.jsonl").write_text("\n".join(lines) + "\n")
    excluded = tmp_path / "held"
    excluded.mkdir()
    (excluded / "samples.jsonl").write_text(lines[0] + "\n")
    out = tmp_path / "calibration.json"
    result = CliRunner().invoke(app, ["calibrate", str(runs), "-o", str(out), "--exclude", str(excluded)])
    assert result.exit_code == 0, result.output
    fitted = load_calibration(out)
    assert fitted is not None and fitted.kinds["text:title"].n == 59  # p0 left out
    # A calibration that trusts title names only 0.3: at --min-confidence 0.5 they all go to warnings.
    low = Calibration(kinds={"text:title": Curve(n=100, rate=0.3), "value:*": Curve(n=100, rate=0.3)})
    strict = tmp_path / "strict.json"
    strict.write_text(low.model_dump_json())
    catalog = tmp_path / "catalog.jsonl"
    catalog.write_text((ROOT / "examples" / "catalog.jsonl").read_text().splitlines()[0] + "\n")
    tagged = tmp_path / "tagged.jsonl"
    args = ["generate", str(catalog), "-o", str(tagged), "--no-cache", "--calibration", str(strict)]
    result = CliRunner().invoke(app, [*args, "--min-confidence", "0.5", "--quiet"])
    assert result.exit_code == 0, result.output
    record = json.loads(tagged.read_text())
    assert record["provenance"]["min_confidence"] == 0.5
    assert record["provenance"]["calibration"] == low.hash
    assert record["attributes"] == {} and record["evidence"] == []
    assert any("held back: confidence 0.3 < 0.5" in w for w in record["warnings"])
