"""The `tagger` command: a thin typer layer over the library (tagger.pipeline, tagger.run, tagger.taxonomy)."""

from __future__ import annotations

import json
import logging
import sys
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any, Optional

import typer
from pydantic import ValidationError
from rich.console import Console
from rich.markup import escape
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn
from rich.table import Table
from typer.core import TyperGroup

from tagger.build import (
    BACKENDS,
    DEFAULT_EXAMPLE_K,
    AttributeSource,
    BackendSpec,
    Narrowing,
    TaggerSpec,
    build_tagger,
    build_taggers,
)
from tagger.clean import CleaningConfig
from tagger.errors import TaggerError
from tagger.product import DEFAULT_FIELDS, Columns, Product, ProductError, product_from_record
from tagger.records import ErrorRecord, Record, to_json_line
from tagger.schema import SchemaSet
from tagger.taxonomy import Category, Taxonomy, load_taxonomy

if TYPE_CHECKING:
    from tagger.cache import ResultCache
    from tagger.run import RunOptions, RunSummary


class _Commands(TyperGroup):
    """tagger's commands. A `TaggerError` (a bad file, option, row, template or taxonomy) is one line on stderr and
    exit 1; anything else is a bug and keeps its traceback."""

    def invoke(self, ctx: Any) -> Any:  # typer vendors its own click: its Context type is private
        try:
            return super().invoke(ctx)
        except TaggerError as exc:
            raise _fail(str(exc)) from exc


app = typer.Typer(
    cls=_Commands, help="Tag products into a taxonomy with an open LLM; every value is checked against the taxonomy."
)
log = logging.getLogger("tagger")
err = Console(stderr=True)
out = Console(highlight=False)

EXIT_ROWS_FAILED = 3  # `generate` finished, but some rows got an error record

TaxonomyOpt = Annotated[
    Optional[str],
    typer.Option(
        "--taxonomy",
        "-t",
        help="A taxonomy YAML file; shopify or google (shipped with tagger); shopify:DIR or google:FILE "
        "[default: bundled]",
    ),
]
TemplateOpt = Annotated[
    Optional[str], typer.Option("--template", help="A template file or a bundled name [default: default]")
]
ModelOpt = Annotated[
    Optional[str],
    typer.Option(
        "--model",
        help="llamacpp: a GGUF file, a student's folder or gemma3-270m [default: embedded SmolLM2-135M-Instruct]; "
        "vllm: an HF model folder; "
        "openai: the served model name [default: the server's first]",
    ),
]
BackendOpt = Annotated[str, typer.Option("--backend", "-b", help=f"One of: {', '.join(BACKENDS)}")]
BaseUrlOpt = Annotated[
    Optional[str], typer.Option("--base-url", help="openai: the server's /v1 URL [default: $TAGGER_OPENAI_BASE_URL]")
]
FieldOpt = Annotated[
    Optional[list[str]], typer.Option("--field", help="An input field to show the model (repeatable) [default: brand]")
]
JsonOpt = Annotated[Optional[str], typer.Option("--json", help="The product as a JSON object")]
TitleOpt = Annotated[Optional[str], typer.Option("--title", help="The product title")]
DescriptionOpt = Annotated[str, typer.Option("--description", help="The product description")]
BrandOpt = Annotated[Optional[str], typer.Option("--brand", help="The product brand")]
ShortlistOpt = Annotated[
    Optional[int],
    typer.Option(
        help="The model chooses among the K nearest category paths (MiniLM) and the examples' categories; "
        "1: retrieval decides (the nearest path, or the examples' vote), no model call; 0: every category "
        "[default: 1]"
    ),
]
ExamplesOpt = Annotated[
    Optional[Path], typer.Option(help="A labeled JSONL pool: the nearest products become few-shot examples")
]
ExampleKOpt = Annotated[int, typer.Option(help="How many examples from --examples")]
TreeOpt = Annotated[bool, typer.Option("--tree", help="Choose the category level by level down the taxonomy")]
InferOpt = Annotated[
    bool,
    typer.Option(
        "--infer",
        help="The model may add closed values the text does not state (marked source=inferred); for a strong model",
    ),
]
CalibrationOpt = Annotated[
    str,
    typer.Option(
        help="Confidences: default (fitted on tagger's dev sets with the embedded model), a file from "
        "`tagger calibrate`, or off",
    ),
]
MinConfidenceOpt = Annotated[
    Optional[float],
    typer.Option(
        "--min-confidence",
        min=0.0,
        max=1.0,
        help="Move values whose calibrated confidence is below this to warnings (precision for recall: the eval "
        "report's precision-coverage table)",
    ),
]
ExtractOpt = Annotated[
    bool,
    typer.Option(
        "--extract",
        help="The model copies a span for extractive attributes (model, brand) no candidate was found for; for a "
        "strong model (the embedded one copies whole titles)",
    ),
]
SpansOpt = Annotated[
    Optional[Path],
    typer.Option(
        "--spans",
        help="A span student's folder (tagger train-spans): it decides the extractive attributes it learned",
    ),
]
JudgeOpt = Annotated[
    bool,
    typer.Option(
        "--judge/--no-judge",
        help="With --examples: the judge fitted on the pool decides each attribute's values and their confidence; "
        "--no-judge: the model chooses among rivals",
    ),
]
AttributesOpt = Annotated[
    AttributeSource,
    typer.Option(
        "--attributes",
        help="evidence: values the text (or the --examples pool) supports, the model choosing only between rivals; "
        "model: the model fills every attribute of the category",
    ),
]


