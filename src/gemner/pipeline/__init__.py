"""The end-to-end GEM pipeline: one YAML configuration, the `GEM` API, prediction files, pictures."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from .config import PipelineConfig as PipelineConfig
    from .config import load_config as load_config
    from .gem import GEM as GEM

_EXPORTS = {"GEM": "gem", "Triple": "gem", "PipelineConfig": "config", "load_config": "config"}
__all__ = sorted(_EXPORTS)


def __getattr__(name: str) -> Any:
    if name not in _EXPORTS:
        raise AttributeError(f"module 'gemner.pipeline' has no attribute {name!r}")
    import importlib

    return getattr(importlib.import_module(f".{_EXPORTS[name]}", __name__), name)
