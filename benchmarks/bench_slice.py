"""Benchmark of the vertical slice on the embedded model: latency, constraint cost, schema compile time, memory.

    python benchmarks/bench_slice.py [--n 50] [--data-root ../shared/data] [--out benchmarks/results/slice.json]
                                     [--compile-only]

For N Flipkart products, on the default taxonomy and on Shopify's, it reports per-product latency p50/p95 of the full
two-stage pipeline; schema build and constraint compile time, cold and warm; the ratio of constrained to
unconstrained generation time for the same prompts (total and per generated token); and peak RSS.
Then, on Shopify's taxonomy, the narrowed path's own costs, cold and warm: the MiniLM category index (encoded, then
loaded from disk), a shortlist's schema and constraint, a category's attribute constraint, and the per-product span
grammar (built for each product, never reused). `--compile-only` measures compile times only, with no generation.
All ratios are taken in one process against a baseline run in the same process.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import tempfile
import time
from pathlib import Path
from typing import Any

from llguidance import LLMatcher

from tagger.backends import Request
from tagger.backends.llamacpp import LlamaCppBackend
from tagger.build import Narrowing, TaggerSpec, build_tagger
from tagger.evals.config import default_data_root
from tagger.evals.metrics import percentile
from tagger.io import read_rows
from tagger.pipeline import ATTRIBUTE_MAX_TOKENS, CATEGORY_MAX_TOKENS, Tagger
from tagger.product import Product
from tagger.records import TagRecord
from tagger.schema import OutputSchema, SchemaSet, with_spans
from tagger.taxonomy import Taxonomy, load_taxonomy

ROOT = Path(__file__).resolve().parent.parent


SHORTLIST = 10  # the shortlist whose costs are measured: the model choosing among the 10 nearest paths


def peak_rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def timed(fn: Any) -> tuple[Any, float]:
    start = time.perf_counter()
    result = fn()
    return result, time.perf_counter() - start


def compile_times(backend: LlamaCppBackend, taxonomy: Taxonomy, category_id: str) -> dict[str, float]:
    """Cold: first build in this process; warm: the same again (cached schema and processor, new matcher)."""
    schemas = SchemaSet(taxonomy)
    schema, schema_cold = timed(lambda: schemas.category)
    _, schema_warm = timed(lambda: schemas.category)
    request = Request([], schema, 1)
    processor, processor_cold = timed(lambda: backend._processor(request))
    _, processor_warm = timed(lambda: backend._processor(request))
    tokenizer = backend._constraints.llg_tokenizer
    grammar = processor[0].grammar
    _, matcher_first = timed(lambda: LLMatcher(tokenizer, grammar))
    _, matcher_again = timed(lambda: LLMatcher(tokenizer, grammar))
    attribute_schema, attribute_cold = timed(lambda: schemas.attributes(category_id))
    return {
        "category_schema_build_cold_s": schema_cold,
        "category_schema_build_warm_s": schema_warm,
        "category_constraint_build_cold_s": processor_cold,
        "category_constraint_build_warm_s": processor_warm,
        "category_grammar_compile_first_s": matcher_first,
        "category_grammar_compile_again_s": matcher_again,
        "attribute_schema_build_cold_s": attribute_cold,
        "category_enum_size": len(schema.json_schema["properties"]["category"]["enum"]),
        "attribute_schema_bytes": len(attribute_schema.json_text) if attribute_schema else 0,
    }


def matcher_times(backend: LlamaCppBackend, schema: OutputSchema, name: str) -> dict[str, float]:
    """Constraint build (grammar spec), then the matcher compiled against the vocabulary: first time and again."""
    processor, built = timed(lambda: backend._build_processor(schema))
    tokenizer, grammar = backend._constraints.llg_tokenizer, processor.grammar
    _, first = timed(lambda: LLMatcher(tokenizer, grammar))
    _, again = timed(lambda: LLMatcher(tokenizer, grammar))
    return {f"{name}_constraint_build_s": built, f"{name}_compile_first_s": first, f"{name}_compile_again_s": again}


def narrowed_compile_times(backend: LlamaCppBackend, taxonomy: Taxonomy, products: list[Product]) -> dict[str, Any]:
    """The shortlist path's costs: index cold (encoded into an empty cache folder) and warm (loaded from it), then
    per product the shortlist schema, its matcher, the attribute matcher and the span grammar, as medians."""
    from tagger.retrieval import Embedder, Shortlister

    embedder, embedder_load = timed(Embedder)
    with tempfile.TemporaryDirectory() as folder:
        previous = os.environ.get("TAGGER_CACHE_DIR")
        os.environ["TAGGER_CACHE_DIR"] = folder
        try:
            shortlister, index_cold = timed(lambda: Shortlister(taxonomy, embedder, SHORTLIST))
            _, index_warm = timed(lambda: Shortlister(taxonomy, embedder, SHORTLIST))
        finally:
            if previous is None:
                del os.environ["TAGGER_CACHE_DIR"]
            else:
                os.environ["TAGGER_CACHE_DIR"] = previous
    lists, shortlist_s = timed(lambda: shortlister.shortlist(products))
    schemas = SchemaSet(taxonomy)
    rows: list[dict[str, float]] = []
    for product, choices in zip(products, lists, strict=True):
        row: dict[str, float] = {}
        schema, row["shortlist_schema_cold_s"] = timed(lambda c=choices: schemas.category_among(c))
        _, row["shortlist_schema_warm_s"] = timed(lambda c=choices: schemas.category_among(c))
        row.update(matcher_times(backend, schema, "shortlist"))
        attributes = taxonomy.attributes_for(choices[0].id)
        attribute_schema = schemas.attributes(choices[0].id)
        if attribute_schema is not None:
            row.update(matcher_times(backend, attribute_schema, "attributes"))
            spans, row["span_grammar_build_s"] = timed(
                lambda a=attribute_schema, t=attributes, p=product: with_spans(a, t, p.text)
            )
            row.update(matcher_times(backend, spans, "span_attributes"))
        rows.append(row)
    medians = {
        f"{k}_p50": percentile([r[k] for r in rows if k in r], 0.5) for k in sorted({k for r in rows for k in r})
    }
    return {
        "products": len(products),
        "embedder_load_s": embedder_load,
        "category_index_cold_s": index_cold,
        "category_index_warm_s": index_warm,
        "shortlist_per_product_s": shortlist_s / len(products),
        **medians,
        "peak_rss_mb": peak_rss_mb(),
    }


def flat_tagger(taxonomy: Taxonomy) -> Tagger:
    """The model chooses from every category (the flat enum): what the constraint costs at this taxonomy's size."""
    return build_tagger(TaggerSpec(narrowing=Narrowing(shortlist=0)), taxonomy=taxonomy)