def _fail(message: str) -> typer.Exit:
    err.print(f"[red]error:[/red] {escape(message)}", highlight=False)  # messages quote paths and extras: [x]
    return typer.Exit(1)


def _product(json_text: str | None, title: str | None, description: str, brand: str | None) -> Product:
    if json_text is not None:
        try:
            record: Any = json.loads(json_text)
        except json.JSONDecodeError as exc:
            raise _fail(f"--json is not valid JSON: {exc}") from exc
        if not isinstance(record, dict):
            raise _fail("--json must be a JSON object")
    elif title is not None:
        record = {"id": "cli", "title": title, "description": description, "brand": brand}
    else:
        raise _fail("give the product with --title (and --description) or --json")
    record.setdefault("id", "cli")
    try:
        return product_from_record(record)
    except ProductError as exc:
        raise _fail(str(exc)) from exc


def _narrowing(shortlist: int | None, examples: Path | None, example_k: int, tree: bool) -> Narrowing:
    given = {"shortlist": shortlist, "examples": examples, "example_k": example_k, "tree": tree}
    try:
        return Narrowing.model_validate({k: v for k, v in given.items() if v is not None})
    except ValidationError as exc:
        raise _fail("; ".join(e["msg"] for e in exc.errors())) from exc


def _spec(
    *,
    taxonomy: str | None,
    template: str | None,
    narrowing: Narrowing,
    backend: str = "llamacpp",
    model: str | None = None,
    options: dict[str, Any] | None = None,
    cleaning: CleaningConfig | None = None,
    attributes: AttributeSource = "evidence",
    infer: bool = False,
    calibration: str = "default",
    min_confidence: float | None = None,
    extract: bool = False,
    judge: bool = True,
    spans: Path | None = None,
) -> TaggerSpec:
    backend_spec = BackendSpec(name=backend, model=model, options=options or {})
    return TaggerSpec(
        taxonomy=taxonomy,
        template=template,
        backend=backend_spec,
        narrowing=narrowing,
        cleaning=cleaning or CleaningConfig(),
        attributes=attributes,
        infer=infer,
        calibration=calibration,
        min_confidence=min_confidence,
        extract=extract,
        judge=judge,
        spans=spans,
    )


def _category(taxonomy: Taxonomy, key: str) -> Category:
    found = taxonomy.categories.get(key) or taxonomy.by_path.get(key)
    if found is None:
        raise _fail(f"no category {key!r} in {taxonomy.name} (give an id or a full path; try `tagger taxonomy --find`)")
    return found


@app.command()
def taxonomy(
    taxonomy: TaxonomyOpt = None,
    find: Annotated[Optional[str], typer.Option("--find", "-f", help="Words to look for in category paths")] = None,
    limit: Annotated[int, typer.Option(help="At most this many matches")] = 20,
) -> None:
    """Summarize a taxonomy, or find categories by words."""
    tax = load_taxonomy(taxonomy)
    if find is None:
        table = Table(title=f"{tax.name} {tax.version}", show_header=False)
        for key, value in tax.summary().items():
            table.add_row(key, f"{value:,}" if isinstance(value, int) else str(value))
        out.print(table)
        return
    matches = tax.find(find, limit)
    if not matches:
        raise _fail(f"no category matches {find!r}")
    for category in matches:
        attributes = ", ".join(a.handle for a in tax.attributes_for(category.id))
        out.print(f"[bold]{category.full_path}[/bold]  [dim]{category.id}[/dim]\n    attributes: {attributes or '-'}")


