"""The eval datasets as the configs in evals/ map them: exact counts against the real dev sets, and gold that cannot
be mapped onto the taxonomy counted and reported instead of silently left unscored."""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from tagger.evals.config import default_data_root, load_config
from tagger.evals.dataset import load_labeled, unmapped_summary
from tagger.evals.output import load_result, to_result, write_outputs
from tagger.evals.runner import run_eval
from tagger.taxonomy import Taxonomy, load_taxonomy

ROOT = Path(__file__).resolve().parent.parent
DATA_ROOT = default_data_root()
needs_data = pytest.mark.skipif(
    not DATA_ROOT.is_dir(), reason=f"the shared dev sets are not at {DATA_ROOT} (set TAGGER_DATA_ROOT)"
)


@dataclass(frozen=True)
class Expected:
    """Counted over the whole file with the config's mapping (by an independent script over the raw JSONL and the
    taxonomy sources, then pinned here: a change in the loader or the mapping shows up as a changed count)."""

    lines: int  # in the file
    rows: int  # with a gold category: the loadable population
    coarse: int  # Shopify gold with fit: coarse
    pairs: int  # scored (product, attribute) pairs
    gold_values: int  # accepted values over those pairs
    unmapped_values: dict[str, int]  # dataset attribute -> values no attribute of the category takes
    outside: int  # gold values of closed attributes that are not among the allowed values
    sample: int  # the config's sample size


DEV_SETS = {
    "flipkart-shopify": Expected(701, 669, 165, 2188, 1335, {"Ideal For": 3, "Fabric": 2}, 308, 100),
    "oa-mine": Expected(1452, 1452, 0, 16733, 7360, {}, 0, 200),
    "wdc-pave": Expected(1066, 1066, 0, 16439, 8985, {}, 0, 200),
    "oa-mine-shopify": Expected(1452, 1304, 1157, 0, 0, {}, 0, 100),
    "wdc-pave-shopify": Expected(1066, 786, 599, 0, 0, {}, 0, 100),
}


@pytest.fixture(scope="module")
def taxonomies() -> dict[str, Taxonomy]:
    return {}


def _taxonomy_of(name: str, cache: dict[str, Taxonomy]) -> Taxonomy:
    config = load_config(ROOT / "evals" / f"{name}.yaml")
    spec = config.resolve(config.taxonomy, DATA_ROOT) if config.taxonomy else None
    key = spec or "default"
    if key not in cache:
        cache[key] = load_taxonomy(spec)
    return cache[key]


@needs_data
@pytest.mark.parametrize("name", sorted(DEV_SETS))
def test_each_dev_set_loads_with_its_configured_gold(name: str, taxonomies: dict[str, Taxonomy]) -> None:
    expected = DEV_SETS[name]
    config = load_config(ROOT / "evals" / f"{name}.yaml")
    taxonomy = _taxonomy_of(name, taxonomies)
    path = DATA_ROOT / config.dataset.path
    raw = [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines()]
    assert config.dataset.category is not None
    field = config.dataset.category.field
    labeled = [row for row in raw if row.get(field) is not None]
    assert (len(raw), len(labeled)) == (expected.lines, expected.rows)

    every = load_labeled(config, taxonomy, DATA_ROOT, sample=False)
    assert [e.product.id for e in every] == [row["id"] for row in labeled]
    assert [e.product.title for e in every] == [row["title"] for row in labeled]
    # Every gold category maps onto a node, and it is the node the file names.
    for example, row in zip(every, labeled, strict=True):
        assert example.gold.category_id is not None, row[field]
        node = taxonomy.categories[example.gold.category_id]
        if config.dataset.category.kind == "shopify":
            assert example.gold.category_id == row[field]["gid"] and list(node.path) == row[field]["path"]
        else:
            assert list(node.path) == row[field]
    assert sum(e.gold.coarse for e in every) == expected.coarse
    assert sum(len(e.gold.attributes) for e in every) == expected.pairs
    assert sum(len(v) for e in every for v in e.gold.attributes.values()) == expected.gold_values

    summary = unmapped_summary(every)
    assert (summary.products, summary.categories) == (expected.rows, 0)
    assert summary.by_attribute == expected.unmapped_values
    assert summary.attribute_values == sum(expected.unmapped_values.values())
    assert summary.outside_values == expected.outside

    sampled = load_labeled(config, taxonomy, DATA_ROOT)
    assert len(sampled) == expected.sample == config.sample.size
    order = {row["id"]: i for i, row in enumerate(labeled)}
    positions = [order[e.product.id] for e in sampled]
    assert positions == sorted(positions) and len(set(positions)) == expected.sample  # file order, no repeats
    assert [e.product.id for e in load_labeled(config, taxonomy, DATA_ROOT)] == [e.product.id for e in sampled]
    assert [e.product.id for e in load_labeled(config, taxonomy, DATA_ROOT, limit=7)] == [
        e.product.id for e in sampled[:7]
    ]


