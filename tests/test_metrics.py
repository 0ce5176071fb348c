"""Metrics on hand-computed examples: coarse gold, depth, hierarchy, the attribute protocol, missing predictions."""

from __future__ import annotations

import pytest

from tagger.evals.compare import changed_products, compare_metrics
from tagger.evals.config import Threshold
from tagger.evals.gate import check_gate
from tagger.evals.metrics import METRICS, compute
from tagger.evals.samples import Gold, ScoredSample, attribute_verdict, normalize, score_category
from tagger.taxonomy import taxonomy_from_dict

TREE = taxonomy_from_dict(
    {
        "name": "t",
        "version": "1",
        "attributes": {"color": {"values": ["Red", "Blue"], "multi": True}},
        "categories": [
            {
                "name": "A",
                "id": "a",
                "children": [
                    {"name": "B", "id": "b", "children": [{"name": "C", "id": "c"}, {"name": "D", "id": "d"}]},
                    {"name": "E", "id": "e"},
                ],
            },
            {"name": "F", "id": "f"},
        ],
    }
)


def _sample(
    pred: str | None, gold: Gold, attributes: dict[str, str] | None = None, error: str | None = None
) -> ScoredSample:
    return ScoredSample(
        id=f"{pred}-{gold.category_id}-{len(attributes or {})}",
        error=error,
        conforms=error is None,
        category=score_category(TREE, pred, gold),
        attributes=attributes or {},
        predicted_category=pred,
    )


def test_category_scores_by_hand() -> None:
    exact = score_category(TREE, "c", Gold("c"))
    assert exact is not None and exact.exact and exact.depth_hits == [True, True, True]
    sibling = score_category(TREE, "d", Gold("c"))
    assert sibling is not None and not sibling.exact
    assert sibling.depth_hits == [True, True, False]
    assert (sibling.overlap, sibling.predicted_size, sibling.gold_size) == (2, 3, 3)
    shallow = score_category(TREE, "b", Gold("c"))
    assert shallow is not None and shallow.depth_hits == [True, True, False] and shallow.predicted_size == 2
    coarse_hit = score_category(TREE, "d", Gold("b", coarse=True))
    assert coarse_hit is not None and coarse_hit.exact and coarse_hit.overlap == 3 == coarse_hit.gold_size
    coarse_miss = score_category(TREE, "e", Gold("b", coarse=True))
    assert coarse_miss is not None and not coarse_miss.exact and coarse_miss.overlap == 1
    missing = score_category(TREE, None, Gold("c"))
    assert missing is not None and (missing.exact, missing.predicted_size, missing.gold_size) == (False, 0, 3)
    assert score_category(TREE, "c", Gold(None)) is None


def test_category_metrics_by_hand() -> None:
    samples = [
        _sample("c", Gold("c")),  # exact: overlap 3/3/3
        _sample("d", Gold("c")),  # sibling: overlap 2, pred 3, gold 3
        _sample("f", Gold("e")),  # other root: overlap 0, pred 1, gold 2
        _sample(None, Gold("e"), error="backend_error"),  # no prediction: pred 0, gold 2
        _sample("d", Gold("b", coarse=True)),  # coarse hit: 3/3/3
    ]
    metrics = compute(
        [
            "category_exact",
            "category_depth_1",
            "category_depth_2",
            "category_depth_3",
            "category_hp",
            "category_hr",
            "category_hf1",
            "validity",
            "error_rate",
        ],
        samples,
    )
    assert metrics["category_exact"] == pytest.approx(2 / 5)
    assert metrics["category_depth_1"] == pytest.approx(3 / 5)  # c, d, coarse; f and the miss are wrong at the root
    assert metrics["category_depth_2"] == pytest.approx(3 / 5)  # gold depth >= 2: all five; right: c, d, coarse
    assert metrics["category_depth_3"] == pytest.approx(1 / 2)  # gold depth 3: the first two; right: c
    hp, hr = (3 + 2 + 0 + 0 + 3) / (3 + 3 + 1 + 0 + 3), (3 + 2 + 0 + 0 + 3) / (3 + 3 + 2 + 2 + 3)
    assert metrics["category_hp"] == pytest.approx(hp)
    assert metrics["category_hr"] == pytest.approx(hr)
    assert metrics["category_hf1"] == pytest.approx(2 * hp * hr / (hp + hr))
    assert metrics["validity"] == pytest.approx(4 / 5)
    assert metrics["error_rate"] == pytest.approx(1 / 5)


