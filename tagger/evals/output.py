"""The three outputs of an eval run: a typed results JSON, a per-sample JSONL, and a Markdown report (+ a PNG chart)."""

from __future__ import annotations

import json
from collections import defaultdict
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from pydantic import BaseModel

from tagger.evals.dataset import UnmappedSummary, unmapped_summary
from tagger.evals.metrics import (
    attribute_counts,
    calibration_noise,
    category_confidences,
    expected_calibration_error,
    precision_coverage,
    precision_recall,
    reliability,
    value_confidences,
)
from tagger.evals.runner import EvalOutcome, EvalRun
from tagger.evals.samples import CategoryScore, ScoredSample
from tagger.records import Provenance

RESULTS = "results.json"
SAMPLES = "samples.jsonl"
REPORT = "report.md"
CHART = "category_accuracy.png"
RELIABILITY = "reliability.png"
THRESHOLDS = (0.0, 0.5, 0.6, 0.7, 0.8, 0.9, 0.95)


class RunResult(BaseModel):
    name: str
    provenance: Provenance
    n: int
    seconds: float
    metrics: dict[str, float | None]
    peak_rss_mb: float | None = None  # the process's peak RSS after this run (runs share the process)


class EvalResult(BaseModel):
    eval: str
    version: int
    created: str
    data_root: str
    config: dict[str, Any]
    runs: list[RunResult]
    gate: list[str] | None = None  # failures; [] = passed; None = not gated
    unmapped_gold: UnmappedSummary | None = None  # gold the taxonomy could not take (unscored or unreachable)

    def run(self, name: str | None = None) -> RunResult:
        return self.runs[0] if name is None else next(r for r in self.runs if r.name == name)


def to_result(outcome: EvalOutcome) -> EvalResult:
    return EvalResult(
        eval=outcome.config.name,
        version=outcome.config.version,
        created=datetime.now(UTC).isoformat(timespec="seconds"),
        data_root=str(outcome.data_root),
        config=outcome.config.model_dump(mode="json"),
        runs=[
            RunResult(
                name=r.name,
                provenance=r.provenance,
                n=len(r.samples),
                seconds=r.seconds,
                metrics=r.metrics,
                peak_rss_mb=r.peak_rss_mb,
            )
            for r in outcome.runs
        ],
        unmapped_gold=unmapped_summary(outcome.labeled),
    )


def load_result(path: Path) -> EvalResult:
    target = path / RESULTS if path.is_dir() else path
    return EvalResult.model_validate_json(target.read_text(encoding="utf-8"))


def _sample_line(outcome: EvalOutcome, run: EvalRun, index: int) -> dict[str, Any]:
    example, sample = outcome.labeled[index], run.samples[index]
    taxonomy = outcome.taxonomy
    gold = example.gold
    return {
        "run": run.name,
        "id": sample.id,
        "input": {
            "title": example.product.title,
            "description": example.product.description[:500],
            **example.product.fields,
        },
        "prediction": {
            "category": taxonomy.categories[sample.predicted_category].full_path if sample.predicted_category else None,
            "attributes": sample.predicted_attributes,
            "error": sample.error,
        },
        "gold": {
            "category": taxonomy.categories[gold.category_id].full_path if gold.category_id else None,
            "coarse": gold.coarse,
            "attributes": gold.attributes,
        },
        "verdict": {
            "category_exact": sample.category.exact if sample.category else None,
            "category_depth_hits": sample.category.depth_hits if sample.category else None,
            "attributes": sample.attributes,
            "conforms": sample.conforms,
        },
        "score": sample.as_dict(),  # what `tagger compare` rebuilds the sample from
    }


def load_samples(path: Path, run: str | None = None) -> list[ScoredSample]:
    """The scored samples of one run (the first in the file unless named) from an eval's output folder."""
    lines = [json.loads(line) for line in (path / SAMPLES).read_text(encoding="utf-8").splitlines() if line]
    if not lines:
        return []
    chosen = run or lines[0]["run"]
    samples = []
    for line in lines:
        if line["run"] == chosen:
            data = dict(line["score"])
            data["category"] = CategoryScore(**data["category"]) if data["category"] else None
            samples.append(ScoredSample(**data))
    return samples


def write_outputs(outcome: EvalOutcome, result: EvalResult, out_dir: Path) -> None:
    out_dir.mkdir(parents=True, exist_ok=True)
    (out_dir / RESULTS).write_text(result.model_dump_json(indent=2), encoding="utf-8")
    with (out_dir / SAMPLES).open("w", encoding="utf-8") as handle:
        for run in outcome.runs:
            for index in range(len(run.samples)):
                handle.write(json.dumps(_sample_line(outcome, run, index), ensure_ascii=False) + "\n")
    chart = _chart(outcome, out_dir / CHART)
    diagram = _reliability_chart(outcome.main, out_dir / RELIABILITY)
    (out_dir / REPORT).write_text(_report(outcome, result, chart, diagram), encoding="utf-8")


