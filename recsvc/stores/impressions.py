"""The impression log: every list served (cache hit or computed; `/recommend`,
`/similar`, `/popular`), so that what shoppers did next can be attributed to what they
were shown, and KPIs and A/B tests computed (`recsvc.analytics`).

Written off the request path: a request only appends its line (a few microseconds of
serialisation) to a bounded queue; a thread of each worker drains it every `flush_s`
into `STATE_DIR/impressions/impressions-YYYYMMDD[-N].jsonl`, rotated as the events log
is (the same writer, without an fsync per batch: an impression lost in a
machine crash costs a measurement, not a sale). When the queue is full, impressions are
dropped and counted, and the answer is never slower.

One JSON object per line:

    {"recommendation_id": "9f03...", "ts": 1764547200.123, "user_id": "U42" | null,
     "variant": "default", "model_version": "2026...", "surface": "recommend",
     "items": ["I7", "I3", ...]}

`user_id` is what stands for the shopper in cache keys (their keyed hash when
`RECSVC_ID_HASH_KEY` is set), null for anonymous sessions and for shoppers who were
forgotten or do not consent to personalization."""

from __future__ import annotations

import collections
import logging
import threading
import time
from pathlib import Path

import numpy as np
import orjson

from recsvc.stores.events_log import EventLog

PREFIX = "impressions-"
log = logging.getLogger("recsvc.impressions")

class ImpressionLog:
    def __init__(self, directory: Path, rotate_bytes: int, capacity: int,
                 flush_s: float = 0.25) -> None:
        self.writer = EventLog(directory, rotate_bytes, fsync="os", prefix=PREFIX)
        self.capacity = capacity
        self.flush_s = flush_s
        self.written = 0
        self.dropped = 0
        self._queue: collections.deque[bytes] = collections.deque()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def record(self, rid: str, user: str | None, variant: str, version: str, surface: str,
               items: np.ndarray, item_ids: np.ndarray, explored: int = -1) -> bool:
        """Queue one impression, as its line; False (and counted) when the queue is full.
        The line is made here (a few microseconds): a writer thread making it would hold
        the interpreter the requests share, which measured costlier than the work."""
        if len(self._queue) >= self.capacity:
            self.dropped += 1
            return False
        line = {"recommendation_id": rid, "ts": round(time.time(), 3), "user_id": user,
                "variant": variant, "model_version": version, "surface": surface,
                "items": item_ids[items].tolist()}
        if explored >= 0:  # the item a new-arrival exploration put in the last place
            line["explored"] = str(item_ids[explored])
        self._queue.append(orjson.dumps(line) + b"\n")
        return True

    def start(self) -> None:
        if self._thread is None:
            self._thread = threading.Thread(target=self._run, name="impressions",
                                            daemon=True)
            self._thread.start()

    def close(self) -> None:
        """Stop the writer after writing what is queued."""
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=30)
            self._thread = None
        self.flush()

    def flush(self) -> int:
        """Write what is queued now; how many were written."""
        lines = []
        while self._queue:
            lines.append(self._queue.popleft())
        if not lines:
            return 0
        try:
            self.writer.append_lines(b"".join(lines))
        except OSError as exc:  # a full disk costs measurements, never an answer
            self.dropped += len(lines)
            log.warning("impressions not written (%s): %d dropped", exc, len(lines))
            return 0
        self.written += len(lines)
        return len(lines)

    def _run(self) -> None:
        while not self._stop.wait(self.flush_s):
            self.flush()

    def files(self) -> list[Path]:
        return self.writer.files()