def test_attribute_verdicts_follow_the_protocol() -> None:
    assert attribute_verdict([], []) == "NN"
    assert attribute_verdict(["n/a"], ["N/A"]) == "NN"  # "n/a" on either side is no value
    assert attribute_verdict(["Red"], []) == "NV"
    assert attribute_verdict([], ["Red"]) == "VN"
    assert attribute_verdict(["red."], ["Crimson", "Red"]) == "VC"  # any annotated variant, after normalization
    assert attribute_verdict(["Blue", "Red"], ["Red"]) == "VW"  # the first predicted value is the prediction
    assert normalize("  \uff21\uff22\uff23  Shoes ") == "abc shoes"  # full-width letters


def test_attribute_metrics_by_hand() -> None:
    gold = Gold("c")
    samples = [
        _sample("c", gold, {"color": "VC", "size": "VW"}),
        _sample("c", gold, {"color": "NV", "size": "VN"}),
        _sample("c", gold, {"color": "VC", "size": "NN"}),
    ]
    metrics = compute(["attribute_precision", "attribute_recall", "attribute_f1", "attribute_macro_f1"], samples)
    # VC 2, VW 1, NV 1, VN 1, NN 1: P = 2 / (1 + 2 + 1), R = 2 / (1 + 2 + 1)
    assert metrics["attribute_precision"] == pytest.approx(0.5)
    assert metrics["attribute_recall"] == pytest.approx(0.5)
    assert metrics["attribute_f1"] == pytest.approx(0.5)
    # color: VC 2, NV 1 -> P 2/3, R 1, F1 0.8; size: VW 1, VN 1 -> 0; macro 0.4
    assert metrics["attribute_macro_f1"] == pytest.approx(0.4)
    assert compute(["attribute_f1"], [_sample("c", gold)])["attribute_f1"] is None  # no pairs: not measured


def test_every_registered_metric_handles_an_empty_run() -> None:
    for name, fn in METRICS.items():
        assert fn([]) is None, name
    with pytest.raises(KeyError, match="unknown metrics"):
        compute(["accuracy_of_vibes"], [])


def test_gate_floors_and_baseline_tolerance() -> None:
    gate = {"category_hf1": Threshold(min=0.2, tolerance=0.05), "error_rate": Threshold(max=0.1, tolerance=0.02)}
    assert check_gate({"category_hf1": 0.5, "error_rate": 0.0}, gate, {"category_hf1": 0.52, "error_rate": 0.0}) == []
    failures = check_gate({"category_hf1": 0.1, "error_rate": 0.2}, gate, {"category_hf1": 0.5, "error_rate": 0.05})
    assert failures == [
        "category_hf1 = 0.1000 is under its floor 0.2",
        "category_hf1 = 0.1000 is 0.4000 worse than the baseline 0.5000 (tolerance 0.05)",
        "error_rate = 0.2000 is over its ceiling 0.1",
        "error_rate = 0.2000 is 0.1500 worse than the baseline 0.0500 (tolerance 0.02)",
    ]
    assert check_gate({}, {"category_hf1": Threshold(min=0.1)}) == ["category_hf1: not measured"]


def test_compare_lists_exactly_the_changed_products() -> None:
    gold = Gold("c")
    a = [ScoredSample(f"p{i}", None, True, score_category(TREE, "c", gold), {"color": "VC"}, "c") for i in range(6)]
    b = list(a)
    b[1] = ScoredSample("p1", None, True, score_category(TREE, "d", gold), {"color": "VC"}, "d")  # broken category
    b[4] = ScoredSample("p4", None, True, score_category(TREE, "c", gold), {"color": "VW"}, "c")  # broken attribute
    changes = changed_products(a, b)
    assert [(c.id, c.change) for c in changes] == [("p1", "broken"), ("p4", "broken")]
    assert changes[0].what == "category c -> d"
    back = changed_products(b, a)
    assert [(c.id, c.change) for c in back] == [("p1", "fixed"), ("p4", "fixed")]
    [delta] = compare_metrics(a, b, ["category_exact"], rounds=200)
    assert delta.a == 1.0 and delta.b == pytest.approx(5 / 6) and delta.delta == pytest.approx(-1 / 6)
    assert delta.low is not None and delta.high is not None and delta.low <= delta.delta <= delta.high <= 0
