"""A ranked list as the cache stores it: item numbers for filtering, and each item's JSON
already serialized, so serving a cached list parses nothing and re-serializes nothing.

Layout (little-endian): `RL1\\n`, count (uint32), item numbers (int32 x count), offsets
into the fragments (uint32 x count + 1), then the fragments: `{"item_id":..,"score":..,
"reasons":[..]}` each. A hit is one GET, a few `numpy.frombuffer` views, and a join."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
import orjson

MAGIC = b"RL1\n"
_HEADER = len(MAGIC) + 4


@dataclass(frozen=True)
class PackedList:
    items: np.ndarray  # item numbers, best first
    offsets: np.ndarray
    blob: bytes | memoryview

    def fragment(self, j: int) -> bytes:
        return bytes(self.blob[self.offsets[j]:self.offsets[j + 1]])

    def __len__(self) -> int:
        return int(self.items.size)


def pack(entries: list[list[Any]]) -> bytes:
    """Entries are [item number, item id, score, reasons]."""
    fragments = [orjson.dumps({"item_id": e[1], "score": e[2], "reasons": e[3]})
                 for e in entries]
    sizes = np.fromiter((len(f) for f in fragments), dtype=np.uint32, count=len(fragments))
    offsets = np.zeros(len(fragments) + 1, dtype="<u4")
    np.cumsum(sizes, out=offsets[1:])
    return b"".join([MAGIC, np.uint32(len(entries)).tobytes(),
                     np.asarray([e[0] for e in entries], dtype="<i4").tobytes(),
                     offsets.tobytes(), *fragments])


def unpack(raw: bytes) -> PackedList | None:
    """None for a value that is not a packed list (a foreign or truncated value)."""
    if len(raw) < _HEADER or not raw.startswith(MAGIC):
        return None
    count = int(np.frombuffer(raw, dtype="<u4", count=1, offset=len(MAGIC))[0])
    start = _HEADER + 4 * count
    end = start + 4 * (count + 1)
    if len(raw) < end:
        return None
    items = np.frombuffer(raw, dtype="<i4", count=count, offset=_HEADER)
    offsets = np.frombuffer(raw, dtype="<u4", count=count + 1, offset=start)
    blob = memoryview(raw)[end:]
    if offsets[-1] != len(blob):
        return None
    return PackedList(items, offsets, blob)


def select(packed: PackedList, n: int, allowed: np.ndarray,
           item_category: np.ndarray | None = None,
           max_per_category: int | None = None) -> list[int]:
    """Positions of the first n allowed items, at most `max_per_category` per category."""
    items = packed.items
    try:
        positions = np.flatnonzero(allowed[items])
    except IndexError:  # written for another catalog: keep only what indexes this one
        ok = (items >= 0) & (items < allowed.size)
        ok[ok] = allowed[items[ok]]
        positions = np.flatnonzero(ok)
    if max_per_category is None or item_category is None:
        return positions[:n].tolist()
    out: list[int] = []
    counts: dict[int, int] = {}
    for j in positions.tolist():
        c = int(item_category[items[j]])
        if c >= 0:
            if counts.get(c, 0) >= max_per_category:
                continue
            counts[c] = counts.get(c, 0) + 1
        out.append(j)
        if len(out) == n:
            break
    return out


def items_json(packed: PackedList, positions: list[int]) -> bytes:
    blob, offsets = packed.blob, packed.offsets
    return b"[" + b",".join(bytes(blob[offsets[j]:offsets[j + 1]]) for j in positions) + b"]"


def to_entries(packed: PackedList) -> list[dict[str, Any]]:
    """Decoded items, for tests and tools."""
    return [orjson.loads(packed.fragment(j)) for j in range(len(packed))]