@app.command()
def schema(
    taxonomy: TaxonomyOpt = None,
    category: Annotated[
        Optional[str], typer.Option("--category", "-c", help="A category id or path: print its attribute schema")
    ] = None,
) -> None:
    """Print the JSON Schema of the category answer, or of one category's attribute answer."""
    tax = load_taxonomy(taxonomy)
    schemas = SchemaSet(tax)
    if category is None:
        chosen = schemas.category
    else:
        found = schemas.attributes(_category(tax, category).id)
        if found is None:
            raise _fail(f"category {category!r} has no attributes")
        chosen = found
    sys.stdout.write(json.dumps(chosen.json_schema, indent=2, ensure_ascii=False) + "\n")


@app.command()
def render(
    json_text: JsonOpt = None,
    title: TitleOpt = None,
    description: DescriptionOpt = "",
    brand: BrandOpt = None,
    taxonomy: TaxonomyOpt = None,
    template: TemplateOpt = None,
    category: Annotated[
        Optional[str], typer.Option("--category", "-c", help="Render the attribute stage for this category id/path")
    ] = None,
    backend: BackendOpt = "llamacpp",
    model: ModelOpt = None,
    shortlist: ShortlistOpt = None,
    examples: ExamplesOpt = None,
    example_k: ExampleKOpt = DEFAULT_EXAMPLE_K,
    tree: TreeOpt = False,
    attributes: AttributesOpt = "evidence",
    infer: InferOpt = False,
) -> None:
    """Print the exact chat messages of the first model call for a product, as `tag` would make it (cleaned, with
    the same narrowing): the category stage, or the attribute stage when retrieval or --category decides. Loads the
    model's tokenizer (cleaning counts tokens with it), not its weights."""
    product = _product(json_text, title, description, brand)
    spec = _spec(
        taxonomy=taxonomy,
        template=template,
        narrowing=_narrowing(shortlist, examples, example_k, tree),
        backend=backend,
        model=model,
        attributes=attributes,
        infer=infer,
    )
    tagger = build_tagger(spec, load_model=False)
    try:
        shown = tagger.render(product, _category(tagger.taxonomy, category) if category else None)
    finally:
        tagger.close()
    prompt = tagger.template
    out.print(f"[dim]template {prompt.name} ({prompt.path}) sha256:{prompt.hash}[/dim]")
    if shown.category is not None and category is None:
        out.print(
            f"category: {escape(shown.category.full_path)} (decided by {tagger.provenance.strategy}: no model call)",
            soft_wrap=True,
        )
    if not shown.messages:
        out.print("no model call for the attributes: the category has none, or its evidence leaves nothing to choose")
    for message in shown.messages:
        out.rule(f"{shown.stage} stage: {message.role}")
        out.print(message.content, markup=False, soft_wrap=True)


@app.command()
def tag(
    json_text: JsonOpt = None,
    title: TitleOpt = None,
    description: DescriptionOpt = "",
    brand: BrandOpt = None,
    taxonomy: TaxonomyOpt = None,
    template: TemplateOpt = None,
    backend: BackendOpt = "llamacpp",
    model: ModelOpt = None,
    base_url: BaseUrlOpt = None,
    shortlist: ShortlistOpt = None,
    examples: ExamplesOpt = None,
    example_k: ExampleKOpt = DEFAULT_EXAMPLE_K,
    tree: TreeOpt = False,
    attributes: AttributesOpt = "evidence",
    infer: InferOpt = False,
    calibration: CalibrationOpt = "default",
    min_confidence: MinConfidenceOpt = None,
    extract: ExtractOpt = False,
    judge: JudgeOpt = True,
    spans: SpansOpt = None,
) -> None:
    """Tag one product and print its record."""
    product = _product(json_text, title, description, brand)
    narrowing = _narrowing(shortlist, examples, example_k, tree)
    server = _server(backend, base_url)
    spec = _spec(
        taxonomy=taxonomy,
        template=template,
        narrowing=narrowing,
        backend=backend,
        model=model,
        options=server,
        attributes=attributes,
        infer=infer,
        calibration=calibration,
        min_confidence=min_confidence,
        extract=extract,
        judge=judge,
        spans=spans,
    )
    tagger = build_tagger(spec)
    try:
        record: Record = tagger.tag(product)
    finally:
        tagger.close()
    sys.stdout.write(to_json_line(record))
    if isinstance(record, ErrorRecord):
        raise typer.Exit(EXIT_ROWS_FAILED)


