"""Installation by role: serving needs none of the training libraries. `recsvc serve`,
`warm-cache`, `versions` and `rollback` run (in real processes) with implicit, pandas,
pyarrow, scikit-learn, matplotlib and tqdm made unimportable, on a model the full
install trained; the training commands then say which extra they need. (The container
check proves the same with a real `pip install .` without extras.)"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import tomllib
from pathlib import Path

import httpx

from recsvc.cli import TRAINING_PACKAGES
from tests.conftest import free_port
from tests.test_serve_command import wait_ready
from tests.test_service import train_planted

ROOT = Path(__file__).resolve().parent.parent
# Runs `recsvc` with the training libraries unimportable, as on a serving-only install.
WITHOUT_TRAINING = """
import importlib.abc, sys
BLOCKED = set(sys.argv[1].split(","))
class Blocked(importlib.abc.MetaPathFinder):
    def find_spec(self, name, path=None, target=None):
        if name.split(".")[0] in BLOCKED:
            raise ModuleNotFoundError(f"No module named {name!r}", name=name)
        return None
sys.meta_path.insert(0, Blocked())
from recsvc.cli import main
sys.exit(main(sys.argv[2:]))
"""


def serving_only(*args: str, **kwargs) -> list[str]:  # noqa: ANN003
    return [sys.executable, "-c", WITHOUT_TRAINING, ",".join(sorted(TRAINING_PACKAGES)),
            *args]


def test_the_base_install_lists_no_training_library() -> None:
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    base = {dep.split(">")[0].split("[")[0].split("=")[0].strip().lower()
            for dep in project["dependencies"]}
    training = {"implicit", "pandas", "pyarrow", "scikit-learn", "matplotlib", "tqdm"}
    assert not base & training
    extra = {dep.split(">")[0].strip().lower() for dep in project["optional-dependencies"]["train"]}
    assert training <= extra


def test_serving_commands_run_without_the_training_libraries(tmp_path: Path,
                                                            redis_server) -> None:
    train_planted(tmp_path)
    root = str(tmp_path / "m")
    env = {**os.environ, "RECSVC_STATE_DIR": str(tmp_path / "state"),
           "RECSVC_API_KEY": "s3cret"}
    versions = subprocess.run(serving_only("versions", "--model-root", root),
                              capture_output=True, text=True, env=env)
    assert versions.returncode == 0, versions.stderr
    assert versions.stdout.count("\n") == 2  # the header and the one version
    warmed = subprocess.run(serving_only("warm-cache", "--model-root", root, "--redis-url",
                                         redis_server.url, "--users", "all"),
                            capture_output=True, text=True, env=env)
    assert warmed.returncode == 0, warmed.stderr
    assert int(warmed.stdout.split()[1]) >= 50  # "warmed N lists ..."
    port = free_port()
    process = subprocess.Popen(serving_only("serve", "--model-root", root, "--port",
                                            str(port), "--log-level", "warning"),
                               env=env, stderr=subprocess.PIPE)
    url = f"http://127.0.0.1:{port}"
    try:
        wait_ready(url, process, timeout=180)
        with httpx.Client(base_url=url, timeout=10) as http:
            items = http.get("/recommend", params={"user_id": "au1", "n": 3}).json()["items"]
            assert len(items) == 3
            assert http.get("/similar/a1").status_code == 200
            assert http.get("/popular").status_code == 200
            event = {"user_id": "au1", "item_id": "a1", "event_type": "view"}
            assert http.post("/events", json=event).status_code == 200
            # A new item and a search are encoded by the saved vocabulary, not sklearn.
            created = http.put("/items/NEW1", headers={"X-API-Key": "s3cret"},
                               json={"title": "steel pan", "category": "Kitchen > Cookware"})
            assert created.status_code == 200, created.text
            assert http.get("/similar/NEW1").status_code == 200
            search = {"user_id": "au1", "event_type": "search", "query": "rake"}
            assert http.post("/events", json=search).json()["accepted"] >= 1
    finally:
        process.send_signal(signal.SIGTERM)
        process.wait(timeout=20)
    out = tmp_path / "campaign.csv"
    exported = subprocess.run(serving_only("export", "--model-root", root, "--out", str(out),
                                           "--purpose", "personalization"),
                              capture_output=True, text=True, env=env)
    assert exported.returncode == 0, exported.stderr
    assert "NEW1" in out.read_text()  # created items are in campaigns too
    rules = tmp_path / "rules.toml"
    rules.write_text('[pin]\nitems = ["NEW1"]\n')
    checked = subprocess.run(serving_only("rules", "check", str(rules), "--model-root", root),
                             capture_output=True, text=True, env=env)
    assert checked.returncode == 0 and "lists change" in checked.stdout, checked.stderr
    rollback = subprocess.run(serving_only("rollback", "--model-root", root),
                              capture_output=True, text=True, env=env)
    assert rollback.returncode == 2 and "no promoted version older" in rollback.stderr
    forget = subprocess.run(serving_only("forget", "au1", "--model-root", root,
                                         "--redis-url", redis_server.url),
                            capture_output=True, text=True, env=env)
    assert forget.returncode == 0, forget.stderr
    assert json.loads(forget.stdout)["removed_now"]["keys_deleted"] >= 1  # the warmed list


def test_training_commands_name_the_extra_they_need(tmp_path: Path) -> None:
    result = subprocess.run(serving_only("generate", "--out", str(tmp_path / "s")),
                            capture_output=True, text=True)
    assert result.returncode == 1
    assert result.stderr.strip().endswith("pip install 'recsvc[train]'")
    assert len(result.stderr.strip().splitlines()) == 1
