"""Feedback out of the store: (a) a pool for `--examples` (reviewed products with their final tags), (b) gold and an
eval config for `tagger eval` over the reviewed set, (c) what reviewers changed, per attribute and per category."""

from __future__ import annotations

import json
from collections import Counter, defaultdict
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from tagger.review.decisions import Tags
from tagger.review.store import Item, ReviewStore

EVAL_METRICS = [
    "category_exact", "category_hf1", "attribute_precision", "attribute_recall", "attribute_f1",
    "validity", "conformance", "error_rate",
]  # fmt: skip


@dataclass(frozen=True)
class ExportSummary:
    pool: Path
    gold: Path
    eval_config: Path
    report: Path
    accepted: int
    rejected: int
    without_text: int  # accepted records whose product text the store does not hold (not in the pool)


def export(store: ReviewStore, out_dir: Path, taxonomy_spec: str | None) -> ExportSummary:
    out_dir.mkdir(parents=True, exist_ok=True)
    paths = {name: out_dir / name for name in ("pool.jsonl", "gold.jsonl", "eval.yaml", "report.json")}
    accepted = rejected = without_text = 0
    changes = _Changes()
    with (
        paths["pool.jsonl"].open("w", encoding="utf-8") as pool,
        paths["gold.jsonl"].open("w", encoding="utf-8") as gold,
    ):
        for item, tags in store.reviewed():
            changes.add(item, tags)
            if tags.status == "rejected":
                rejected += 1
                continue
            accepted += 1
            if item.product is None:
                without_text += 1
                continue
            row = _product_row(item)
            pool.write(json.dumps(row | _final(tags), ensure_ascii=False) + "\n")
            gold.write(json.dumps(row | {"gold": _final(tags)}, ensure_ascii=False) + "\n")
    paths["eval.yaml"].write_text(_eval_config(taxonomy_spec, fields=_field_names(store)), encoding="utf-8")
    paths["report.json"].write_text(json.dumps(changes.report(store), indent=2, ensure_ascii=False), encoding="utf-8")
    return ExportSummary(
        paths["pool.jsonl"], paths["gold.jsonl"], paths["eval.yaml"], paths["report.json"],
        accepted, rejected, without_text,
    )  # fmt: skip


def _product_row(item: Item) -> dict[str, Any]:
    assert item.product is not None
    product = item.product
    return {"id": product.id, "title": product.title, "description": product.description, **product.fields}


def _final(tags: Tags) -> dict[str, Any]:
    return {"category": tags.category, "attributes": {h: v for h, v in tags.attributes.items() if v}}


def _field_names(store: ReviewStore) -> list[str]:
    text = store.get_meta("fields")
    return json.loads(text) if text else ["brand"]


def _eval_config(taxonomy_spec: str | None, fields: list[str]) -> str:
    config: dict[str, Any] = {
        "name": "reviewed",
        "version": 1,
        "description": "Products accepted in `tagger review`, their final tags as gold",
        "dataset": {
            "path": "gold.jsonl",
            "fields": fields,
            "category": {"field": "gold.category", "kind": "id"},
            "attributes": {"field": "gold.attributes"},
        },
        "pipeline": {"shortlist": 1},
        "metrics": EVAL_METRICS,
    }
    if taxonomy_spec:
        config["taxonomy"] = _absolute(taxonomy_spec)
    return yaml.safe_dump(config, sort_keys=False, allow_unicode=True)


def _absolute(spec: str) -> str:
    """The eval config lives elsewhere than where the review started: its taxonomy path must not be relative."""
    kind, sep, rest = spec.partition(":")
    if sep and kind in ("shopify", "google"):
        return f"{kind}:{Path(rest).expanduser().resolve()}"
    return str(Path(spec).expanduser().resolve())


class _Changes:
    """Counts what reviewers changed between the run's tags and the final ones."""

    def __init__(self) -> None:
        self.attributes: dict[str, Counter[str]] = defaultdict(Counter)
        self.categories: dict[str, Counter[str]] = defaultdict(Counter)

    def add(self, item: Item, final: Tags) -> None:
        assert item.original is not None
        original = item.original
        per_category = self.categories[original.category]
        per_category["reviewed"] += 1
        if final.status == "rejected":
            per_category["rejected"] += 1
            return
        per_category["category_changed" if final.category != original.category else "category_kept"] += 1
        same = final.category == original.category and _values(final) == _values(original)
        per_category["accepted_unchanged" if same else "accepted_edited"] += 1
        for handle in sorted(set(original.attributes) | set(final.attributes)):
            before, after = set(original.attributes.get(handle, [])), set(final.attributes.get(handle, []))
            counts = self.attributes[handle]
            counts["kept"] += len(before & after)
            counts["removed"] += len(before - after)
            counts["added"] += len(after - before)
            if before and after and before != after:
                counts["records_changed"] += 1

    def report(self, store: ReviewStore) -> dict[str, Any]:
        progress = store.progress()
        sources = Counter(e["source"] for e in store.events() if e["action"] != "undo" and e["undone_by"] is None)
        attributes = {}
        for handle, counts in sorted(self.attributes.items()):
            judged = counts["kept"] + counts["removed"]
            precision = counts["kept"] / judged if judged else None
            attributes[handle] = dict(counts) | {"kept_share": precision}
        return {
            "reviewed": progress.reviewed,
            "total": progress.total,
            "accepted_unchanged": progress.accepted,
            "accepted_edited": progress.edited,
            "rejected": progress.rejected,
            "acceptance_rate": progress.acceptance_rate,
            "events_by_source": dict(sources),
            "attributes": attributes,
            "categories": {k: dict(v) for k, v in sorted(self.categories.items())},
        }


def _values(tags: Tags) -> dict[str, list[str]]:
    return {h: sorted(v) for h, v in tags.attributes.items() if v}