@app.command()
def generate(
    source: Annotated[str, typer.Argument(help="Products: a JSONL, CSV, TSV or Parquet file, or - for stdin (JSONL)")],
    output: Annotated[Path, typer.Option("--output", "-o", help="Where the records go: .jsonl or .parquet")],
    taxonomy: TaxonomyOpt = None,
    template: TemplateOpt = None,
    backend: BackendOpt = "llamacpp",
    model: ModelOpt = None,
    base_url: BaseUrlOpt = None,
    input_format: Annotated[
        Optional[str], typer.Option("--input-format", help="jsonl, csv, tsv or parquet [default: from the suffix]")
    ] = None,
    id_column: Annotated[str, typer.Option("--id-column", help="The input column with the product id")] = "id",
    title_column: Annotated[str, typer.Option("--title-column", help="The input column with the title")] = "title",
    description_column: Annotated[
        str, typer.Option("--description-column", help="The input column with the description")
    ] = "description",
    field: FieldOpt = None,
    limit: Annotated[Optional[int], typer.Option(help="Only the first N rows")] = None,
    batch_size: Annotated[int, typer.Option(help="Products per backend call (vllm: use hundreds)")] = 8,
    workers: Annotated[int, typer.Option(help="Parallel batches, each with its own backend instance")] = 1,
    max_in_flight: Annotated[int, typer.Option(help="openai: requests in flight, over all workers")] = 8,
    restart: Annotated[bool, typer.Option("--restart", help="Drop the earlier output and start over")] = False,
    rejects: Annotated[
        Optional[Path], typer.Option(help="Where rows that could not be tagged go [default: <output>.rejects.jsonl]")
    ] = None,
    cache: Annotated[Optional[Path], typer.Option(help="The result cache [default: in the user cache]")] = None,
    no_cache: Annotated[bool, typer.Option("--no-cache", help="Neither read nor fill the result cache")] = False,
    no_clean: Annotated[bool, typer.Option("--no-clean", help="Give the model the text as it is")] = False,
    description_tokens: Annotated[
        int, typer.Option(help="Cut descriptions to this many tokens (recorded in provenance)")
    ] = CleaningConfig.description_tokens,
    shortlist: ShortlistOpt = None,
    examples: ExamplesOpt = None,
    example_k: ExampleKOpt = DEFAULT_EXAMPLE_K,
    tree: TreeOpt = False,
    attributes: AttributesOpt = "evidence",
    infer: InferOpt = False,
    calibration: CalibrationOpt = "default",
    min_confidence: MinConfidenceOpt = None,
    extract: ExtractOpt = False,
    judge: JudgeOpt = True,
    spans: SpansOpt = None,
    quiet: Annotated[bool, typer.Option("--quiet", "-q", help="No progress bar, errors only")] = False,
    verbose: Annotated[bool, typer.Option("--verbose", "-v", help="Log every batch and reject")] = False,
    engine: Annotated[
        str, typer.Option(help="local: this process; ray: a pool of tagger actors on Ray Data (tagger[ray])")
    ] = "local",
    ray_address: Annotated[
        Optional[str], typer.Option(help="ray: a cluster to join (HOST:PORT or auto) [default: a local Ray]")
    ] = None,
    actors: Annotated[int, typer.Option(help="ray: tagger actors, each with its own backend")] = 1,
    cpus_per_actor: Annotated[float, typer.Option(help="ray: CPUs each actor reserves (llama.cpp threads)")] = 1.0,
    gpus_per_actor: Annotated[float, typer.Option(help="ray: GPUs each actor reserves (vllm)")] = 0.0,
) -> None:
    """Tag a catalog, resumably: rerun the same command after a crash and it does only what is left.

    One record per product goes to the output; rows that could not be tagged go to the rejects file with row, id
    and reason. Exit 0 when every row was tagged, 3 when some were rejected."""
    from tagger.cache import ResultCache, default_cache_path
    from tagger.io import STDIN, detect_format
    from tagger.run import RunOptions, rejects_path

    _logging(quiet, verbose)
    remote = "://" in source  # an object store's URI: the ray engine reads it (tagger.scale.uri)
    if remote and engine != "ray":
        raise _fail(f"{source}: catalogs in object stores are read by --engine ray; copy it here for a local run")
    if source != STDIN and not remote and not Path(source).is_file():
        raise _fail(f"input file not found: {source}")
    if output.suffix.lower() not in (".jsonl", ".parquet"):
        raise _fail(f"the output must be a .jsonl or .parquet file, got {output}")
    if workers > 1 and backend == "vllm":
        raise _fail("the vllm backend batches inside one engine: use --batch-size, not --workers")
    if engine not in ("local", "ray"):
        raise _fail(f"unknown engine {engine!r}; choose local or ray")
    if engine == "ray" and workers > 1:
        raise _fail("the ray engine runs --actors, not --workers")
    if engine == "local" and (ray_address or actors != 1 or cpus_per_actor != 1.0 or gpus_per_actor):
        raise _fail("--ray-address, --actors, --cpus-per-actor and --gpus-per-actor go with --engine ray")
    try:
        fmt = detect_format(source, input_format)
    except ValueError as exc:
        raise _fail(str(exc)) from exc
    columns = Columns(id_column, title_column, description_column, tuple(field or DEFAULT_FIELDS))
    cleaning = CleaningConfig(enabled=not no_clean, description_tokens=description_tokens)
    narrowing = _narrowing(shortlist, examples, example_k, tree)
    server = _server(backend, base_url, max_in_flight)
    spec = _spec(
        taxonomy=taxonomy,
        template=template,
        narrowing=narrowing,
        backend=backend,
        model=model,
        options=server,
        cleaning=cleaning,
        attributes=attributes,
        infer=infer,
        calibration=calibration,
        min_confidence=min_confidence,
        extract=extract,
        judge=judge,
        spans=spans,
    )
    options = RunOptions(fmt, columns, limit, batch_size, restart, rejects)
    result_cache = None if no_cache else ResultCache(cache or default_cache_path())
    try:
        if engine == "ray":
            from tagger.scale import RayOptions, tag_catalog_ray

            cluster = RayOptions(ray_address, actors, cpus_per_actor, gpus_per_actor, progress=not quiet)
            summary = tag_catalog_ray(spec, source, output, options, cluster, result_cache)
        else:
            summary = _generate_here(spec, workers, source, output, options, result_cache, quiet)
    except OSError as exc:
        raise _fail(str(exc)) from exc
    finally:
        if result_cache is not None:
            result_cache.close()
    rate = summary.tagged / summary.seconds if summary.seconds else 0.0
    err.print(  # one line, whatever the terminal's width: logs and scripts grep it
        f"{summary.rows} rows: {summary.tagged} tagged ({summary.generated} afresh, {summary.asked} asking the model; "
        f"{summary.reused} reused), {summary.resumed} done before, {summary.failed} rejected; "
        f"{rate:.2f} products/s -> {output}",
        soft_wrap=True,
    )
    for kind, count in summary.rejected.most_common():
        err.print(f"  {count} x {kind}")
    if summary.failed:
        err.print(f"rejected rows: {options.rejects or rejects_path(output)}")
        raise typer.Exit(EXIT_ROWS_FAILED)


