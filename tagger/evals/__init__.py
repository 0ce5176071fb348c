"""Evals: versioned YAML tasks scored against gold data, with metrics by name, reports, comparisons and a gate."""
