"""The tuner's last word: the starting point, unless a challenger beats it beyond chance.

A blend tuned on few shoppers is first drawn back towards the defaults (`shrink`): the
weights that won on 200 shoppers fit those shoppers' noise as well as the shop.

The untuned defaults and popularity alone are scored on the same validation shoppers as
the tuned result; a challenger replaces the defaults only when its gain holds under a
paired bootstrap over those shoppers, so tuning never ends worse than where it started,
and with few shoppers (a wide bound) it keeps the defaults."""

from __future__ import annotations

from typing import Any, TypeVar

import numpy as np

Result = TypeVar("Result")  # the tuner's result for each candidate

BOOTSTRAP = 400  # resamples of the validation shoppers


def choose(candidates: dict[str, tuple[np.ndarray, Result]], seed: int
           ) -> tuple[Result, dict[str, Any]]:
    """The defaults, unless a challenger (the tuned result, popularity alone) beats them
    on the validation shoppers by more than chance: the 5th percentile of its mean gain
    over `BOOTSTRAP` resamples of the shoppers (paired) must be above zero. Of the
    challengers that pass, the best. With few shoppers the bound is wide, and the
    defaults stay: the tuner cannot end worse than its starting point."""
    defaults, _ = candidates["defaults"]
    rng = np.random.default_rng(seed)
    picks = rng.integers(0, defaults.size, size=(BOOTSTRAP, defaults.size))
    report: dict[str, Any] = {}
    passing = []
    for name, (values, _) in candidates.items():
        gain = values - defaults
        low = float(np.quantile(gain[picks].mean(axis=1), 0.05)) if defaults.size else 0.0
        report[name] = {"mean": round(float(values.mean()), 5) if values.size else 0.0,
                        "gain": round(float(gain.mean()), 5) if gain.size else 0.0,
                        "gain_low": round(low, 5)}
        if name != "defaults" and low > 0:
            passing.append((float(gain.mean()), name))
    chosen = max(passing)[1] if passing else "defaults"
    why = ("no challenger beat the defaults by more than chance (5th percentile of the "
           "bootstrapped gain at or below 0)" if chosen == "defaults" else
           f"{chosen} beat the defaults on {defaults.size} shoppers beyond chance")
    return candidates[chosen][1], {"chosen": chosen, "why": why, "users": int(defaults.size),
                                   "candidates": report}


def shrink(start: dict[str, float], tuned: dict[str, float], users: int,
           prior_users: float) -> tuple[dict[str, float], float]:
    """Blend weights moved from `start` towards `tuned` by users / (users + prior_users):
    the defaults weigh as much as `prior_users` validation shoppers. (weights, share)."""
    share = users / (users + prior_users) if users + prior_users > 0 else 1.0
    names = sorted(set(start) | set(tuned))
    return ({n: round(start.get(n, 0.0) + share * (tuned.get(n, 0.0) - start.get(n, 0.0)), 4)
             for n in names}, share)
