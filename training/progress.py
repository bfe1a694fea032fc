"""Progress for people and for cron: tqdm bars on a terminal, otherwise one structured
`key=value` log line per step, which log collectors parse without help."""

from __future__ import annotations

import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from typing import Any, TextIO


def _fmt(value: Any) -> str:
    text = f"{value:.4g}" if isinstance(value, float) else str(value)
    return f'"{text}"' if (" " in text or "=" in text or not text) else text


class Progress:
    def __init__(self, stream: TextIO | None = None, interactive: bool | None = None,
                 quiet: bool = False) -> None:
        self.stream = stream or sys.stderr
        self.interactive = self.stream.isatty() if interactive is None else interactive
        self.quiet = quiet

    def log(self, event: str, **fields: Any) -> None:
        if self.quiet:
            return
        if self.interactive:
            detail = ", ".join(f"{k}={_fmt(v)}" for k, v in fields.items())
            print(f"{event}{': ' + detail if detail else ''}", file=self.stream)
        else:
            stamp = datetime.now(UTC).isoformat(timespec="milliseconds")
            parts = [f"time={stamp}", f"event={event}"]
            parts += [f"{k}={_fmt(v)}" for k, v in fields.items()]
            print(" ".join(parts), file=self.stream, flush=True)

    def text(self, block: str) -> None:
        """A human-readable block (a report), printed as is."""
        if not self.quiet:
            print(block, file=self.stream, flush=True)

    @contextmanager
    def step(self, name: str, total: int | None = None, **fields: Any) -> Iterator[Step]:
        """A timed step; `advance()` moves its bar (on a terminal)."""
        bar = None
        if self.interactive and not self.quiet:
            from tqdm import tqdm

            bar = tqdm(total=total, desc=name, file=self.stream, leave=False,
                       bar_format="{desc}: {percentage:3.0f}%|{bar:20}| {n}/{total} "
                       "[{elapsed}]" if total else "{desc}: {elapsed}")
        else:
            self.log(f"{name}.start", **fields)
        step = Step(bar)
        start = time.perf_counter()
        try:
            yield step
        finally:
            if bar is not None:
                bar.close()
            seconds = time.perf_counter() - start
            self.log(f"{name}.done", seconds=round(seconds, 3), **step.fields)


class Step:
    def __init__(self, bar: Any) -> None:
        self.bar = bar
        self.fields: dict[str, Any] = {}

    def advance(self, n: int = 1) -> None:
        if self.bar is not None:
            self.bar.update(n)

    def note(self, **fields: Any) -> None:
        """Facts to report when the step ends."""
        self.fields.update(fields)
