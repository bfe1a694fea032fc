"""Errors that reach a user as one line, with the exit code a script can act on."""

from __future__ import annotations

from pydantic import ValidationError

EXIT_OK = 0
EXIT_FAILURE = 1
EXIT_BAD_INPUT = 2
EXIT_NOT_PROMOTED = 3  # a candidate model failed the quality gate
EXIT_LOCKED = 4  # another run of the nightly job holds the lock
EXIT_PORT_IN_USE = 5  # `recsvc serve`: something already listens on the port


class RecsvcError(Exception):
    """An expected failure: its message is shown as is, without a traceback."""

    exit_code = EXIT_FAILURE


class InputError(RecsvcError):
    """Bad input given by the user: a missing, empty or malformed file or option."""

    exit_code = EXIT_BAD_INPUT


class ModelError(RecsvcError):
    """A model version that cannot be used: missing, corrupt, or of a foreign format."""

    exit_code = EXIT_BAD_INPUT


class LockedError(RecsvcError):
    """Another run is in progress."""

    exit_code = EXIT_LOCKED


class PortInUse(RecsvcError):
    """The port to serve on is taken."""

    exit_code = EXIT_PORT_IN_USE


def field_path(location: tuple[int | str, ...]) -> str:
    """`('model', 'cf', 'factors')` -> `model.cf.factors`: how every message names a field."""
    return ".".join(str(part) for part in location) or "(top level)"


def first_problem(exc: ValidationError) -> str:
    """A pydantic error as one line, `field: what is wrong`: settings, config files, rules
    files and model manifests all report the first problem this way."""
    err = exc.errors(include_url=False)[0]
    return f"{field_path(err['loc'])}: {err['msg']}"
