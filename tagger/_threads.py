"""How many compute threads a tagger process uses: `$TAGGER_THREADS`, else every core.

It caps llama.cpp's threads and numpy's BLAS threads (MiniLM's matrix products, the judge's fit) alike: on cores
other jobs share, threads beyond the free cores spin at barriers, and BLAS's default is one thread per core whatever
llama.cpp was told (README, "Ray Data": 355-426 s against 98-138 s for the same 400 products on a loaded machine).
"""

from __future__ import annotations

import os

_capped: list[int] = []  # the BLAS cap applied in this process, once


def threads() -> int:
    """`$TAGGER_THREADS`, else every core."""
    return int(os.environ.get("TAGGER_THREADS") or 0) or os.cpu_count() or 1


def cap_blas() -> None:
    """Caps numpy's BLAS at `$TAGGER_THREADS` when it is set (unset: BLAS keeps its own default, every core)."""
    if not os.environ.get("TAGGER_THREADS") or _capped == [threads()]:
        return
    import numpy  # noqa: F401  # loads the BLAS: threadpoolctl caps only libraries already loaded
    from threadpoolctl import threadpool_limits

    threadpool_limits(limits=threads(), user_api="blas")
    _capped[:] = [threads()]