@needs_data
def test_the_configured_renames_and_names_reach_the_gold(taxonomies: dict[str, Taxonomy]) -> None:
    """One known row per mapping style: an explicit map with value renames (Flipkart), attribute names (OA-Mine)."""
    flipkart = load_config(ROOT / "evals" / "flipkart-shopify.yaml")
    rows = {
        e.product.id: e
        for e in load_labeled(flipkart, _taxonomy_of("flipkart-shopify", taxonomies), DATA_ROOT, sample=False)
    }
    raw = {
        row["id"]: row
        for row in map(json.loads, (DATA_ROOT / "flipkart" / "dev.jsonl").read_text(encoding="utf-8").splitlines())
    }
    renamed = [i for i, row in raw.items() if row["attributes"].get("Ideal For") == ["Women's"] and i in rows]
    assert renamed, "no Flipkart row with Ideal For = Women's"
    for product_id in renamed:
        assert rows[product_id].gold.attributes.get("target_gender") == ["Female"]
    assert rows[renamed[0]].product.fields == {"brand": raw[renamed[0]]["brand"]}  # only the configured fields

    oa_mine = load_config(ROOT / "evals" / "oa-mine.yaml")
    first = load_labeled(oa_mine, _taxonomy_of("oa-mine", taxonomies), DATA_ROOT, sample=False)[0]
    assert first.product.id == "oamine-train-0000"
    gold = {handle: values for handle, values in first.gold.attributes.items() if values}
    assert gold == {
        "brand": ["Ellie Shoes"],
        "gender": ["Women's"],
        "model_name": ["8400"],
        "color": ["Red Patent"],
        "size": ["14 M US"],
    }


# --- gold that cannot be mapped: counted, warned about, reported --------------------------------------------------


def _write_eval(tmp_path: Path, rows: list[dict[str, Any]], attributes: str = "{field: gold.attributes}") -> Path:
    dataset = tmp_path / "gold.jsonl"
    dataset.write_text("".join(json.dumps(row) + "\n" for row in rows), encoding="utf-8")
    config = tmp_path / "unmapped.yaml"
    config.write_text(
        f"""name: unmapped
version: 1
dataset:
  path: {dataset}
  category: {{field: gold.category, kind: id}}
  attributes: {attributes}
backend: {{name: minilm}}
metrics: [category_exact, validity]
""",
        encoding="utf-8",
    )
    return config


TEE = "Northwind crew neck tee, navy cotton"
UNMAPPABLE: list[dict[str, Any]] = [
    {"id": "a", "title": TEE, "gold": {"category": "t-shirts", "attributes": {"color": ["Navy"], "warranty": ["2y"]}}},
    {"id": "b", "title": TEE, "gold": {"category": "capes-and-cloaks", "attributes": {"color": ["Navy"]}}},
    {"id": "c", "title": TEE, "gold": {"category": "t-shirts", "attributes": {"color": ["Chartreuse", "Navy"]}}},
    {"id": "d", "title": TEE, "gold": {"category": "t-shirts", "attributes": {"storage_capacity": ["64 GB", "n/a"]}}},
    {
        "id": "e",
        "title": TEE,
        "gold": {"category": "t-shirts", "attributes": {"color": ["Navy"], "brand": ["Northwind"]}},
    },
]


