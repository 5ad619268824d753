"""Turn expected failures (bad data, missing weights) into one clear line and exit status 2."""

from __future__ import annotations

import functools
from collections.abc import Callable
from typing import TypeVar

import typer

from ..data.issues import DataError
from ..hub import MissingWeightsError, RemoteCodeError
from .console import error

F = TypeVar("F", bound=Callable)

EXPECTED_ERRORS: tuple[type[Exception], ...] = (DataError, MissingWeightsError, RemoteCodeError, FileNotFoundError)


def friendly_errors(func: F) -> F:
    """Decorator for commands: expected errors print `error: ...` and exit 2, never a traceback."""

    @functools.wraps(func)
    def wrapper(*args, **kwargs):
        try:
            return func(*args, **kwargs)
        except EXPECTED_ERRORS as err:
            error(err)
            raise typer.Exit(2) from None

    return wrapper  # type: ignore[return-value]
