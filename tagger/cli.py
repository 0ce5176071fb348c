"""The `tagger` command: a thin typer layer over the library (tagger.pipeline, tagger.run, tagger.taxonomy)."""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Annotated, Any, Optional

import typer
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table

from tagger.product import DEFAULT_FIELDS, Product, ProductError, product_from_record
from tagger.prompt import PromptBuilder, PromptError, load_template
from tagger.records import ErrorRecord, Record, to_json_line
from tagger.schema import SchemaSet
from tagger.taxonomy import Category, Taxonomy, TaxonomyError, load_taxonomy

app = typer.Typer(help="Tag products into a taxonomy with an open LLM; every value is checked against the taxonomy.")
err = Console(stderr=True)
out = Console(highlight=False)

EXIT_ROWS_FAILED = 3  # `generate` finished, but some rows got an error record

TaxonomyOpt = Annotated[
    Optional[str],
    typer.Option("--taxonomy", "-t", help="A taxonomy YAML file, shopify:DIR or google:FILE [default: bundled]"),
]
TemplateOpt = Annotated[
    Optional[str], typer.Option("--template", help="A template file or a bundled name [default: default]")
]
ModelOpt = Annotated[
    Optional[str],
    typer.Option(
        "--model",
        help="llamacpp: a GGUF file [default: embedded SmolLM2-135M-Instruct]; vllm: an HF model folder; "
        "openai: the served model name [default: the server's first]",
    ),
]
BackendOpt = Annotated[str, typer.Option("--backend", "-b", help="llamacpp, vllm or openai")]
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


def _fail(message: str) -> typer.Exit:
    err.print(f"[red]error:[/red] {message}", highlight=False)
    return typer.Exit(1)


def _taxonomy(spec: str | None) -> Taxonomy:
    try:
        return load_taxonomy(spec)
    except (TaxonomyError, OSError) as exc:
        raise _fail(str(exc)) from exc


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


def _tagger(taxonomy: str | None, template: str | None, backend: str, model: str | None, base_url: str | None) -> Any:
    from tagger.backends import make_backend
    from tagger.pipeline import Tagger

    tax = _taxonomy(taxonomy)
    try:
        prompt = load_template(template)
        options = {"base_url": base_url} if backend == "openai" else {}
        engine = make_backend(backend, model, **options)
    except (PromptError, ValueError) as exc:
        raise _fail(str(exc)) from exc
    return Tagger(tax, engine, prompt)


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
    tax = _taxonomy(taxonomy)
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
    tax = _taxonomy(taxonomy)
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
) -> None:
    """Print the exact chat messages the model gets for a product (the category stage unless --category)."""
    tax = _taxonomy(taxonomy)
    product = _product(json_text, title, description, brand)
    try:
        prompt = load_template(template)
        builder = PromptBuilder(tax, prompt)
        if category is None:
            messages = builder.category_messages(product)
        else:
            messages = builder.attribute_messages(product, _category(tax, category))
    except PromptError as exc:
        raise _fail(str(exc)) from exc
    out.print(f"[dim]template {prompt.name} ({prompt.path}) sha256:{prompt.hash}[/dim]")
    for message in messages:
        out.rule(message.role)
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
) -> None:
    """Tag one product and print its record."""
    product = _product(json_text, title, description, brand)
    tagger = _tagger(taxonomy, template, backend, model, base_url)
    record: Record = tagger.tag(product)
    sys.stdout.write(to_json_line(record))
    tagger.close()
    if isinstance(record, ErrorRecord):
        raise typer.Exit(EXIT_ROWS_FAILED)


@app.command()
def generate(
    source: Annotated[Path, typer.Argument(help="Products as JSONL: id, title, description, more fields")],
    output: Annotated[Path, typer.Option("--output", "-o", help="Where to write the records (JSONL)")],
    taxonomy: TaxonomyOpt = None,
    template: TemplateOpt = None,
    backend: BackendOpt = "llamacpp",
    model: ModelOpt = None,
    base_url: BaseUrlOpt = None,
    limit: Annotated[Optional[int], typer.Option(help="Only the first N rows")] = None,
    batch_size: Annotated[int, typer.Option(help="Products per backend call")] = 8,
    field: FieldOpt = None,
    quiet: Annotated[bool, typer.Option("--quiet", "-q", help="No progress bar")] = False,
) -> None:
    """Tag a catalog: one output line per input row, an error record for a row that failed, and go on."""
    from tagger.run import generate_file

    if not source.is_file():
        raise _fail(f"input file not found: {source}")
    tagger = _tagger(taxonomy, template, backend, model, base_url)
    progress = Progress(
        TextColumn("tagging"),
        BarColumn(),
        MofNCompleteColumn(),
        TextColumn("{task.fields[failed]} failed"),
        TimeElapsedColumn(),
        console=err,
        disable=quiet,
    )
    with progress, output.open("w", encoding="utf-8") as sink:
        task = progress.add_task("tag", total=limit, failed=0)
        failed = 0

        def advance(record: Record) -> None:
            nonlocal failed
            failed += isinstance(record, ErrorRecord)
            progress.update(task, advance=1, failed=failed)

        summary = generate_file(
            tagger,
            source,
            sink,
            limit=limit,
            batch_size=batch_size,
            fields=field or DEFAULT_FIELDS,
            on_record=advance,
        )
    tagger.close()
    rate = summary.rows / summary.seconds if summary.seconds else 0.0
    err.print(f"{summary.rows} rows: {summary.tagged} tagged, {summary.failed} failed ({rate:.2f} rows/s) -> {output}")
    for kind, count in summary.errors.most_common():
        err.print(f"  {count} x {kind}")
    if summary.failed:
        raise typer.Exit(EXIT_ROWS_FAILED)


@app.command("convert-model")
def convert_model(
    gguf: Annotated[Optional[Path], typer.Argument(help="A GGUF file [default: the embedded SmolLM2]")] = None,
    out: Annotated[Optional[Path], typer.Option("--out", "-o", help="The HF folder [default: in the cache]")] = None,
) -> None:
    """Make an HF-format model folder from a GGUF file, for vLLM (needs transformers, gguf, torch)."""
    from tagger.backends.convert import convert_gguf, embedded_hf_model

    if gguf is None and out is None:
        folder = embedded_hf_model()
    else:
        from tagger.backends.llamacpp import embedded_model_path

        source = gguf or embedded_model_path()
        folder = convert_gguf(source, out or source.with_name(source.stem + "-hf"))
    sys.stdout.write(f"{folder}\n")


def main() -> None:
    app()


def _register_eval_commands() -> None:
    from tagger.evals.cli import compare_command, eval_command

    app.command("eval")(eval_command)
    app.command("compare")(compare_command)


_register_eval_commands()