def test_unmapped_gold_is_counted_and_warned_about(
    tmp_path: Path, default_taxonomy: Taxonomy, caplog: pytest.LogCaptureFixture
) -> None:
    config = load_config(_write_eval(tmp_path, UNMAPPABLE))
    with caplog.at_level(logging.WARNING, logger="tagger.evals"):
        examples = load_labeled(config, default_taxonomy, tmp_path)
    assert [e.gold.category_id for e in examples] == ["t-shirts", None, "t-shirts", "t-shirts", "t-shirts"]
    assert examples[1].unmapped.category == "capes-and-cloaks"
    assert examples[0].unmapped.attributes == {"warranty": 1}  # no such attribute in the taxonomy
    assert examples[3].unmapped.attributes == {
        "storage_capacity": 1
    }  # an attribute, but not a t-shirt's; n/a is no value
    assert examples[2].unmapped.outside == (("color", "Chartreuse"),)  # scored, but no prediction can match it
    assert examples[2].gold.attributes["color"] == ["Chartreuse", "Navy"]
    assert examples[4].unmapped.attributes == {} and examples[4].unmapped.outside == ()
    summary = unmapped_summary(examples)
    assert (summary.products, summary.categories, summary.attribute_values, summary.outside_values) == (5, 1, 2, 1)
    assert summary.by_attribute == {"warranty": 1, "storage_capacity": 1}
    [warning] = [r.getMessage() for r in caplog.records if r.name == "tagger.evals"]
    assert "eval unmapped on tagger-default: 1 of 5 gold categories could not be mapped" in warning
    assert "'capes-and-cloaks'" in warning
    assert "2 gold attribute values have no attribute of their category (warranty: 1, storage_capacity: 1)" in warning
    assert "1 gold values of closed attributes are not among the allowed values" in warning


def test_attributes_an_explicit_map_leaves_out_are_not_counted(
    tmp_path: Path, default_taxonomy: Taxonomy, caplog: pytest.LogCaptureFixture
) -> None:
    config = load_config(_write_eval(tmp_path, UNMAPPABLE, "{field: gold.attributes, map: {color: color}}"))
    with caplog.at_level(logging.WARNING, logger="tagger.evals"):
        summary = unmapped_summary(load_labeled(config, default_taxonomy, tmp_path))
    assert (summary.categories, summary.attribute_values, summary.outside_values) == (1, 0, 1)
    clean = load_config(_write_eval(tmp_path, [UNMAPPABLE[4]]))
    caplog.clear()
    with caplog.at_level(logging.WARNING, logger="tagger.evals"):
        assert not unmapped_summary(load_labeled(clean, default_taxonomy, tmp_path))
    assert [r for r in caplog.records if r.name == "tagger.evals"] == []


def test_the_eval_results_and_report_say_what_was_not_scored(tmp_path: Path) -> None:
    """Through the eval runner with a real pipeline (the MiniLM nearest-category baseline, no LLM needed)."""
    config = load_config(_write_eval(tmp_path, UNMAPPABLE))
    outcome = run_eval(config, tmp_path)
    try:
        write_outputs(outcome, to_result(outcome), tmp_path / "out")
    finally:
        outcome.close()
    result = load_result(tmp_path / "out")
    assert result.unmapped_gold is not None
    assert (result.unmapped_gold.categories, result.unmapped_gold.attribute_values) == (1, 2)
    assert result.unmapped_gold.outside_values == 1
    report = (tmp_path / "out" / "report.md").read_text(encoding="utf-8")
    assert "Unmapped gold: 1 of 5 gold categories could not be mapped to the taxonomy" in report
