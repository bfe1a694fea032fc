"""The compiled (numba) kernels of the scoring path, compiled before traffic arrives.

numba compiles a kernel on its first call (tens of seconds for all of them) and keeps
the machine code on disk (`cache=True`: next to the sources, or under NUMBA_CACHE_DIR),
so a later process only loads it. `warm_up` runs when a model is loaded, so neither the
first shopper nor each forked `warm-cache` worker pays for it."""

from __future__ import annotations


def warm_up() -> None:
    from recsvc import explain, fused, recommend, topn

    fused.warm_up()
    topn.warm_up()
    explain.warm_up()
    recommend.warm_up()
