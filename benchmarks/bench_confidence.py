"""What recording token logprobs costs on llama.cpp: constrained generation with and without it, interleaved.

    TAGGER_THREADS=1 python benchmarks/bench_confidence.py [--n 20] [--rounds 2]

The attribute-stage requests of the first N sample products (their gold categories given) are built by the
pipeline's own code; then each request runs with recording and without (the recorder's step a no-op and
no token texts), alternating which arm goes first, `--rounds` times, after one untimed token that puts the prompt in
llama.cpp's cache for both arms. Prints the per-arm totals, their ratio, and the time spent inside the recording
code (its share of the recording arm: a figure that the shared machine's noise does not blur).
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path
from typing import Any

from tagger.backends import Completion, Request, llamacpp
from tagger.pipeline import Tagger
from tagger.product import product_from_record
from tagger.taxonomy import load_taxonomy

ROOT = Path(__file__).resolve().parent.parent


def _requests(tagger: Tagger, rows: list[dict[str, Any]]) -> list[Request]:
    """The attribute-stage requests the pipeline would send, built by its own code (no model call)."""
    products = [product_from_record(row) for row in rows]
    calls = tagger.first_calls(products, [tagger.taxonomy.categories[row["gold"]["category"]] for row in rows])
    return [call.request for call in calls if call.request is not None]


_INSIDE = {"seconds": 0.0}  # time spent in the recording code itself, in the arm that records


def _clocked(function: Any) -> Any:
    def clocked(*args: Any) -> Any:
        start = time.perf_counter()
        try:
            return function(*args)
        finally:
            _INSIDE["seconds"] += time.perf_counter() - start

    return clocked


def _timed(backend: llamacpp.LlamaCppBackend, request: Request, record: bool) -> tuple[float, Completion]:
    step, tokens = llamacpp._Recorder.step, llamacpp.LlamaCppBackend._tokens
    if record:
        llamacpp._Recorder.step, llamacpp.LlamaCppBackend._tokens = _clocked(step), _clocked(tokens)  # type: ignore[method-assign]
    else:
        llamacpp._Recorder.step = lambda self, previous, row: None  # type: ignore[method-assign]
        llamacpp.LlamaCppBackend._tokens = lambda self, recorder, completion: ()  # type: ignore[method-assign]
    try:
        start = time.perf_counter()
        [completion] = backend.generate([request])
        return time.perf_counter() - start, completion
    finally:
        llamacpp._Recorder.step, llamacpp.LlamaCppBackend._tokens = step, tokens  # type: ignore[method-assign]


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--n", type=int, default=20)
    parser.add_argument("--rounds", type=int, default=2)
    args = parser.parse_args()
    taxonomy = load_taxonomy()
    rows = [json.loads(line) for line in (ROOT / "examples" / "catalog.jsonl").read_text().splitlines()][: args.n]
    backend = llamacpp.LlamaCppBackend()
    requests = _requests(Tagger(taxonomy, backend), rows)
    totals = {True: 0.0, False: 0.0}
    tokens = {True: 0, False: 0}
    same: list[Any] = []
    for round_ in range(args.rounds):
        for i, request in enumerate(requests):
            order = (True, False) if (i + round_) % 2 == 0 else (False, True)
            # One untimed token first, so the prompt is in llama.cpp's cache for both arms alike.
            backend.generate([Request(request.messages, request.schema, 1)])
            texts = {}
            for record in order:
                seconds, completion = _timed(backend, request, record)
                totals[record] += seconds
                tokens[record] += completion.completion_tokens
                texts[record] = completion.text
                if record:
                    assert completion.tokens, f"no tokens recorded for request {i}: {completion.extra}"
            same.append(texts[True] == texts[False])
            print(
                f"{round_} {i} with {totals[True]:.2f} s, without {totals[False]:.2f} s,"
                f" inside {_INSIDE['seconds']:.3f} s",
                file=sys.stderr,
                flush=True,
            )
    backend.close()
    print(
        json.dumps(
            {
                "requests": len(requests),
                "rounds": args.rounds,
                "seconds_with": round(totals[True], 3),
                "seconds_without": round(totals[False], 3),
                "ratio_with_over_without": round(totals[True] / totals[False], 4),
                "seconds_inside_recording": round(_INSIDE["seconds"], 3),
                "share_of_the_recording_arm": round(_INSIDE["seconds"] / totals[True], 5),
                "tokens_with": tokens[True],
                "tokens_without": tokens[False],
                "same_text_both_arms": all(same),
            }
        )
    )


if __name__ == "__main__":
    main()