def run_taxonomy(tagger: Tagger, products: list[Product], probe: str) -> dict[str, Any]:
    taxonomy, backend = tagger.taxonomy, tagger.backend
    assert isinstance(backend, LlamaCppBackend)
    result: dict[str, Any] = {"taxonomy": f"{taxonomy.name} {taxonomy.version}", "products": len(products)}
    result.update(compile_times(backend, taxonomy, probe))
    latencies, records = [], []
    for product in products:
        record, seconds = timed(lambda p=product: tagger.tag(p))
        latencies.append(seconds)
        records.append(record)
    tagged = [r for r in records if isinstance(r, TagRecord)]
    result.update(
        latency_p50_s=percentile(latencies, 0.5),
        latency_p95_s=percentile(latencies, 0.95),
        products_per_s=len(products) / sum(latencies),
        tagged=len(tagged),
        errors=len(records) - len(tagged),
    )
    # The same prompts, constrained and not: category stage and attribute stage of each tagged product.
    requests = []
    for record, product in zip(records, products, strict=True):
        requests.append(
            Request(tagger.prompts.category_messages(product), tagger.schemas.category, CATEGORY_MAX_TOKENS)
        )
        if isinstance(record, TagRecord):
            category = taxonomy.categories[record.category.id]
            schema = tagger.schemas.attributes(category.id)
            if schema is not None:
                messages = tagger.prompts.attribute_messages(product, category)
                requests.append(Request(messages, schema, ATTRIBUTE_MAX_TOKENS))
    free = [Request(r.messages, None, r.max_tokens) for r in requests]
    constrained, constrained_s = timed(lambda: backend.generate(requests))
    unconstrained, unconstrained_s = timed(lambda: backend.generate(free))
    tokens_c = sum(c.completion_tokens for c in constrained)
    tokens_u = sum(c.completion_tokens for c in unconstrained)
    result.update(
        requests=len(requests),
        constrained_s=constrained_s,
        unconstrained_s=unconstrained_s,
        constrained_to_unconstrained_time=constrained_s / unconstrained_s,
        constrained_tokens=tokens_c,
        unconstrained_tokens=tokens_u,
        constrained_to_unconstrained_per_token=(constrained_s / tokens_c) / (unconstrained_s / tokens_u),
        peak_rss_mb=peak_rss_mb(),
    )
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--n", type=int, default=50)
    parser.add_argument("--data-root", type=Path, default=default_data_root())
    parser.add_argument("--out", type=Path, default=ROOT / "benchmarks" / "results" / "slice.json")
    parser.add_argument("--compile-only", action="store_true", help="compile times only, no generation")
    args = parser.parse_args()

    rows = read_rows(args.data_root / "flipkart" / "dev.jsonl")
    products = [p for _, p in rows if isinstance(p, Product)][: args.n]
    start_rss = peak_rss_mb()
    default = load_taxonomy()
    tagger, load_s = timed(lambda: flat_tagger(default))
    backend = tagger.backend
    assert isinstance(backend, LlamaCppBackend)
    report: dict[str, Any] = {"model": backend.model, "model_load_s": load_s, "rss_before_model_mb": start_rss}
    shopify = load_taxonomy(f"shopify:{args.data_root / 'shopify-taxonomy'}")
    if args.compile_only:
        report["default"] = compile_times(backend, default, "t-shirts")
        report["shopify"] = compile_times(backend, shopify, "gid://shopify/TaxonomyCategory/aa-1-1")
    else:
        report["default"] = run_taxonomy(tagger, products, "t-shirts")
        tagger.close()
        tagger = flat_tagger(shopify)
        backend = tagger.backend
        assert isinstance(backend, LlamaCppBackend)
        report["shopify"] = run_taxonomy(tagger, products, "gid://shopify/TaxonomyCategory/aa-1-1")
    report["shopify_narrowed"] = narrowed_compile_times(backend, shopify, products)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(report, indent=2))
    for name in ("default", "shopify", "shopify_narrowed"):
        print(f"\n== {name}")
        for key, value in report[name].items():
            print(f"  {key:42s} {value:.4f}" if isinstance(value, float) else f"  {key:42s} {value}")
    print(f"\nmodel load {load_s:.2f} s; peak RSS {peak_rss_mb():.0f} MB; written to {args.out}")


if __name__ == "__main__":
    main()
