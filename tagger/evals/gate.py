"""The quality gate: floors per metric, and tolerances against a committed baseline results file."""

from __future__ import annotations

from collections.abc import Mapping

from tagger.evals.config import Threshold
from tagger.evals.metrics import LOWER_IS_BETTER


def check_gate(
    metrics: Mapping[str, float | None],
    thresholds: Mapping[str, Threshold],
    baseline: Mapping[str, float | None] | None = None,
) -> list[str]:
    """The failures, each a sentence; an empty list means the gate passed."""
    failures = []
    for name, limit in thresholds.items():
        value = metrics.get(name)
        if value is None:
            failures.append(f"{name}: not measured")
            continue
        if limit.min is not None and value < limit.min:
            failures.append(f"{name} = {value:.4f} is under its floor {limit.min}")
        if limit.max is not None and value > limit.max:
            failures.append(f"{name} = {value:.4f} is over its ceiling {limit.max}")
        base = baseline.get(name) if baseline else None
        if limit.tolerance is not None and base is not None:
            worse = value - base if name in LOWER_IS_BETTER else base - value
            if worse > limit.tolerance:
                failures.append(
                    f"{name} = {value:.4f} is {worse:.4f} worse than the baseline {base:.4f} "
                    f"(tolerance {limit.tolerance})"
                )
    return failures
