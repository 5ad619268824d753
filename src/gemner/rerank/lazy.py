"""A reranker that loads its model only when the sample filter first finds a hard entity.

Loading a reranker costs seconds and hundreds of MB; most posts have no entity above gamma. So the
pipeline decides at start, cheaply, whether the reranker *can* load (its files are there: `check`),
and `LazyEntityReranker` loads it the first time an entity needs it.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from ..data.types import PredictedEntity
from ..hub import MissingWeightsError, is_available, missing_message
from .filter import SampleFilter

CONFIG_FILE = "reranker.json"  # as in .model; not imported from there to keep torch out of the start
ADAPTER_FILE = "adapter_model.safetensors"


def base_model_name(name_or_dir: str) -> str:
    """The base model a reranker folder was trained on, or the name itself (a zero-shot base model)."""
    folder = Path(name_or_dir)
    if not (folder / CONFIG_FILE).is_file():
        return name_or_dir
    try:
        model = str(json.loads((folder / CONFIG_FILE).read_text())["model"])
    except (OSError, ValueError, KeyError, TypeError) as err:
        raise ValueError(f"{folder / CONFIG_FILE}: unreadable reranker settings ({err})") from err
    # a base model shipped inside the folder is named relative to it, so that the folder can be moved
    inside = folder / model
    return str(inside) if not Path(model).is_absolute() and inside.is_dir() else model


def check(name_or_dir: str) -> None:
    """Raise MissingWeightsError (or ValueError for a damaged folder) when the reranker could not
    load; reads file names and small JSON files only, never the weights."""
    folder = Path(name_or_dir)
    if (folder / CONFIG_FILE).is_file() and not (folder / ADAPTER_FILE).is_file():
        raise MissingWeightsError(f"{folder}: no {ADAPTER_FILE} (a reranker folder holds its LoRA adapter)")
    base = base_model_name(name_or_dir)
    if not is_available(base):
        raise MissingWeightsError(missing_message(base))


def model_kind(name_or_dir: str) -> str:
    """'vision' or 'causal', from the base model's config.json when it is a local folder (a GGUF
    file or an alias is always a causal LM); the loaded model's own answer is `Reranker.kind`."""
    base = Path(base_model_name(name_or_dir)).expanduser()
    config = base / "config.json"
    if config.is_file():
        try:
            return "vision" if json.loads(config.read_text()).get("vision_config") else "causal"
        except (OSError, ValueError, AttributeError):
            return "causal"
    return "causal"


def has_hard_entity(sample_filter: SampleFilter, entities: Sequence[PredictedEntity]) -> bool:
    """Whether the filter would send any of `entities` to the reranker (as `EntityReranker` decides)."""
    for entity in entities:
        scores = entity.scores
        if not scores.get("topk") or (not sample_filter.rerank_all and "entropy" not in scores):
            continue
        try:
            if sample_filter.candidates_for(scores) is not None:
                return True
        except (KeyError, TypeError, ValueError):
            continue
    return False


class LazyEntityReranker:
    """Stands for an `EntityReranker` built by `load()`; loads it on the first hard entity. Any
    other use (an attribute the pipeline asks for) loads it too."""

    def __init__(self, load: Callable[[], Any], sample_filter: SampleFilter, kind: str) -> None:
        self._load = load
        self.sample_filter = sample_filter
        self.kind = kind
        self.loaded: Any = None  # the EntityReranker, once built

    def get(self) -> Any:
        if self.loaded is None:
            self.loaded = self._load()
        return self.loaded

    def rerank_entities(self, entities: Sequence[PredictedEntity], post: Any, log: Any) -> list[PredictedEntity]:
        if self.loaded is None and not has_hard_entity(self.sample_filter, entities):
            return list(entities)
        return self.get().rerank_entities(entities, post, log)

    def rerank_posts(self, posts: Sequence[tuple[Sequence[PredictedEntity], Any]], log: Any
                     ) -> list[list[PredictedEntity]]:
        if self.loaded is None and not any(has_hard_entity(self.sample_filter, e) for e, _ in posts):
            return [list(entities) for entities, _ in posts]
        return self.get().rerank_posts(posts, log)

    def __getattr__(self, name: str) -> Any:  # reranker, stats, static, ...: the built object's
        if name.startswith("_") or name == "loaded":
            raise AttributeError(name)
        return getattr(self.get(), name)