def _generate_here(
    spec: TaggerSpec,
    workers: int,
    source: str,
    output: Path,
    options: RunOptions,
    result_cache: ResultCache | None,
    quiet: bool,
) -> RunSummary:
    """The local engine: `workers` taggers in this process, with a progress bar."""
    from tagger.io import count_rows
    from tagger.run import tag_catalog

    taggers = build_taggers(spec, max(1, workers))
    total = None if options.limit is not None else count_rows(source, options.input_format)
    try:
        with _progress(quiet, total or options.limit) as update:
            return tag_catalog(taggers, source, output, options, result_cache, update)
    finally:
        for worker in taggers:
            worker.close()


def _server(backend: str, base_url: str | None, max_in_flight: int | None = None) -> dict[str, Any]:
    """The openai backend's options from the command line (other backends take none from it)."""
    if backend != "openai":
        return {}
    options: dict[str, Any] = {"base_url": base_url, "concurrency": max_in_flight}
    return {key: value for key, value in options.items() if value is not None}


def _logging(quiet: bool, verbose: bool) -> None:
    from rich.logging import RichHandler

    level = logging.ERROR if quiet else logging.INFO if verbose else logging.WARNING
    logging.basicConfig(level=level, format="%(message)s", handlers=[RichHandler(console=err, show_path=False)])


