"""Entry point of the `gemner` console script: imports every command module so it registers."""

from __future__ import annotations

from . import (  # noqa: F401  (each module registers its commands)
    baseline_cmd,
    config_cmd,
    data_cmd,
    download_cmd,
    evaluate_cmd,
    export_cmd,
    gazetteer_cmd,
    ground_cmd,
    knowledge_cmd,
    predict_cmd,
    recognize_cmd,
    reproduce_cmd,
    rerank_cmd,
    serve_cmd,
)
from .app import app

__all__ = ["app"]

if __name__ == "__main__":
    app()
