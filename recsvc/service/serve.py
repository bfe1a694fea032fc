"""`recsvc serve`: the HTTP service under uvicorn.

Options override `RECSVC_*` environment variables; they are handed to the workers as
environment variables, so one worker or many read the same settings."""

from __future__ import annotations

import argparse
import os
import socket
import tempfile
from pathlib import Path

from pydantic import ValidationError

from recsvc.cli import Command
from recsvc.core.errors import EXIT_OK, InputError, PortInUse, first_problem
from recsvc.core.policy.rules import load_rules
from recsvc.service import logs
from recsvc.settings import Settings

OPTIONS = {  # option -> setting
    "model_root": "model_root", "host": "host", "port": "port", "workers": "workers",
    "redis_url": "redis_url", "rules_file": "rules_file", "state_dir": "state_dir",
    "log_level": "log_level", "log_format": "log_format",
}


def _configure(p: argparse.ArgumentParser) -> None:
    p.add_argument("--model-root", type=Path, help="directory holding model versions")
    p.add_argument("--host", help="interface to listen on (127.0.0.1)")
    p.add_argument("--port", type=int, help="port (8000)")
    p.add_argument("--workers", type=int, help="worker processes (1)")
    p.add_argument("--redis-url", help="redis://host:port/db (default: in-process cache)")
    p.add_argument("--rules-file", type=Path, help="TOML with business rules and variants")
    p.add_argument("--state-dir", type=Path, help="events log and catalog overrides")
    p.add_argument("--log-level", choices=["critical", "error", "warning", "info", "debug"],
                   help="(info)")
    p.add_argument("--log-format", choices=["text", "json"], help="(text)")


def _run(args: argparse.Namespace) -> int:
    import uvicorn

    for option, setting in OPTIONS.items():
        value = getattr(args, option)
        if value is not None:
            os.environ[f"RECSVC_{setting.upper()}"] = str(value)
    try:
        settings = Settings()
    except ValidationError as exc:
        raise InputError(f"setting {first_problem(exc)}") from None
    load_rules(settings.rules_file)  # a broken rules file stops here, with its reason
    check_port(settings.host, settings.port)
    if settings.workers > 1 and "PROMETHEUS_MULTIPROC_DIR" not in os.environ:
        os.environ["PROMETHEUS_MULTIPROC_DIR"] = tempfile.mkdtemp(prefix="recsvc-metrics-")
    logs.configure(settings.log_level, settings.log_format)
    uvicorn.run("recsvc.service.app:serving_app", factory=True, host=settings.host,
                port=settings.port, workers=settings.workers, log_level=settings.log_level,
                log_config=logs.uvicorn_config(settings.log_level, settings.log_format),
                access_log=False, loop="auto", http="auto")
    return EXIT_OK


def check_port(host: str, port: int) -> None:
    """Say so in one line when the port is taken, rather than let uvicorn log an error
    and exit with a code that means something else."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    with socket.socket(family, socket.SOCK_STREAM) as probe:
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            probe.bind((host, port))
        except OSError as exc:
            raise PortInUse(f"cannot listen on {host}:{port}: {exc.strerror} (another "
                            "service there? --port or RECSVC_PORT chooses another)") from None


SERVE = Command("serve", "serve recommendations over HTTP", _configure, _run)
