"""The compiled (numba) kernels of the scoring path, compiled before traffic arrives.

numba compiles a kernel on its first call (tens of seconds for all of them) and keeps
the machine code on disk (`cache=True`: next to the sources, or under NUMBA_CACHE_DIR),
so a later process only loads it. `warm_up` runs when a model is loaded, so neither the
first shopper nor each forked `warm-cache` worker pays for it; with the engine, the
look-up tables its explanations need are built then too."""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from recsvc.engine import Engine


def warm_up(engine: Engine | None = None) -> None:
    from recsvc import explain, fused, recommend, topn

    fused.warm_up()
    topn.warm_up()
    explain.warm_up(engine)
    recommend.warm_up()
