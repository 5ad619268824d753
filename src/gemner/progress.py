"""The one progress bar: on stderr, or nothing at all when switched off (tests, pipes, `--no-progress`)."""

from __future__ import annotations

import functools
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any


class ProgressBar:
    """`update(n)` / `close()`, also usable as a context manager; a no-op when disabled."""

    def __init__(self, total: int | None, desc: str, *, unit: str = "post", initial: int = 0,
                 enabled: bool = True, leave: bool = True):
        self._bar: Any = None
        if enabled:
            from tqdm.auto import tqdm

            self._bar = tqdm(total=total, initial=initial, desc=desc, unit=unit, leave=leave)

    def update(self, n: int = 1) -> None:
        if self._bar is not None:
            self._bar.update(n)

    def note(self, **values: str) -> None:
        """Figures shown after the bar (a running loss, a best score)."""
        if self._bar is not None:
            self._bar.set_postfix(**values)

    def close(self) -> None:
        if self._bar is not None:
            self._bar.close()
            self._bar = None

    def __enter__(self) -> ProgressBar:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def progress_bar(total: int | None, desc: str, *, enabled: bool = True, unit: str = "post", initial: int = 0,
                 leave: bool = True) -> ProgressBar:
    return ProgressBar(total, desc, unit=unit, initial=initial, enabled=enabled, leave=leave)


@contextmanager
def silenced_progress_bars(silence: bool = True) -> Iterator[None]:
    """Inside, no library draws a progress bar either (`--no-progress`): the hub's downloads and
    transformers' weight loading through their own switches, and code that calls tqdm directly (such as
    transformers' GGUF reader) through tqdm's default. Everything is put back on exit."""
    if not silence:
        yield
        return
    import tqdm.std
    from huggingface_hub import utils as hub_utils

    hub_was_on = not hub_utils.are_progress_bars_disabled()
    hub_utils.disable_progress_bars()  # transformers imported later starts with its bars off too
    transformers_logging = _loaded_transformers_logging()
    transformers_was_on = transformers_logging is not None and transformers_logging.is_progress_bar_enabled()
    if transformers_was_on:
        transformers_logging.disable_progress_bar()
    tqdm_init = tqdm.std.tqdm.__init__
    tqdm.std.tqdm.__init__ = functools.partialmethod(tqdm_init, disable=True)  # type: ignore[method-assign]
    try:
        yield
    finally:
        tqdm.std.tqdm.__init__ = tqdm_init  # type: ignore[method-assign]
        transformers_logging = _loaded_transformers_logging()
        if transformers_logging is not None and (transformers_was_on or hub_was_on):
            transformers_logging.enable_progress_bar()
        elif hub_was_on:
            hub_utils.enable_progress_bars()


def _loaded_transformers_logging() -> Any:
    """transformers' logging module when transformers is imported already (never imported here)."""
    import sys

    return sys.modules.get("transformers.utils.logging")
