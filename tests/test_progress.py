"""Progress: plain key=value lines for cron, bars and readable lines on a terminal."""

from __future__ import annotations

import io
import re

from training.progress import Progress


def test_structured_lines_when_not_a_terminal() -> None:
    out = io.StringIO()
    progress = Progress(stream=out, interactive=False)
    with progress.step("fit.cf", users=3) as step:
        step.note(loss=0.5)
    progress.log("tune.skipped", reason="too few users")
    lines = out.getvalue().splitlines()
    assert re.fullmatch(r"time=\S+ event=fit.cf.start users=3", lines[0])
    assert re.fullmatch(r"time=\S+ event=fit.cf.done seconds=[\d.]+ loss=0.5", lines[1])
    assert lines[2].endswith('event=tune.skipped reason="too few users"')


def test_bar_and_plain_text_on_a_terminal() -> None:
    out = io.StringIO()
    progress = Progress(stream=out, interactive=True)
    with progress.step("tune", total=4) as step:
        for _ in range(4):
            step.advance()
    text = out.getvalue()
    assert "\rtune:" in text and "/4 [" in text  # a bar was drawn (and cleared)
    assert "tune.done: seconds=" in text


def test_quiet_prints_nothing() -> None:
    out = io.StringIO()
    progress = Progress(stream=out, quiet=True)
    with progress.step("load"):
        progress.log("x")
        progress.text("report")
    assert out.getvalue() == ""
