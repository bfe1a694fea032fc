"""The compiled (numba) kernels of the scoring path, compiled before traffic arrives.

numba compiles a kernel on its first call (tens of seconds for all of them) and keeps
the machine code on disk (`cache=True`: next to the sources, or under NUMBA_CACHE_DIR),
so a later process only loads it. Whoever loads a model for serving (the service, the
jobs) calls `warm_up` with it, so neither the first shopper nor each forked `warm-cache`
worker pays for it; with a model, the look-up tables its explanations need are built
then too."""

from __future__ import annotations

from recsvc.core.model import RecommenderModel
from recsvc.core.ranking import anchors, explain, kernel, topn


def warm_up(model: RecommenderModel | None = None) -> None:
    kernel.warm_up()
    topn.warm_up()
    explain.warm_up(model)
    anchors.warm_up()