def _fmt(value: float | None) -> str:
    return "-" if value is None else f"{value:.3f}"


def _by_gold_category(outcome: EvalOutcome, samples: list[ScoredSample], depth: int | None) -> dict[str, list[bool]]:
    groups: dict[str, list[bool]] = defaultdict(list)
    for example, sample in zip(outcome.labeled, samples, strict=True):
        if sample.category is None or example.gold.category_id is None:
            continue
        path = outcome.taxonomy.categories[example.gold.category_id].path
        groups[" > ".join(path[:depth] if depth else path)].append(sample.category.exact)
    return groups


def _report(outcome: EvalOutcome, result: EvalResult, chart: str | None, diagram: str | None = None) -> str:
    config, main = outcome.config, outcome.main
    lines = [
        f"# Eval {config.name} v{config.version}",
        "",
        f"{config.description}".strip(),
        "",
        f"{len(outcome.labeled)} products from `{config.dataset.path}` (seed {config.sample.seed}); taxonomy "
        f"{outcome.taxonomy.name} {outcome.taxonomy.version}; "
        + "; ".join(
            f"{r.name}: {r.provenance.model}, template {r.provenance.template} {r.provenance.template_hash}"
            for r in outcome.runs
        ),
        "",
        *([f"Unmapped gold: {result.unmapped_gold.describe()}.", ""] if result.unmapped_gold else []),
        "| metric | " + " | ".join(r.name for r in result.runs) + " |",
        "|---|" + "---|" * len(result.runs),
    ]
    for name in config.metrics:
        lines.append(f"| {name} | " + " | ".join(_fmt(r.metrics.get(name)) for r in result.runs) + " |")
    lines.append("| peak RSS after the run, MB | " + " | ".join(_fmt(r.peak_rss_mb) for r in result.runs) + " |")
    if result.gate is not None:
        lines += ["", "**Gate: passed**" if not result.gate else "**Gate: FAILED**", *[f"- {f}" for f in result.gate]]
    worst = sorted(
        (
            (sum(h) / len(h), len(h), path)
            for path, h in _by_gold_category(outcome, main.samples, None).items()
            if len(h) >= 2
        ),
    )[:10]
    if worst:
        lines += [
            "",
            f"## Worst categories ({main.name}, at least 2 products)",
            "",
            "| gold category | n | exact |",
            "|---|---|---|",
        ]
        lines += [f"| {path} | {n} | {acc:.2f} |" for acc, n, path in worst]
    counts = attribute_counts(main.samples)
    if counts:
        lines += [
            "",
            f"## Attributes ({main.name})",
            "",
            "| attribute | pairs | P | R | F1 | NN | NV | VN | VC | VW |",
            "|---|---|---|---|---|---|---|---|---|---|",
        ]
        for handle, c in sorted(counts.items(), key=lambda item: precision_recall(item[1])[2]):
            p, r, f = precision_recall(c)
            cells = " | ".join(str(c[k]) for k in ("NN", "NV", "VN", "VC", "VW"))
            lines.append(f"| {handle} | {sum(c.values())} | {p:.2f} | {r:.2f} | {f:.2f} | {cells} |")
    if chart:
        lines += ["", f"![category accuracy by top-level category]({chart})"]
    lines += _confidence_section(main, diagram)
    lines += ["", f"## Example failures ({main.name})", ""]
    lines += _failures(outcome, main)
    return "\n".join(lines) + "\n"


