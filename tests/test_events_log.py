"""The events log never loses an acknowledged event, and never keeps part of a refused
one: a write that fails part-way is cut back before the error is raised, so the next
batch starts on a line of its own. The disk fills for real here: the kernel's file size
limit (RLIMIT_FSIZE) makes the write fail in a child process."""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap
from pathlib import Path

from recsvc.stores.events_log import EventLog

CHILD = textwrap.dedent("""
    import json, resource, signal, sys
    from pathlib import Path
    from recsvc.stores.events_log import EventLog

    signal.signal(signal.SIGXFSZ, signal.SIG_IGN)  # a full file is an error, not a kill
    log = EventLog(Path(sys.argv[1]), 1 << 30)
    first = [{"user_id": f"u{i}", "item_id": "i", "event_type": "view", "timestamp": i}
             for i in range(5)]
    path = log.append(first)
    size = path.stat().st_size
    soft, hard = resource.getrlimit(resource.RLIMIT_FSIZE)
    resource.setrlimit(resource.RLIMIT_FSIZE, (size + 100, hard))  # room for 100 bytes
    big = [{"user_id": "big", "item_id": "i" * 40, "event_type": "view", "timestamp": 1}] * 20
    try:
        log.append(big)
        print("not refused")
    except OSError as exc:
        print("refused", exc.errno, path.stat().st_size == size)
    resource.setrlimit(resource.RLIMIT_FSIZE, (soft, hard))  # space again
    log.append([{"user_id": "after", "item_id": "i", "event_type": "view",
                 "timestamp": 9}])
""")


def test_a_failed_write_leaves_no_half_line_for_the_next_batch(tmp_path: Path) -> None:
    result = subprocess.run([sys.executable, "-c", CHILD, str(tmp_path / "events")],
                            capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stderr
    assert result.stdout.split() == ["refused", "27", "True"]  # EFBIG; cut back exactly
    (log,) = (tmp_path / "events").iterdir()
    lines = [json.loads(line) for line in log.read_text().splitlines()]
    assert [r["user_id"] for r in lines] == ["u0", "u1", "u2", "u3", "u4", "after"]


def test_the_fsync_policy_is_checked(tmp_path: Path) -> None:
    import pytest

    EventLog(tmp_path, 1024, "os").append([{"a": 1}])
    with pytest.raises(ValueError, match="'always' or 'os'"):
        EventLog(tmp_path, 1024, "sometimes")


def test_a_line_torn_by_a_kill_stays_alone(tmp_path: Path) -> None:
    """A worker killed mid-write leaves a torn last line; the next batch starts on a line
    of its own instead of joining it (the trainer skips the torn one)."""
    log = EventLog(tmp_path, 1 << 20)
    path = log.append([{"n": 1}])
    with open(path, "ab") as f:
        f.write(b'{"n": 2, "torn')
    log.append([{"n": 3}, {"n": 4}])
    lines = path.read_text().splitlines()
    assert lines == ['{"n":1}', '{"n": 2, "torn', '{"n":3}', '{"n":4}']
