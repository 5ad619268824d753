"""Knowledge-aware multi-granularity recogniser (paper §3.2, eqs. 5-9) and entity uncertainty (eq. 10).

* `config`: `RecognizerConfig` and `PRESETS` (`paper`, `lite`).
* `crf`: batched CRF (eq. 5); `equations`: eqs. 8-10 and the MGA matrix M.
* `encoding`: `text <SEP> knowledge` inputs with the first-subword rule.
* `model`: `Recognizer` (`build`, `from_pretrained`, `save_pretrained`).
* `train`: `train_recognizer`; `predict`: `write_predictions`, `predict_posts`.

Heavy libraries (torch, transformers) load when a submodule is imported, not with this package.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from .config import PRESETS as PRESETS
    from .config import RecognizerConfig as RecognizerConfig
    from .model import Recognizer as Recognizer
    from .predict import predict_file as predict_file
    from .train import train_recognizer as train_recognizer

_EXPORTS = {
    "PRESETS": "config", "RecognizerConfig": "config", "preset": "config",
    "Recognizer": "model",
    "predict_posts": "predict", "read_knowledge": "predict", "write_predictions": "predict",
    "predict_file": "predict",
    "train_recognizer": "train",
}

__all__ = sorted(_EXPORTS)


def __getattr__(name: str) -> Any:
    if name not in _EXPORTS:
        raise AttributeError(f"module 'gemner.recognize' has no attribute {name!r}")
    import importlib

    return getattr(importlib.import_module(f".{_EXPORTS[name]}", __name__), name)
