"""The one progress bar: on stderr, or nothing at all when switched off (tests, pipes, `--no-progress`)."""

from __future__ import annotations

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
