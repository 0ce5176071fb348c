"""`tagger review OUTPUT.jsonl` (the web app), `tagger review export OUTPUT.jsonl`, `tagger review import OUTPUT.jsonl
FEEDBACK.jsonl`. Registered in tagger.cli as the `review` sub-app; the web framework is imported only to serve."""

from __future__ import annotations

import getpass
import ipaddress
import json
import secrets
import socket
from pathlib import Path
from typing import Annotated, Any, Optional

import typer
from rich.console import Console
from rich.markup import escape
from typer.core import TyperGroup

from tagger.product import DEFAULT_FIELDS, Columns
from tagger.review.store import ReviewStore, store_path
from tagger.taxonomy import Taxonomy, TaxonomyError, load_taxonomy

err = Console(stderr=True)


class _ServeByDefault(TyperGroup):
    """`tagger review OUTPUT` means `tagger review serve OUTPUT`."""

    def parse_args(self, ctx: Any, args: list[str]) -> list[str]:  # typer's own click or click's Context
        if args and args[0] not in self.commands and args[0] not in ("--help", "-h"):
            args = ["serve", *args]
        parsed: list[str] = super().parse_args(ctx, args)
        return parsed


review_app = typer.Typer(
    cls=_ServeByDefault,
    help="Review tags in a local web app; export the corrections as an example pool, eval gold and a report.",
    no_args_is_help=True,
)

OutputArg = Annotated[Path, typer.Argument(help="A tagger output (JSONL); the review store sits beside it")]
TaxonomyOpt = Annotated[
    Optional[str],
    typer.Option("--taxonomy", "-t", help="The run's taxonomy: YAML file, shopify:DIR, google:FILE [default: as "
                 "the review store recorded it, else bundled]"),
]  # fmt: skip
StoreOpt = Annotated[Optional[Path], typer.Option("--db", help="The review store [default: OUTPUT.review.sqlite]")]


def _fail(message: str) -> typer.Exit:
    err.print(f"[red]error:[/red] {escape(message)}", highlight=False)
    return typer.Exit(1)


def _open(output: Path, db: Path | None) -> ReviewStore:
    if not output.is_file():
        raise _fail(f"output file not found: {output}")
    return ReviewStore(db or store_path(output))


def _taxonomy(store: ReviewStore, spec: str | None) -> tuple[Taxonomy, str | None]:
    spec = spec or store.get_meta("taxonomy")
    try:
        taxonomy = load_taxonomy(spec)
    except (TaxonomyError, OSError) as exc:
        raise _fail(str(exc)) from exc
    return taxonomy, spec


@review_app.command()
def serve(
    output: OutputArg,
    input_path: Annotated[
        Optional[Path], typer.Option("--input", "-i", help="The catalog the run tagged: the page shows its text")
    ] = None,
    taxonomy: TaxonomyOpt = None,
    input_format: Annotated[Optional[str], typer.Option("--input-format", help="jsonl, csv, tsv or parquet")] = None,
    id_column: Annotated[str, typer.Option("--id-column")] = "id",
    title_column: Annotated[str, typer.Option("--title-column")] = "title",
    description_column: Annotated[str, typer.Option("--description-column")] = "description",
    field: Annotated[
        Optional[list[str]], typer.Option("--field", help="Other input columns shown [default: brand]")
    ] = None,
    no_clean: Annotated[bool, typer.Option("--no-clean", help="The run was made with --no-clean")] = False,
    host: Annotated[
        str, typer.Option(help="The address to listen on; beyond loopback a token is required")
    ] = "127.0.0.1",
    port: Annotated[int, typer.Option(help="0: any free port")] = 8765,
    token: Annotated[
        Optional[str], typer.Option(help="Every request must carry it [default: none on loopback, random beyond]")
    ] = None,
    reviewer: Annotated[Optional[str], typer.Option(help="Who decides [default: your user name]")] = None,
    db: StoreOpt = None,
) -> None:
    """Start the review web app on OUTPUT and print its address."""
    store = _open(output, db)
    tax, spec = _taxonomy(store, taxonomy)
    loaded = store.load_output(output)
    store.label_categories(tax)
    if spec:
        store.set_meta("taxonomy", spec)
    columns = Columns(id_column, title_column, description_column, tuple(field or DEFAULT_FIELDS))
    store.set_meta("fields", json.dumps(list(columns.fields)))
    if input_path is not None:
        from tagger.review.products import catalog_products

        try:
            found = store.load_products(catalog_products(input_path, columns, not no_clean, input_format))
        except (OSError, ValueError) as exc:
            raise _fail(f"{input_path}: {exc}") from exc
        err.print(f"product text for {found:,} of {loaded.records:,} records from {escape(str(input_path))}")
    _warn_taxonomy(output, tax)
    if not _loopback(host) and token is None:
        token = secrets.token_urlsafe(18)
    _serve(store, tax, spec, output, host, port, token, reviewer or _user(), loaded)


