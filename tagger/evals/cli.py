"""`tagger eval` and `tagger compare`: thin commands over tagger.evals."""

from __future__ import annotations

import shutil
from pathlib import Path
from typing import Annotated, Optional

import typer
from rich.console import Console
from rich.table import Table

from tagger.evals.compare import Change, MetricDelta, changed_products, compare_metrics, metric_noise
from tagger.evals.config import EvalConfig, ExamplesConfig, default_data_root, load_config
from tagger.evals.gate import check_gate
from tagger.evals.output import RESULTS, load_result, load_samples, to_result, write_outputs
from tagger.evals.runner import Pipeline, run_eval
from tagger.evals.samples import ScoredSample

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


def _planted(name: str, config: EvalConfig, root: Path) -> Pipeline:
    from tagger.evals.broken import PLANTED
    from tagger.taxonomy import load_taxonomy

    if name not in PLANTED:
        console.print(f"[red]error:[/red] --planted {name!r}: choose one of {', '.join(PLANTED)}")
        raise typer.Exit(1)
    return PLANTED[name](load_taxonomy(config.resolve(config.taxonomy, root) if config.taxonomy else None))


def _save_baseline(gate: list[str] | None, results: Path, baseline: Path) -> None:
    """A run becomes the baseline only when it passed its gate: a failing run would lower every tolerance after it."""
    if gate:
        console.print(f"[red]not saving the baseline:[/red] the gate failed ({len(gate)} failures, below)")
        for failure in gate:
            console.print(f"  {failure}")
        raise typer.Exit(EXIT_GATE_FAILED)
    shutil.copyfile(results, baseline)
    console.print(f"baseline saved to {baseline}")


def eval_command(
    config_path: Annotated[Path, typer.Argument(metavar="CONFIG", help="An eval YAML file (see evals/)")],
    data_root: Annotated[
        Optional[Path], typer.Option(help="The data folder [default: $TAGGER_DATA_ROOT or ../shared/data]")
    ] = None,
    limit: Annotated[Optional[int], typer.Option(help="Only the first N products of the sample")] = None,
    seed: Annotated[
        Optional[int], typer.Option(help="Draw the sample with this seed (another sample of the same size)")
    ] = None,
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
    planted: Annotated[
        Optional[str],
        typer.Option(help="Run a pipeline broken on purpose instead: brand-only, first-value, random-category"),
    ] = None,
) -> None:
    """Run an eval: writes results.json, samples.jsonl, report.md (and a chart); exits 4 when the gate fails."""
    try:
        config = load_config(config_path)
    except ValueError as exc:
        console.print(f"[red]error:[/red] {exc}")
        raise typer.Exit(1) from exc
    if shortlist is not None:
        config.pipeline.shortlist = shortlist
    if seed is not None:
        config.sample.seed = seed
    if examples is not None:
        config.pipeline.examples = ExamplesConfig(k=examples) if examples else None
    if tree:  # the tree walks the taxonomy itself: it replaces the config's shortlist unless one was asked for
        config.pipeline.tree = True
        config.pipeline.shortlist = shortlist or 0
    overrides = [
        name
        for name, given in (
            ("--limit", limit),
            ("--seed", seed),
            ("--template", template),
            ("--shortlist", shortlist),
            ("--examples", examples),
            ("--tree", tree or None),
            ("--planted", planted),
        )
        if given is not None
    ]
    if write_baseline and (config.baseline is None or overrides):
        why = "the config names no baseline file" if config.baseline is None else f"{', '.join(overrides)} given"
        console.print(f"[red]error:[/red] --write-baseline saves only the config's own full run: {why}")
        raise typer.Exit(1)
    root = data_root or default_data_root()
    target = out or Path("eval-results") / config.name
    pipeline = _planted(planted, config, root) if planted else None
    outcome = run_eval(config, root, limit=limit, template=template, minilm=minilm, pipeline=pipeline)
    if pipeline is not None:
        outcome.owned.append(pipeline)
    result = to_result(outcome)
    baseline_path = None
    if config.baseline:  # beside the YAML, whether or not it exists yet
        baseline_path = Path(config.resolve(config.baseline, root))
        if not baseline_path.is_absolute() and config.source is not None:
            baseline_path = config.source.parent / config.baseline
    if config.gate:
        baseline = load_result(baseline_path).run().metrics if baseline_path and baseline_path.is_file() else None
        result.gate = check_gate(result.run().metrics, config.gate, baseline)
    write_outputs(outcome, result, target)
    outcome.close()
    table = Table(title=f"{config.name} v{config.version}: {len(outcome.labeled)} products")
    table.add_column("metric")
    for run in result.runs:
        table.add_column(run.name)
    for name in config.metrics:
        table.add_row(name, *("-" if r.metrics.get(name) is None else f"{r.metrics[name]:.3f}" for r in result.runs))
    console.print(table)
    console.print(f"wrote {target / RESULTS}, samples.jsonl, report.md")
    if write_baseline and baseline_path is not None:
        _save_baseline(result.gate, target / RESULTS, baseline_path)
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


