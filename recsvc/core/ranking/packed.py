"""A ranked list as the cache stores it, and its rendering to JSON.

The value holds the tag of the ranking rules it was made under (`Variant.tag`: the
boosts, burials and blend weights; a list made under others is not served), and per
item its number, score, up to three reason codes and the anchor item of a "because
you bought X" reason, as flat arrays (little-endian):

    RL3\\n | tag u32 | count u32 | items i32[c] | scores f32[c] | codes u8[c x 3] | anchors i32[c]

Written for thousands of users at once with a few numpy operations (`pack_batch`), read
with `numpy.frombuffer` views. Only the n items a request shows are rendered to JSON,
from byte strings prepared once per model (`ListRenderer`). Keys carry the model
version, so item numbers always refer to the model that wrote them."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np
import orjson

from recsvc.core.model import RecommenderModel

MAGIC = b"RL3\n"
REASONS = 3
_HEADER = len(MAGIC) + 8
# Reason codes as stored (`explain` chooses them; their meanings are listed there).
NONE, PROMOTED, BOUGHT_BEFORE, BECAUSE, SIMILAR, POPULAR_IN, POPULAR, TRENDING, NEW = range(9)
SEEN_BEFORE, BECAUSE_VIEWED = 9, 10  # the shopper's past, without a purchase
NEXT_AFTER = 11  # often chosen next after one of the shopper's recent items


@dataclass(frozen=True)
class PackedList:
    items: np.ndarray
    scores: np.ndarray
    codes: np.ndarray  # count x 3
    anchors: np.ndarray
    tag: int = 0

    def __len__(self) -> int:
        return int(self.items.size)


EMPTY = PackedList(np.zeros(0, np.int32), np.zeros(0, np.float32),
                   np.zeros((0, REASONS), np.uint8), np.zeros(0, np.int32))


def pack_batch(items: np.ndarray, scores: np.ndarray, codes: np.ndarray,
               anchors: np.ndarray, lengths: np.ndarray, tag: int = 0) -> list[bytes]:
    """One value per row of B x K arrays; row b keeps its first lengths[b] entries."""
    rows, width = items.shape
    lengths = np.asarray(lengths, dtype=np.int64)
    out: list[bytes] = [b""] * rows
    # Rows of one length are laid side by side in one buffer and cut from its bytes:
    # a handful of array copies for the batch rather than six joins a row.
    for n in np.unique(lengths).tolist():
        which = np.flatnonzero(lengths == n)
        fields = [np.frombuffer(MAGIC, np.uint8)[None, :].repeat(which.size, axis=0),
                  np.full((which.size, 1), tag, "<u4").view(np.uint8),
                  np.full((which.size, 1), n, "<u4").view(np.uint8),
                  np.ascontiguousarray(items[which, :n], "<i4").view(np.uint8),
                  np.ascontiguousarray(scores[which, :n], "<f4").view(np.uint8),
                  np.ascontiguousarray(codes[which, :n], np.uint8).reshape(which.size, -1),
                  np.ascontiguousarray(anchors[which, :n], "<i4").view(np.uint8)]
        raw = np.concatenate(fields, axis=1).tobytes()
        size = _HEADER + n * (4 + 4 + REASONS + 4)
        for j, b in enumerate(which.tolist()):
            out[b] = raw[j * size:(j + 1) * size]
    return out


def unpack(raw: bytes) -> PackedList | None:
    """None for a value that is not a packed list (a foreign or truncated value)."""
    if len(raw) < _HEADER or not raw.startswith(MAGIC):
        return None
    tag, count = np.frombuffer(raw, dtype="<u4", count=2, offset=len(MAGIC)).tolist()
    if len(raw) != _HEADER + count * (4 + 4 + REASONS + 4):
        return None
    offset = _HEADER
    items = np.frombuffer(raw, dtype="<i4", count=count, offset=offset)
    offset += 4 * count
    scores = np.frombuffer(raw, dtype="<f4", count=count, offset=offset)
    offset += 4 * count
    codes = np.frombuffer(raw, dtype=np.uint8, count=count * REASONS,
                          offset=offset).reshape(count, REASONS)
    offset += REASONS * count
    anchors = np.frombuffer(raw, dtype="<i4", count=count, offset=offset)
    return PackedList(items, scores, codes, anchors, tag)


FOR_YOU = b'{"code":"for_you"}'


class PerItem:
    """An item's byte string, made the first time it is shown and kept: made for every
    item when a model loads, a million items' took six seconds before the first answer."""

    def __init__(self, item_ids: np.ndarray, make: Callable[[str], bytes]) -> None:
        self.item_ids = item_ids
        self.make = make
        self.made: dict[int, bytes] = {}

    def __getitem__(self, item: int) -> bytes:
        made = self.made.get(item)
        if made is None:
            made = self.made[item] = self.make(str(self.item_ids[item]))
        return made


