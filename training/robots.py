"""Robots in the event log: shoppers who browse as no person does, judged by behaviour
alone (the clean stage drops their rows and names them in its report)."""

from __future__ import annotations

import numpy as np

from recsvc.core.clock import SECONDS_PER_DAY
from training.config import CleaningConfig

BOT_EXAMPLES = 20  # user ids named in the report, per rule


def robots(user: np.ndarray, ts: np.ndarray, browsing: np.ndarray, n_users: int,
           cleaning: CleaningConfig) -> dict[str, np.ndarray]:
    """Users who browse as no person does, by rule (a flag per user): more views and
    clicks in some minute than `max_views_per_minute` (`burst`), or in some day than
    `max_views_per_day` (`crawl`). Judged by behaviour alone: a customer of many years,
    or one who rates hundreds of films in an evening, is not a robot."""
    rows = np.flatnonzero(browsing & (user >= 0))
    if rows.size == 0:
        return {}
    who, when = user[rows], ts[rows]
    # Peak views in any 60-second window: for each view, how many of the same user's
    # follow within a minute (user and time in one sortable key).
    key = np.sort(who.astype(np.int64) * (1 << 36) + (when - when.min()))
    within = np.searchsorted(key, key + 60, side="left") - np.arange(key.size)
    burst = np.zeros(n_users, dtype=np.int64)
    np.maximum.at(burst, (key >> 36).astype(np.int64), within)
    day = (when - when.min()) // int(SECONDS_PER_DAY)
    per_day = np.unique(who.astype(np.int64) * (int(day.max()) + 1) + day, return_counts=True)
    crawl = np.zeros(n_users, dtype=np.int64)
    np.maximum.at(crawl, per_day[0] // (int(day.max()) + 1), per_day[1])
    return {"burst": burst > cleaning.max_views_per_minute,
            "crawl": crawl > cleaning.max_views_per_day}