@contextmanager
def _progress(quiet: bool, total: int | None) -> Iterator[Callable[[Any], None]]:
    """A progress bar over rows: products/s, ETA, and the done / reused / rejected counts."""
    progress = Progress(
        TextColumn("tagging"),
        BarColumn(),
        MofNCompleteColumn(),
        TextColumn("{task.fields[rate]:.2f} products/s"),
        TextColumn("{task.fields[reused]} reused, {task.fields[resumed]} done before"),
        TextColumn("{task.fields[rejected]} rejected"),
        TimeRemainingColumn(),
        console=err,
        disable=quiet,
    )
    with progress:
        task = progress.add_task("tag", total=total, rate=0.0, reused=0, resumed=0, rejected=0)

        def update(summary: Any) -> None:
            rate = summary.tagged / summary.seconds if summary.seconds else 0.0
            progress.update(
                task,
                completed=summary.rows,
                rate=rate,
                reused=summary.reused,
                resumed=summary.resumed,
                rejected=summary.failed,
            )

        yield update


@app.command("cache")
def cache_command(
    action: Annotated[str, typer.Argument(help="show or clear")] = "show",
    cache: Annotated[Optional[Path], typer.Option(help="The result cache [default: in the user cache]")] = None,
    scope: Annotated[Optional[str], typer.Option(help="clear: only this scope (a prefix of its id)")] = None,
) -> None:
    """Show what the result cache holds (by model, template and taxonomy), or clear it."""
    from tagger.cache import ResultCache, default_cache_path

    path = cache or default_cache_path()
    if action not in ("show", "clear"):
        raise _fail(f"unknown action {action!r}: show or clear")
    if not path.exists():
        out.print(f"no cache at {path}")
        return
    store = ResultCache(path)
    try:
        if action == "clear":
            removed = store.clear(scope)
            out.print(f"removed {removed:,} results from {path}")
            return
        table = Table(title=f"{path} ({path.stat().st_size / 1e6:.1f} MB)")
        for column in ("scope", "entries", "model", "template", "taxonomy", "tagger", "last used"):
            table.add_column(column)
        for stats in store.stats():
            d = stats.description
            table.add_row(
                stats.scope[:12],
                f"{stats.entries:,}",
                f"{d.get('backend')}:{d.get('model')}",
                f"{d.get('template')} {str(d.get('template_hash'))[:8]}",
                f"{d.get('taxonomy')} {d.get('taxonomy_version')}",
                str(d.get("tagger_version")),
                time.strftime("%Y-%m-%d %H:%M", time.localtime(stats.last)),
            )
        out.print(table)
    finally:
        store.close()


@app.command("convert-model")
def convert_model(
    gguf: Annotated[
        Optional[Path], typer.Argument(help="A GGUF file or gemma3-270m [default: the embedded SmolLM2]")
    ] = None,
    out: Annotated[Optional[Path], typer.Option("--out", "-o", help="The HF folder [default: in the cache]")] = None,
) -> None:
    """Make an HF-format model folder from a GGUF file, for vLLM (needs transformers, gguf, torch)."""
    from tagger.backends.convert import convert_gguf, embedded_hf_model

    if gguf is None and out is None:
        folder = embedded_hf_model()
    else:
        from tagger.backends.llamacpp import model_file

        source = model_file(gguf)
        folder = convert_gguf(source, out or source.with_name(source.stem + "-hf"))
    sys.stdout.write(f"{folder}\n")


def main() -> None:
    app()


def _register_eval_commands() -> None:
    from tagger.evals.cli import calibrate_command, compare_command, eval_command

    app.command("eval")(eval_command)
    app.command("compare")(compare_command)
    app.command("calibrate")(calibrate_command)
    from tagger.review.cli import review_app

    app.add_typer(review_app, name="review")
    from tagger.train.cli import distill_command, train_command, train_spans_command

    app.command("train")(train_command)
    app.command("distill")(distill_command)
    app.command("train-spans")(train_spans_command)


_register_eval_commands()
