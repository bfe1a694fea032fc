"""The deployment examples stay in step with the command line: every recsvc command
line in deploy/ and docker-compose.yml parses with today's options."""

from __future__ import annotations

import shlex
from pathlib import Path

import yaml

from recsvc.cli import build_parser, discover_commands

ROOT = Path(__file__).resolve().parent.parent


def parses(args: list[str]) -> None:
    parser = build_parser(discover_commands())
    namespace = parser.parse_args(args)
    assert namespace.command == args[0]


def test_crontab_and_systemd_commands_parse() -> None:
    cron = [line for line in (ROOT / "deploy/crontab").read_text().splitlines()
            if line and not line.startswith("#") and "recsvc " in line]
    assert cron
    for line in cron:
        words = shlex.split(line.split(">>")[0])
        parses(words[words.index(next(w for w in words if w.endswith("/recsvc"))) + 1:])
    for unit in ("recsvc.service", "recsvc-retrain.service"):
        text = (ROOT / "deploy/systemd" / unit).read_text()
        start = next(line for line in text.splitlines() if line.startswith("ExecStart="))
        words = shlex.split(start.removeprefix("ExecStart="))[1:]
        parses([w.replace("${RECSVC_MODEL_ROOT}", "/m").replace("${RECSVC_REDIS_URL}", "r")
                for w in words])
    assert "OnCalendar=" in (ROOT / "deploy/systemd/recsvc-retrain.timer").read_text()


def test_kubernetes_and_compose_commands_parse() -> None:
    documents = list(yaml.safe_load_all((ROOT / "deploy/kubernetes/recsvc.yaml").read_text()))
    kinds = {d["kind"] for d in documents}
    assert {"Deployment", "CronJob", "Service", "PersistentVolumeClaim"} <= kinds
    deployment = next(d for d in documents if d["kind"] == "Deployment")
    container = deployment["spec"]["template"]["spec"]["containers"][0]
    parses(container["args"])
    assert container["readinessProbe"]["httpGet"]["path"] == "/readyz"
    cron = next(d for d in documents if d["kind"] == "CronJob")
    parses(cron["spec"]["jobTemplate"]["spec"]["template"]["spec"]["containers"][0]["args"])
    compose = yaml.safe_load((ROOT / "docker-compose.yml").read_text())
    assert {"redis", "recsvc", "retrain"} <= set(compose["services"])
    for name in ("recsvc", "retrain"):
        parses(compose["services"][name]["command"])


def test_the_monitoring_names_only_metrics_the_service_exports() -> None:
    """Every metric in the Grafana dashboard and the alert rules is one /metrics has."""
    import json
    import re

    from prometheus_client import generate_latest

    from recsvc.service import telemetry  # noqa: F401 - registers the service's metrics

    exported = set(re.findall(r"^# HELP (\S+)", generate_latest().decode(), re.MULTILINE))
    monitoring = ROOT / "deploy/monitoring"
    rules = yaml.safe_load((monitoring / "prometheus-alerts.yml").read_text())
    alerts = [r for group in rules["groups"] for r in group["rules"]]
    assert {"RecsvcErrorRate", "RecsvcSlowP99", "RecsvcCacheHitRatioLow",
            "RecsvcFallbackRateHigh", "RecsvcModelStale", "RecsvcNightlyJobFailed",
            "RecsvcImpressionsDropped"} <= {a["alert"] for a in alerts}
    dashboard = json.loads((monitoring / "grafana-dashboard.json").read_text())
    expressions = [a["expr"] for a in alerts] + [
        t["expr"] for p in dashboard["panels"] for t in p["targets"]]
    used = {re.sub(r"_(bucket|count|sum)$", "", name)
            for e in expressions for name in re.findall(r"recsvc_[a-z_]+", e)}
    assert used and used <= exported, used - exported