def _confidence_section(run: EvalRun, diagram: str | None) -> list[str]:
    """How far the confidences can be trusted: per kind of value, the reliability bins, and what a user keeps (and
    how precise it is) at each --min-confidence."""
    values, categories = value_confidences(run.samples), category_confidences(run.samples)
    if not values and not categories:
        return []
    lines = [
        "",
        f"## Confidence ({run.name})",
        "",
        f"ECE: values {_fmt(expected_calibration_error(values))} ({len(values)} with a confidence), "
        f"categories {_fmt(expected_calibration_error(categories))} ({len(categories)}). A perfectly calibrated "
        f"confidence would show {_fmt(calibration_noise(values))} and {_fmt(calibration_noise(categories))} on "
        "these by chance (the mean of 200 draws, each value right with its confidence's probability).",
        "",
        "| kind | values | mean confidence | right |",
        "|---|---|---|---|",
    ]
    kinds: dict[str, list[tuple[float | None, bool]]] = defaultdict(list)
    for sample in run.samples:
        for value in sample.values:
            kinds[value["kind"]].append((value["confidence"], value["correct"]))
        if sample.category is not None and sample.category_kind is not None:
            kinds[sample.category_kind].append((sample.category_confidence, sample.category.exact))
    for kind, found in sorted(kinds.items()):
        known = [c for c, _ in found if c is not None]
        mean = sum(known) / len(known) if known else None
        lines.append(f"| {kind} | {len(found)} | {_fmt(mean)} | {_fmt(sum(r for _, r in found) / len(found))} |")
    for title, pairs in (("values", values), ("categories", categories)):
        if not pairs:
            continue
        lines += ["", f"Reliability ({title}):", "", "| mean confidence | right | n |", "|---|---|---|"]
        lines += [f"| {mean:.3f} | {hit:.3f} | {n} |" for mean, hit, n in reliability(pairs)]
    if values:
        lines += ["", "Precision and coverage by `--min-confidence` (values):", "", "| P | kept | precision |"]
        lines += ["|---|---|---|"]
        lines += [f"| {t:.2f} | {kept:.3f} | {_fmt(p)} |" for t, kept, p in precision_coverage(values, THRESHOLDS)]
    if diagram:
        lines += ["", f"![reliability diagram]({diagram})"]
    return lines


def _reliability_chart(run: EvalRun, path: Path) -> str | None:
    curves = {"values": value_confidences(run.samples), "categories": category_confidences(run.samples)}
    if not any(curves.values()):
        return None
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(5, 5))
    ax.plot([0, 1], [0, 1], linestyle="--", color="grey", label="calibrated")
    for name, pairs in curves.items():
        if pairs:
            bins = reliability(pairs)
            ax.plot([b[0] for b in bins], [b[1] for b in bins], marker="o", label=f"{name} ({len(pairs)})")
    ax.set_xlim(0, 1)
    ax.set_ylim(0, 1)
    ax.set_xlabel("confidence (bin mean)")
    ax.set_ylabel("share right")
    ax.set_title(f"{run.name}: reliability")
    ax.legend(loc="upper left")
    return _saved(fig, path)


def _failures(outcome: EvalOutcome, run: EvalRun, count: int = 10) -> list[str]:
    lines: list[str] = []
    shown = 0
    for index, sample in enumerate(run.samples):
        wrong = (
            sample.error
            or (sample.category and not sample.category.exact)
            or any(v in ("VW", "NV", "VN") for v in sample.attributes.values())
        )
        if not wrong or shown == count:
            continue
        shown += 1
        line = _sample_line(outcome, run, index)
        lines += [
            f"### {sample.id}",
            "",
            f"- gold: `{json.dumps(line['gold'], ensure_ascii=False)}`",
            f"- predicted: `{json.dumps(line['prediction'], ensure_ascii=False)}`",
            f"- verdicts: `{json.dumps(line['verdict']['attributes'])}`",
            "",
        ]
        prompt = run.prompt(index) if run.prompt else None
        if prompt:
            lines += ["<details><summary>prompt</summary>", "", "```text", prompt, "```", "", "</details>", ""]
        record = run.records[index]
        lines += ["```json", record.model_dump_json(exclude={"provenance"}), "```", ""]
    return lines or ["(none)"]


def _chart(outcome: EvalOutcome, path: Path) -> str | None:
    groups = {run.name: _by_gold_category(outcome, run.samples, 1) for run in outcome.runs}
    names = sorted({name for g in groups.values() for name in g})
    if not names:
        return None
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(8, 0.45 * len(names) + 1.5))
    height = 0.8 / len(groups)
    for i, (run, group) in enumerate(groups.items()):
        values = [sum(group.get(n, [])) / len(group[n]) if group.get(n) else 0.0 for n in names]
        ax.barh([y + i * height for y in range(len(names))], values, height=height, label=run)
    ax.set_yticks([y + height * (len(groups) - 1) / 2 for y in range(len(names))])
    ax.set_yticklabels([f"{n} ({len(groups[outcome.main.name].get(n, []))})" for n in names], fontsize=8)
    ax.set_xlim(0, 1)
    ax.set_xlabel("category exact accuracy")
    ax.set_title(f"{outcome.config.name}: accuracy by gold top-level category")
    ax.legend(loc="lower right")
    return _saved(fig, path)


def _saved(fig: Any, path: Path) -> str:
    import matplotlib.pyplot as plt

    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)
    return path.name
