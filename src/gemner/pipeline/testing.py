"""A tiny trained GEM pipeline for tests, examples and benchmarks (offline, about 20 s on one core).

`build_tiny_pipeline_models(folder)` trains a tiny recogniser on the synthetic task of
`gemner.recognize.testing` and writes a random tiny ITM and causal LM beside it; `tiny_pipeline_config`
puts them in a `PipelineConfig` with every stage on (the sample filter lets every entity through, the ITM
threshold every entity in), so that each stage has work to do.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from ..ground.tiny import build_tiny_itm, save_tiny_itm
from ..recognize.config import RecognizerConfig
from ..recognize.testing import TINY_ENTITIES, TINY_SCHEMA, TINY_WORDS, make_tiny_encoder, synthetic_posts
from ..recognize.train import train_recognizer
from ..rerank.tiny import build_tiny_causal_lm
from .config import PipelineConfig, with_changes


def build_tiny_pipeline_models(folder: str | Path) -> dict[str, str]:
    """Paths of a trained tiny recogniser (`recognizer`), a tiny ITM (`itm`) and a tiny LM (`reranker`)."""
    root = Path(folder)
    encoder = make_tiny_encoder(root / "encoder", hidden=48)
    config = RecognizerConfig(encoder=str(encoder), lr=3e-3, head_lr=1e-2, batch_size=16, epochs=3, warmup_ratio=0.1)
    train_recognizer(config, TINY_SCHEMA, synthetic_posts(240, seed=1), synthetic_posts(40, seed=2, prefix="d"),
                     root / "recognizer", progress=False, log=lambda _m: None)
    names = [n for ns in TINY_ENTITIES.values() for name in ns for n in name.split()]
    itm = save_tiny_itm(*build_tiny_itm([*TINY_WORDS, *names, *TINY_SCHEMA.labels]), root / "itm")
    return {"recognizer": str(root / "recognizer"), "reranker": str(build_tiny_causal_lm(root / "lm")),
            "itm": str(itm)}


def tiny_pipeline_config(models: dict[str, str], **changes: Any) -> PipelineConfig:
    """The tiny models as a pipeline: knowledge off, every entity reranked (gamma 0) and grounded."""
    base = PipelineConfig.model_validate({
        "name": "tiny",
        "knowledge": {"enabled": False},
        "recognizer": {"model": models["recognizer"]},
        "rerank": {"model": models["reranker"], "gamma": 0.0, "k": 3},
        "ground": {"itm_model": models["itm"], "segmenter": "region", "threshold": 0.0},
    })
    return with_changes(base, changes) if changes else base
