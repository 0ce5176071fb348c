"""How many compute threads a tagger process uses: `$TAGGER_THREADS`, else every core.

It caps llama.cpp's threads, numpy's BLAS (MiniLM's matrix products) and OpenMP (the judge's trees) alike: on cores
other jobs share, threads beyond the free cores spin at barriers, and BLAS and OpenMP default to a thread per core
whatever llama.cpp was told (README, "Ray Data": 355-426 s against 98-138 s for the same 400 products on a loaded
machine).
"""

from __future__ import annotations

import os


def threads() -> int:
    """`$TAGGER_THREADS`, else every core."""
    return int(os.environ.get("TAGGER_THREADS") or 0) or os.cpu_count() or 1


def cap_threads() -> None:
    """Caps BLAS and OpenMP at `$TAGGER_THREADS` when it is set (unset: their own defaults, every core). It reaches
    only libraries already loaded: call it again after importing one that brings its own (scikit-learn)."""
    if not os.environ.get("TAGGER_THREADS"):
        return
    import numpy  # noqa: F401  # loads the BLAS
    from threadpoolctl import threadpool_limits

    threadpool_limits(limits=threads())
