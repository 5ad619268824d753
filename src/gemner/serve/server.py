"""Run the service with uvicorn: one process, or `workers` processes that each load the pipeline."""

from __future__ import annotations

import copy
import functools
import json
import os
from dataclasses import asdict
from pathlib import Path

from ..pipeline.config import PipelineConfig, load_config
from .limits import ServeSettings

CONFIG_ENV = "GEMNER_SERVE_PIPELINE"  # how worker processes learn what the parent was asked to serve
SETTINGS_ENV = "GEMNER_SERVE_SETTINGS"


def _log_config() -> dict:
    from uvicorn.config import LOGGING_CONFIG

    config = copy.deepcopy(LOGGING_CONFIG)
    config["loggers"]["gemner.serve"] = {"handlers": ["default"], "level": "INFO", "propagate": False}
    return config


def app_from_environment():
    """The app of one worker process (uvicorn's factory when `workers` > 1)."""
    from .app import create_app
    from .service import build_gem

    values = json.loads(os.environ[SETTINGS_ENV])
    trust_remote_code = bool(values.pop("trust_remote_code", False))
    settings = ServeSettings.from_environment(**values)
    return create_app(load_config(os.environ[CONFIG_ENV]), settings,
                      functools.partial(build_gem, trust_remote_code=trust_remote_code))


def serve(config: str | Path, settings: ServeSettings, *, trust_remote_code: bool = False) -> None:
    """Serve the pipeline `config` (a preset, a YAML file or a folder) until interrupted.
    `trust_remote_code` lets the models' own Python code run (only when the person serving asks)."""
    import uvicorn

    from .service import build_gem

    pipeline: PipelineConfig = load_config(config)  # a bad configuration fails here, before binding
    common = {"host": settings.host, "port": settings.port, "log_config": _log_config(),
              "timeout_graceful_shutdown": 5}
    if settings.workers == 1:
        from .app import create_app

        uvicorn.run(create_app(pipeline, settings, functools.partial(build_gem, trust_remote_code=trust_remote_code)),
                    **common)
        return
    os.environ[CONFIG_ENV] = str(config)
    values = {k: v for k, v in asdict(settings).items() if k != "token"}  # workers read the token themselves
    os.environ[SETTINGS_ENV] = json.dumps({**values, "trust_remote_code": trust_remote_code})
    uvicorn.run("gemner.serve.server:app_from_environment", factory=True, workers=settings.workers, **common)