def _serve(
    store: ReviewStore, taxonomy: Taxonomy, spec: str | None, output: Path, host: str, port: int,
    token: str | None, reviewer: str, loaded: Any,
) -> None:  # fmt: skip
    try:
        import uvicorn

        from tagger.review.app import Settings, create_app
    except ImportError as exc:
        raise _fail(f"the review app needs its extra: pip install 'tagger[review]' ({exc})") from exc
    sock = socket.socket(socket.AF_INET6 if ":" in host else socket.AF_INET)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    # Accepted connections inherit it: without it a response's headers and body wait on the client's delayed ACK
    # (a flat 40 ms on every request, measured).
    sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    try:
        sock.bind((host, port))
        sock.listen(128)  # from here, a browser opening the printed address waits for the app instead of failing
    except OSError as exc:
        raise _fail(f"cannot listen on {host}:{port}: {exc}") from exc
    bound = sock.getsockname()[1]
    name = f"[{host}]" if ":" in host else host
    hosts = {f"{name}:{bound}"} | ({f"localhost:{bound}", f"127.0.0.1:{bound}"} if _loopback(host) else set())
    settings = Settings(
        store, taxonomy, spec, output.with_name(output.stem + ".review-export"), reviewer, token,
        allowed_hosts=hosts if _loopback(host) or host != "0.0.0.0" else None,  # noqa: S104 - compared, not bound
    )  # fmt: skip
    address = f"http://{name}:{bound}/" + (f"?token={token}" if token else "")
    summary = f"{loaded.records:,} records, {loaded.errors:,} error records, {loaded.malformed:,} unreadable lines"
    print(f"tagger review: {address}  ({summary}; Ctrl-C stops)", flush=True)
    config = uvicorn.Config(create_app(settings), log_level="warning", access_log=False)
    try:
        uvicorn.Server(config).run(sockets=[sock])
    finally:
        store.close()


@review_app.command("export")
def export_command(
    output: OutputArg,
    out: Annotated[Optional[Path], typer.Option("--out", "-o", help="[default: OUTPUT-STEM.review-export/]")] = None,
    taxonomy: TaxonomyOpt = None,
    db: StoreOpt = None,
) -> None:
    """Write the example pool, the eval gold and config, and the report of what reviewers changed."""
    from tagger.review.export import export

    store = _open(output, db)
    _tax, spec = _taxonomy(store, taxonomy)
    summary = export(store, out or output.with_name(output.stem + ".review-export"), spec)
    store.close()
    print(f"pool: {summary.pool} ({summary.accepted - summary.without_text} products)")
    print(f"gold: {summary.gold}; eval config: {summary.eval_config} (tagger eval {summary.eval_config})")
    print(f"report: {summary.report} ({summary.accepted} accepted, {summary.rejected} rejected)")
    if summary.without_text:
        err.print(f"{summary.without_text} accepted records have no product text: review with --input to add them")


@review_app.command("import")
def import_command(
    output: OutputArg,
    feedback: Annotated[Path, typer.Argument(help="JSONL of accept/remove/add/reject events on tags")],
    source: Annotated[str, typer.Option(help="Where the feedback comes from, recorded with each event")] = "feedback",
    taxonomy: TaxonomyOpt = None,
    db: StoreOpt = None,
) -> None:
    """Import outside feedback (e.g. a storefront's) into the review's event store."""
    from tagger.review.feedback import import_feedback

    if not feedback.is_file():
        raise _fail(f"feedback file not found: {feedback}")
    if source == "review":
        raise _fail("the source 'review' is the web app's own; name the feedback's origin")
    store = _open(output, db)
    tax, _spec = _taxonomy(store, taxonomy)
    store.load_output(output)
    summary = import_feedback(store, feedback, tax, source)
    store.close()
    print(f"{summary.applied} events imported from {feedback} as source {source!r}")
    for problem in summary.problems:
        err.print(f"skipped {escape(problem)}", highlight=False)
    if summary.problems:
        raise typer.Exit(3)


def _loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def _user() -> str:
    try:
        return getpass.getuser()
    except (KeyError, OSError):
        return "reviewer"


def _warn_taxonomy(output: Path, taxonomy: Taxonomy) -> None:
    with output.open("rb") as handle:
        for raw in handle:
            try:
                named = json.loads(raw)["provenance"]["taxonomy"]
            except (ValueError, KeyError, TypeError):
                continue
            if named != taxonomy.name:
                err.print(f"warning: the records were made with taxonomy {named!r}; reviewing against "
                          f"{taxonomy.name!r} (give --taxonomy)")  # fmt: skip
            return
