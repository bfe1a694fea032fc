"""What a shopper was shown lately, and what it means for their next list: frequency
caps (an item shown `cap` times without a click is hidden for `cooldown_s`), the pages
of one visit (page 2 never repeats what page 1 showed), and rotation (the lower places
of a list change from one period to the next: `rotate`).

Kept per shopper as one small hash in the cache (`stores.keys.shown_key`):

    i:ITEM_ID -> "COUNT,LAST"        impressions since the last click on it, last shown
    p:PAGE    -> "WHEN|ID\\x1fID..."  the items a page showed, and when

A click (or any engagement) on an item deletes its counter; `recsvc forget` and a
withdrawn consent delete the whole hash."""

from __future__ import annotations

import hashlib
import random
from dataclasses import dataclass, field

SEP = "\x1f"


@dataclass(frozen=True)
class FrequencyPolicy:
    cap: int | None  # impressions without a click before an item is hidden (None: never)
    cooldown_s: float  # how long a capped item stays hidden
    window_s: float  # a gap longer than this between two impressions restarts the count
    page_memory_s: float  # how long the pages of a visit are remembered (0: not at all)

    @property
    def ttl_s(self) -> int:
        """How long a shopper's hash outlives their last list."""
        return int(max(self.cooldown_s if self.cap else 0, self.window_s if self.cap else 0,
                       self.page_memory_s, 1))


@dataclass
class Shown:
    counts: dict[str, tuple[int, float]] = field(default_factory=dict)  # id -> (n, last)
    pages: dict[int, tuple[float, list[str]]] = field(default_factory=dict)


def parse(raw: dict[bytes, bytes]) -> Shown:
    """The hash as read from the cache; a field that does not parse is ignored."""
    shown = Shown()
    for key, value in raw.items():
        try:
            name, text = key.decode(), value.decode()
            if name.startswith("i:"):
                count, last = text.split(",", 1)
                shown.counts[name[2:]] = (int(count), float(last))
            elif name.startswith("p:"):
                when, ids = text.split("|", 1)
                shown.pages[int(name[2:])] = (float(when), ids.split(SEP) if ids else [])
        except (UnicodeDecodeError, ValueError):
            continue
    return shown


def capped(shown: Shown, policy: FrequencyPolicy, now: float) -> list[str]:
    """Items hidden now: shown `cap` times without a click, the last time within
    `cooldown_s`."""
    if policy.cap is None:
        return []
    return [item for item, (count, last) in shown.counts.items()
            if count >= policy.cap and now - last < policy.cooldown_s]


def earlier_pages(shown: Shown, policy: FrequencyPolicy, page: int, now: float
                  ) -> list[str] | None:
    """What the pages before `page` showed in this visit, or None when one of them is
    not remembered (asked without `page`, or longer ago than `page_memory_s`): then
    pages are plain slices of the list."""
    out: list[str] = []
    for p in range(1, page):
        when, items = shown.pages.get(p, (float("-inf"), []))
        if now - when >= policy.page_memory_s:
            return None
        out += items
    return out


def record(shown: Shown, policy: FrequencyPolicy, items: list[str], page: int | None,
           now: float) -> tuple[dict[str, bytes], list[str]]:
    """The hash fields to set and to delete after showing `items` as page `page` (None:
    not a page of a visit: only the impression counts)."""
    fields: dict[str, bytes] = {}
    drop: list[str] = []
    if policy.cap is not None:
        for item in items:
            count, last = shown.counts.get(item, (0, 0.0))
            restart = now - last > policy.window_s or (count >= policy.cap
                                                      and now - last >= policy.cooldown_s)
            fields[f"i:{item}"] = f"{1 if restart else count + 1},{now:.3f}".encode()
        # Counters of items not shown for a whole window go, so the hash stays small.
        drop += [f"i:{item}" for item, (_, last) in shown.counts.items()
                 if now - last > max(policy.window_s, policy.cooldown_s)]
    if page is not None and policy.page_memory_s > 0:
        fields[f"p:{page}"] = f"{now:.3f}|{SEP.join(items)}".encode()
        if page == 1:  # a new visit: later pages of the last one are forgotten
            drop += [f"p:{p}" for p in shown.pages if p > 1]
    return fields, drop


def engaged(items: list[str]) -> list[str]:
    """The fields to delete when the shopper engaged with these items: their counters."""
    return [f"i:{item}" for item in items]


def rotating(n: int, share: float, pinned: int) -> int:
    """How many of n places rotate (never a pinned one)."""
    return max(0, min(int(round(share * n)), n - pinned))


def rotate(positions: list[int], n: int, k: int, subject: str, period: int) -> list[int]:
    """Controlled rotation: of a list's first n places (`positions`, best first, with
    up to 2k more behind them), the top n - k stay, and the last k are drawn from the 3k
    candidates around them, in rank order; the draw is the same for a shopper all
    through one period, and another the next."""
    if k == 0 or len(positions) <= n:
        return positions[:n]
    pool = positions[n - k:n + 2 * k]
    seed = hashlib.blake2b(f"{subject}|{period}".encode(), digest_size=8).digest()
    chosen = sorted(random.Random(seed).sample(range(len(pool)), min(k, len(pool))))
    return positions[:n - k] + [pool[i] for i in chosen]
