"""One YAML file configures the whole GEM pipeline: every model name/path and every hyperparameter.

Stages run in the paper's order: knowledge (§3.2.1) -> recogniser (§3.2) -> sample filter and
reranker (§3.3) -> grounder (§3.4). Each stage can be switched off; the paper's ablations map onto
switches (see `ABLATIONS`). Presets live in `presets/<name>.yaml`; `gemner config show` prints one.
"""

from __future__ import annotations

from importlib import resources
from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field

from ..data.issues import DataError
from ..ground.config import GrounderConfig
from ..paths import models_dir

PRESET_NAMES = ("lite", "lite-gmner", "paper")


class _Section(BaseModel):
    model_config = ConfigDict(extra="forbid")


class LLMSettings(_Section):
    backend: Literal["local", "openai"] = "local"
    model: str = "smollm2-135m"
    max_new_tokens: int = 48
    dtype: Literal["float32", "bfloat16", "float16"] = "float32"
    batch_size: int = 16
    base_url: str = "https://api.openai.com/v1"
    api_key_env: str = Field("OPENAI_API_KEY", description="name of the variable holding the key (never the key)")


class KnowledgeStage(_Section):
    """Auxiliary knowledge appended after `<SEP>`: gazetteer hints and/or an LLM explanation."""

    enabled: bool = True
    file: str | None = Field(None, description="knowledge JSONL by post id, used when it has the post")
    gazetteer: str | None = Field(None, description="dataset whose train annotations give hints (deviation)")
    llm: LLMSettings | None = Field(None, description="Table 6 explanation by an LLM (paper: ChatGPT)")
    captioner: str | None = Field(None, description="image-to-text model for the caption (paper: BLIP-2)")
    cache: str | None = Field(None, description="SQLite answer cache (default: ~/.cache/gemner/knowledge.sqlite)")


class RecognizerStage(_Section):
    model: str = Field(..., description="recogniser checkpoint folder (`gemner train recognizer`)")
    batch_size: int = 32
    device: str = "cpu"


class RerankStage(_Section):
    enabled: bool = True
    model: str | None = Field(None, description="reranker folder (`gemner train reranker`)")
    sample_filter: bool = Field(True, description="off: rerank every entity (the paper's w/o-SF)")
    gamma: float = Field(0.2, description="eq. 10 entropy threshold of the sample filter")
    k: int = Field(5, description="candidates per entity (top-K)")
    mode: Literal["score", "generate"] = "score"
    device: str | None = None


class GroundStage(GrounderConfig):
    model_config = ConfigDict(extra="forbid")
    enabled: bool = True


class PipelineConfig(_Section):
    name: str = "custom"
    knowledge: KnowledgeStage = Field(default_factory=KnowledgeStage)
    recognizer: RecognizerStage
    rerank: RerankStage = Field(default_factory=RerankStage)
    ground: GroundStage = Field(default_factory=GroundStage)

    def to_yaml(self) -> str:
        return yaml.safe_dump(self.model_dump(mode="json"), sort_keys=False, allow_unicode=True)


# The paper's ablations (Fig. 3) as edits of a configuration. w/o-MGP and w/o-MGA are properties of
# the recogniser checkpoint (`gemner train recognizer --no-mgp / --no-mga`), so they name one.
ABLATIONS: dict[str, dict[str, Any]] = {
    "w/o-KA": {"knowledge": {"enabled": False}},
    "w/o-SF": {"rerank": {"sample_filter": False}},
    "w/o-CR": {"rerank": {"enabled": False}},
    "w/o-grounding": {"ground": {"enabled": False}},
}


def _merge(base: dict[str, Any], update: dict[str, Any]) -> dict[str, Any]:
    merged = dict(base)
    for key, value in update.items():
        merged[key] = _merge(merged[key], value) if isinstance(value, dict) and isinstance(merged.get(key), dict) \
            else value
    return merged


def with_changes(config: PipelineConfig, changes: dict[str, Any]) -> PipelineConfig:
    return PipelineConfig.model_validate(_merge(config.model_dump(), changes))


def _expand(value: str | None) -> str | None:
    """`models:NAME` -> the shipped model folder; other strings unchanged (names, paths)."""
    if value and value.startswith("models:"):
        return str(models_dir() / value.removeprefix("models:"))
    return value


def _resolve_paths(config: PipelineConfig) -> PipelineConfig:
    return config.model_copy(update={
        "recognizer": config.recognizer.model_copy(update={"model": _expand(config.recognizer.model)}),
        "rerank": config.rerank.model_copy(update={"model": _expand(config.rerank.model)}),
        "ground": config.ground.model_copy(update={"itm_model": _expand(config.ground.itm_model)}),
    })


def preset_text(name: str) -> str:
    if name not in PRESET_NAMES:
        raise DataError(f"unknown pipeline preset {name!r}; choose one of {', '.join(PRESET_NAMES)} or a YAML file")
    return resources.files("gemner.pipeline").joinpath("presets", f"{name}.yaml").read_text(encoding="utf-8")


def parse_config(text: str, where: str) -> PipelineConfig:
    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError as err:
        raise DataError(f"{where}: not valid YAML ({err})") from None
    if not isinstance(data, dict):
        raise DataError(f"{where}: a pipeline configuration is a YAML mapping")
    try:
        return PipelineConfig.model_validate(data)
    except ValueError as err:  # pydantic's ValidationError names every bad field
        raise DataError(f"{where}: {err}") from None


def load_config(name_or_path: str | Path) -> PipelineConfig:
    """A preset name (`lite`, `paper`), a YAML file, or a folder holding `gemner.yaml`."""
    path = Path(name_or_path)
    if path.is_dir():
        path = path / "gemner.yaml"
    if path.is_file():
        config = parse_config(path.read_text(encoding="utf-8"), str(path))
    else:
        config = parse_config(preset_text(str(name_or_path)), f"preset {name_or_path}")
    return _resolve_paths(config)