class ListRenderer:
    """JSON for listed items, from byte strings prepared once per model."""

    def __init__(self, model: RecommenderModel) -> None:
        self.model = model
        self.prefix = PerItem(model.item_ids,
                              lambda i: b'{"item_id":' + orjson.dumps(i) + b',"score":')
        self.ids = PerItem(model.item_ids, orjson.dumps)
        self.popular_in = [b'{"code":"popular_in","category":' + orjson.dumps(str(c)) + b"}"
                           for c in model.category_names.tolist()]
        self.constant = {code: b'{"code":"' + name.encode() + b'"}' for code, name in (
            (PROMOTED, "promoted"), (BOUGHT_BEFORE, "bought_before"), (POPULAR, "popular"),
            (SEEN_BEFORE, "seen_before"),
            (TRENDING, "trending"), (NEW, "new_arrival"))}
        self.category = model.item_category.tolist()

    def reason(self, code: int, item: int, anchor: int) -> bytes:
        if code == POPULAR_IN:
            c = self.category[item]
            return self.popular_in[c] if c >= 0 else self.constant[POPULAR]
        if code == BECAUSE:
            return b'{"code":"because_you_bought","item_id":' + self.ids[anchor] + b"}"
        if code == NEXT_AFTER:
            return b'{"code":"next_after","item_id":' + self.ids[anchor] + b"}"
        if code == BECAUSE_VIEWED:
            return b'{"code":"because_you_viewed","item_id":' + self.ids[anchor] + b"}"
        if code == SIMILAR:
            return b'{"code":"similar_to","item_id":' + self.ids[anchor] + b"}"
        return self.constant[code]

    def limited_reason(self, exposure: str) -> Callable[[int, int, int], bytes | None]:
        """`reason` for a caller who proved no identity: `no_purchases` names no item
        the shopper bought (`bought_before` dropped, `because_you_bought` and
        `next_after` shown as `for_you`); `none` names none of their items at all."""
        hidden = {BECAUSE, NEXT_AFTER} | ({BECAUSE_VIEWED, SIMILAR} if exposure == "none"
                                          else set())

        def reason(code: int, item: int, anchor: int) -> bytes | None:
            if code == BOUGHT_BEFORE:
                return None
            return FOR_YOU if code in hidden else self.reason(code, item, anchor)

        return reason

    def items_json(self, packed: PackedList, positions: list[int],
                   exposure: str = "full") -> bytes:
        # Plain Python values first: indexing numpy arrays item by item is slow. The
        # usual selection is the head of the list: a slice, not a gather.
        n = len(positions)
        at: slice | list[int] = slice(0, n) if n == 0 or positions[-1] == n - 1 else positions
        items = packed.items[at].tolist()
        scores = packed.scores[at].tolist()
        codes = packed.codes[at].tolist()
        anchors = packed.anchors[at].tolist()
        prefix, dumps = self.prefix, orjson.dumps
        if exposure == "full":
            reason = self.reason
            parts = [prefix[item] + dumps(round(score, 5)) + b',"reasons":['
                     + b",".join([reason(c, item, anchor) for c in cs if c]) + b"]}"
                     for item, score, cs, anchor in zip(items, scores, codes, anchors,
                                                        strict=True)]
        else:
            limited = self.limited_reason(exposure)
            parts = []
            for item, score, cs, anchor in zip(items, scores, codes, anchors, strict=True):
                shown = list(dict.fromkeys(r for c in cs if c
                                           and (r := limited(c, item, anchor)) is not None))
                parts.append(prefix[item] + dumps(round(score, 5)) + b',"reasons":['
                             + b",".join(shown) + b"]}")
        return b"[" + b",".join(parts) + b"]"

    def items(self, packed: PackedList, positions: list[int] | None = None) -> list[Any]:
        """Decoded items, for tests and tools."""
        if positions is None:
            positions = list(range(len(packed)))
        return orjson.loads(self.items_json(packed, positions))


def with_pins(packed: PackedList, pins: np.ndarray) -> PackedList:
    """The list with `pins` first, in their order, each `promoted` (before the reasons it
    had, if it was listed) and scored as the top item; they leave their old places."""
    if pins.size == 0:
        return packed
    pins = np.asarray(pins, dtype=np.int32)
    items = packed.items
    keep = np.ones(items.size, dtype=bool)
    codes = np.zeros((pins.size, REASONS), dtype=np.uint8)
    codes[:, 0] = PROMOTED
    anchors = np.full(pins.size, -1, dtype=np.int32)
    for k, pin in enumerate(pins.tolist()):  # a few pins: one comparison each
        found = np.flatnonzero(items == pin)
        if found.size:
            j = int(found[0])
            keep[j] = False
            own = [c for c in packed.codes[j].tolist() if c and c != PROMOTED]
            codes[k, 1:1 + len(own[:REASONS - 1])] = own[:REASONS - 1]
            anchors[k] = packed.anchors[j]
    top = float(packed.scores.max()) if items.size else 0.0
    return PackedList(np.concatenate([pins, items[keep]]),
                      np.concatenate([np.full(pins.size, top, np.float32),
                                      packed.scores[keep]]),
                      np.concatenate([codes, packed.codes[keep]]),
                      np.concatenate([anchors, packed.anchors[keep]]), packed.tag)
