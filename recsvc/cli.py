"""The `recsvc` command. Subcommands come from the `recsvc.commands` entry-point group.

Packages plug their commands in by entry point, so this module never imports the
training package: the dependency between the two points one way only.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from importlib.metadata import entry_points

from recsvc import __version__
from recsvc.core.errors import EXIT_FAILURE, RecsvcError

# What `pip install 'recsvc[train]'` adds: a command that needs them says so.
TRAINING_PACKAGES = {"implicit", "pandas", "pyarrow", "sklearn", "matplotlib", "tqdm"}


@dataclass(frozen=True)
class Command:
    """One subcommand: how to declare its options and how to run it."""

    name: str
    help: str
    configure: Callable[[argparse.ArgumentParser], None]
    run: Callable[[argparse.Namespace], int]


def discover_commands() -> dict[str, Command]:
    commands: dict[str, Command] = {}
    for ep in entry_points(group="recsvc.commands"):
        command = ep.load()
        commands[command.name] = command
    return dict(sorted(commands.items()))


def build_parser(commands: dict[str, Command]) -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="recsvc", description="Product recommendations: train, evaluate and serve."
    )
    parser.add_argument("--version", action="version", version=f"recsvc {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    for command in commands.values():
        p = sub.add_parser(command.name, help=command.help, description=command.help)
        command.configure(p)
        p.set_defaults(_run=command.run)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser(discover_commands())
    args = parser.parse_args(argv)
    try:
        return int(args._run(args) or 0)
    except RecsvcError as exc:
        print(f"recsvc {args.command}: error: {exc}", file=sys.stderr)
        return exc.exit_code
    except ModuleNotFoundError as exc:
        if (exc.name or "").split(".")[0] not in TRAINING_PACKAGES:
            raise
        print(f"recsvc {args.command}: error: needs the training extra ({exc.name} is not "
              "installed): pip install 'recsvc[train]'", file=sys.stderr)
        return EXIT_FAILURE
    except KeyboardInterrupt:
        print(f"recsvc {args.command}: interrupted", file=sys.stderr)
        return EXIT_FAILURE
