"""`tagger eval` and `tagger compare`: thin commands over tagger.evals."""

from __future__ import annotations

import shutil
from pathlib import Path
from typing import Annotated, Optional

import typer
from rich.console import Console
from rich.table import Table

from tagger.evals.compare import Change, MetricDelta, changed_products, compare_metrics
from tagger.evals.config import ExamplesConfig, default_data_root, load_config
from tagger.evals.gate import check_gate
from tagger.evals.output import RESULTS, load_result, load_samples, to_result, write_outputs
from tagger.evals.runner import run_eval

EXIT_GATE_FAILED = 4
console = Console(stderr=True, highlight=False)


def _deltas_table(title: str, deltas: list[MetricDelta], a: str, b: str) -> Table:
    table = Table(title=title)
    for column in ("metric", a, b, "delta", "95% CI"):
        table.add_column(column)

    def cell(value: float | None) -> str:
        return "-" if value is None else f"{value:.3f}"

    for d in deltas:
        ci = "-" if d.low is None or d.high is None else f"[{d.low:+.3f}, {d.high:+.3f}]"
        table.add_row(d.name, cell(d.a), cell(d.b), "-" if d.delta is None else f"{d.delta:+.3f}", ci)
    return table


def _print_changes(changes: list[Change]) -> None:
    for kind in ("fixed", "broken"):
        picked = [c for c in changes if c.change == kind]
        console.print(f"{kind}: {len(picked)}")
        for change in picked:
            console.print(f"  {change.id}: {change.what}")


def eval_command(
    config_path: Annotated[Path, typer.Argument(metavar="CONFIG", help="An eval YAML file (see evals/)")],
    data_root: Annotated[
        Optional[Path], typer.Option(help="The data folder [default: $TAGGER_DATA_ROOT or ../shared/data]")
    ] = None,
    limit: Annotated[Optional[int], typer.Option(help="Only the first N products of the sample")] = None,
    out: Annotated[Optional[Path], typer.Option(help="Output folder [default: eval-results/NAME]")] = None,
    template: Annotated[Optional[str], typer.Option(help="Use this template instead of the config's")] = None,
    compare: Annotated[
        Optional[str], typer.Option("--compare", help="Also run this template on the same sample and compare")
    ] = None,
    minilm: Annotated[
        Optional[bool], typer.Option("--minilm/--no-minilm", help="Run the MiniLM baseline too [default: config]")
    ] = None,
    write_baseline: Annotated[bool, typer.Option(help="Save this run's results as the config's baseline file")] = False,
    shortlist: Annotated[
        Optional[int],
        typer.Option(help="Narrow the category to the K nearest paths (MiniLM); 0: every category [default: config]"),
    ] = None,
    examples: Annotated[
        Optional[int], typer.Option(help="K few-shot examples from the dataset, never the product [default: config]")
    ] = None,
    tree: Annotated[bool, typer.Option("--tree", help="Choose the category level by level [default: config]")] = False,
) -> None:
    """Run an eval: writes results.json, samples.jsonl, report.md (and a chart); exits 4 when the gate fails."""
    try:
        config = load_config(config_path)
    except ValueError as exc:
        console.print(f"[red]error:[/red] {exc}")
        raise typer.Exit(1) from exc
    if shortlist is not None:
        config.pipeline.shortlist = shortlist
    if examples is not None:
        config.pipeline.examples = ExamplesConfig(k=examples) if examples else None
    if tree:  # the tree walks the taxonomy itself: it replaces the config's shortlist unless one was asked for
        config.pipeline.tree = True
        config.pipeline.shortlist = shortlist or 0
    root = data_root or default_data_root()
    target = out or Path("eval-results") / config.name
    outcome = run_eval(config, root, limit=limit, template=template, minilm=minilm)
    result = to_result(outcome)
    baseline_path = Path(config.resolve(config.baseline, root)) if config.baseline else None
    if config.gate:
        baseline = load_result(baseline_path).run().metrics if baseline_path and baseline_path.is_file() else None
        result.gate = check_gate(result.run().metrics, config.gate, baseline)
    write_outputs(outcome, result, target)
    outcome.close()
    table = Table(title=f"{config.name} v{config.version}: {len(outcome.examples)} products")
    table.add_column("metric")
    for run in result.runs:
        table.add_column(run.name)
    for name in config.metrics:
        table.add_row(name, *("-" if r.metrics.get(name) is None else f"{r.metrics[name]:.3f}" for r in result.runs))
    console.print(table)
    console.print(f"wrote {target / RESULTS}, samples.jsonl, report.md")
    if write_baseline and baseline_path is not None:
        shutil.copyfile(target / RESULTS, baseline_path)
        console.print(f"baseline saved to {baseline_path}")
    if compare is not None:
        other = run_eval(config, root, limit=limit, template=compare, minilm=False)
        other_target = target.with_name(target.name + "-compare")
        write_outputs(other, to_result(other), other_target)
        other.close()
        a, b = outcome.main.samples, other.main.samples
        console.print(
            _deltas_table(
                f"{template or config.template or 'default'} vs {compare}",
                compare_metrics(a, b, config.metrics),
                "A",
                "B",
            )
        )
        _print_changes(changed_products(a, b))
    if result.gate:
        console.print("[red]gate failed:[/red]")
        for failure in result.gate:
            console.print(f"  {failure}")
        raise typer.Exit(EXIT_GATE_FAILED)
    if result.gate is not None:
        console.print("gate passed")


def compare_command(
    a: Annotated[Path, typer.Argument(help="An eval output folder (the reference)")],
    b: Annotated[Path, typer.Argument(help="Another eval output folder, over the same sample")],
) -> None:
    """Compare two eval runs: metric deltas with bootstrap intervals, and the products whose verdict changed."""
    names = load_result(a).config["metrics"]
    left, right = load_samples(a), load_samples(b)
    console.print(_deltas_table(f"{a} vs {b}", compare_metrics(left, right, names), "A", "B"))
    _print_changes(changed_products(left, right))