def _noise_table(title: str, samples: list[ScoredSample], names: list[str]) -> Table:
    table = Table(title=title)
    for column in ("metric", "value", "95% bootstrap interval", "noise drop (one-sided 95%)"):
        table.add_column(column)
    for n in metric_noise(samples, names):
        interval = "-" if n.low is None or n.high is None else f"[{n.low:.3f}, {n.high:.3f}]"
        table.add_row(n.name, _cell(n.value), interval, _cell(n.drop))
    return table


def _cell(value: float | None) -> str:
    return "-" if value is None else f"{value:.3f}"


def compare_command(
    a: Annotated[Path, typer.Argument(help="An eval output folder (the reference)")],
    b: Annotated[
        Optional[Path], typer.Argument(help="Another eval output folder, over the same sample; omitted: A's noise")
    ] = None,
) -> None:
    """Compare two eval runs: metric deltas with bootstrap intervals, and the products whose verdict changed. With
    one run, its own noise: each metric's bootstrap interval over products, from which gate tolerances are set."""
    result = load_result(a)
    names = list(result.config["metrics"])
    if b is None:
        console.print(_noise_table(f"{a}: bootstrap over {result.run().n} products", load_samples(a), names))
        return
    left, right = load_samples(a), load_samples(b)
    console.print(_deltas_table(f"{a} vs {b}", compare_metrics(left, right, names), "A", "B"))
    _print_changes(changed_products(left, right))


def calibrate_command(
    runs: Annotated[list[Path], typer.Argument(help="Eval output folders to fit on (their main run's samples)")],
    output: Annotated[Path, typer.Option("--output", "-o", help="The calibration file to write (JSON)")],
    exclude: Annotated[
        Optional[list[Path]],
        typer.Option(
            help="Products to leave out (the ones the calibration is judged on): eval output folders, or files of ids"
        ),
    ] = None,
) -> None:
    """Fit the confidences: per kind of value and of category, the share that was right on labeled evals, over
    what measured it (isotonic). Use it with `tagger generate --calibration FILE`; judge it with `tagger eval` on
    other products (attribute_ece, category_ece, the report's reliability diagram)."""
    from tagger.calibrate.fit import fit, observations

    left_out = {i for path in exclude or [] for i in _ids(path)}
    found = []
    for folder in runs:
        samples = [s for s in load_samples(folder) if s.id not in left_out]
        found += observations(samples)
        console.print(f"{folder}: {len(samples)} products")
    calibration = fit(found, [str(folder) for folder in runs])
    output.write_text(calibration.model_dump_json(indent=1) + "\n", encoding="utf-8")
    table = Table(title=f"{output}: {len(found)} observations")
    for column in ("kind", "n", "rate", "steps"):
        table.add_column(column)
    for kind, curve in calibration.kinds.items():
        steps = ", ".join(f"<={b:.3f}: {r:.2f}" for b, r in zip(curve.bounds, curve.rates, strict=True))
        table.add_row(kind, str(curve.n), f"{curve.rate:.3f}", steps or "-")
    console.print(table)


def _ids(path: Path) -> set[str]:
    """The product ids of an eval output folder's samples, or of a file with one id a line."""
    if path.is_dir():
        return {s.id for s in load_samples(path)}
    return {line.strip() for line in path.read_text(encoding="utf-8").splitlines() if line.strip()}
