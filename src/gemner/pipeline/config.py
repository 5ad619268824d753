"""One YAML file configures the whole GEM pipeline: every model name/path and every hyperparameter.

Stages run in the paper's order: knowledge (§3.2.1) -> recogniser (§3.2) -> sample filter and
reranker (§3.3) -> grounder (§3.4). Each stage can be switched off; the paper's ablations map onto
switches (see `ABLATIONS`). Presets live in `presets/<name>.yaml`; `gemner config show` prints one.
"""

from __future__ import annotations

from collections.abc import Iterable
from importlib import resources
from pathlib import Path
from typing import Annotated, Any, Literal

import yaml
from pydantic import AfterValidator, BaseModel, ConfigDict, Field

from ..data.issues import DataError
from ..devices import DEVICE_NAMES, check_device_name, resolve_device
from ..ground.config import GrounderConfig
from ..knowledge.builder import LLMSettings
from ..paths import expand_model_name
from ..rerank.config import RerankSettings
from .preset_names import PRESET_LIST, PRESET_NAMES

# A stage's device: checked by name when the configuration is read, resolved when the pipeline loads.
Device = Annotated[str, AfterValidator(check_device_name), Field(description=DEVICE_NAMES)]


class _Section(BaseModel):
    model_config = ConfigDict(extra="forbid")


class KnowledgeStage(_Section):
    """Auxiliary knowledge appended after `<SEP>`: gazetteer hints and/or an LLM explanation."""

    enabled: bool = True
    file: str | None = Field(None, description="knowledge JSONL by post id, used when it has the post")
    gazetteer: str | None = Field(None, description="dataset whose train annotations give hints (deviation)")
    llm: LLMSettings | None = Field(None, description="Table 6 explanation by an LLM (paper: ChatGPT)")
    captioner: str | None = Field(None, description="image-to-text model for the caption (paper: BLIP-2)")
    cache: str | None = Field(None, description="SQLite answer cache shared with `gemner knowledge build` "
                              "(default: $GEMNER_KNOWLEDGE_CACHE or ~/.cache/gemner/knowledge.sqlite)")


class RecognizerStage(_Section):
    model: str = Field(..., description="recogniser checkpoint folder (`gemner train recognizer`)")
    batch_size: int = 32
    device: Device = "auto"
    dtype: Literal["auto", "float32", "bfloat16"] = Field(
        "auto", description="the encoder's inference dtype; auto: bfloat16 where the hardware multiplies it "
        "natively (avx512_bf16 / AMX CPUs, CUDA GPUs), else float32; see docs/benchmarks-speed.md")


class RerankStage(RerankSettings):
    """k, gamma and mode with the reranker's own defaults (`rerank.config.RerankSettings`)."""

    enabled: bool = True
    model: str | None = Field(None, description="reranker folder (`gemner train reranker`)")
    sample_filter: bool = Field(True, description="off: rerank every entity (the paper's w/o-SF)")
    device: Device | None = "auto"  # None: auto (older files)


class GroundStage(GrounderConfig):
    model_config = ConfigDict(extra="forbid")
    enabled: bool = True
    device: Device = "auto"


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
    # Not one of the paper's: a baseline box in place of trace + segmenter (`ground.segment.CentreSegmenter`),
    # so that a grounded EEG can be read against what no localisation scores.
    "centre-box": {"ground": {"segmenter": "centre"}},
}


# `gemner predict`'s switches, each the paper ablation it runs.
SWITCH_ABLATIONS: dict[str, str] = {
    "no-knowledge": "w/o-KA",
    "no-filter": "w/o-SF",
    "no-rerank": "w/o-CR",
    "no-ground": "w/o-grounding",
    "centre-box": "centre-box",
}


def apply_ablations(config: PipelineConfig, names: Iterable[str]) -> PipelineConfig:
    """`config` with the named ablations (keys of `ABLATIONS`) applied together; order does not matter."""
    changes: dict[str, Any] = {}
    for name in names:
        if name not in ABLATIONS:
            raise ValueError(f"unknown ablation {name!r}; choose from {', '.join(ABLATIONS)}")
        changes = _merge(changes, ABLATIONS[name])
    return with_changes(config, changes) if changes else config


def _merge(base: dict[str, Any], update: dict[str, Any]) -> dict[str, Any]:
    merged = dict(base)
    for key, value in update.items():
        merged[key] = _merge(merged[key], value) if isinstance(value, dict) and isinstance(merged.get(key), dict) \
            else value
    return merged


def with_changes(config: PipelineConfig, changes: dict[str, Any]) -> PipelineConfig:
    return PipelineConfig.model_validate(_merge(config.model_dump(), changes))


def with_device(config: PipelineConfig, device: str | None = "auto") -> PipelineConfig:
    """`config` with every stage on `device`; `auto` (or None) keeps each stage's own setting (whose
    own `auto` is resolved when the pipeline loads)."""
    if device is None or check_device_name(device) == "auto":
        return config
    return with_changes(config, {stage: {"device": device} for stage in ("recognizer", "rerank", "ground")})


def resolve_devices(config: PipelineConfig) -> PipelineConfig:
    """`config` with each stage's device resolved (`gemner.devices.resolve_device`: `auto` becomes
    `cuda` or `cpu`); a device this machine cannot use raises `DeviceError` before any model loads."""
    return config.model_copy(update={
        stage: getattr(config, stage).model_copy(update={"device": resolve_device(getattr(config, stage).device)})
        for stage in ("recognizer", "rerank", "ground")
    })


def _expand(value: str | None) -> str | None:
    """`models:NAME` -> the shipped model folder; other strings unchanged (names, paths)."""
    return expand_model_name(value) if value else value


def _beside(value: str | None, folder: Path | None) -> str | None:
    """A relative path that exists beside the YAML file, made absolute: a pipeline folder whose
    `gemner.yaml` names `recognizer/` works wherever the folder is moved. Other values (hub ids,
    paths from the working directory, absolute paths) are kept."""
    if not value or folder is None or Path(value).is_absolute() or not (folder / value).exists():
        return value
    return str((folder / value).resolve())


def _resolve_paths(config: PipelineConfig, folder: Path | None = None) -> PipelineConfig:
    """`models:NAME` expanded; relative paths found beside the YAML (in `folder`) made absolute."""
    def path(value: str | None) -> str | None:
        return _beside(_expand(value), folder)

    return config.model_copy(update={
        "knowledge": config.knowledge.model_copy(update={"file": path(config.knowledge.file),
                                                         "captioner": path(config.knowledge.captioner)}),
        "recognizer": config.recognizer.model_copy(update={"model": path(config.recognizer.model)}),
        "rerank": config.rerank.model_copy(update={"model": path(config.rerank.model)}),
        "ground": config.ground.model_copy(update={"itm_model": path(config.ground.itm_model),
                                                   "sam_model": path(config.ground.sam_model)}),
    })


def preset_text(name: str) -> str:
    if name not in PRESET_NAMES:
        raise DataError(f"unknown pipeline preset {name!r}; choose one of {PRESET_LIST} or a YAML file")
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
    """A preset name (`lite`, `paper`), a YAML file, or a folder holding `gemner.yaml`. In a file, a
    relative path that exists beside it is read from there (a pipeline folder can be moved)."""
    path = Path(name_or_path)
    if path.is_dir():
        path = path / "gemner.yaml"
    if path.is_file():
        return _resolve_paths(parse_config(path.read_text(encoding="utf-8"), str(path)), path.parent)
    return _resolve_paths(parse_config(preset_text(str(name_or_path)), f"preset {name_or_path}"))


def predict_config(config: str | Path | None = None, *, recognizer: str | Path | None = None,
                   knowledge: str | Path | None = None, ablations: Iterable[str] = (),
                   device: str | None = "auto") -> PipelineConfig:
    """The configuration `gemner predict` runs: a preset or YAML (default `lite`) with the recogniser and
    knowledge file given laid over it, then the ablations, on `device` (`with_device`). A recogniser
    without a config runs alone (its knowledge file, if any; no rerank, no grounding): how
    `gemner train recognizer` output is scored."""
    if recognizer is not None and config is None:
        base = PipelineConfig(name="recognizer", recognizer=RecognizerStage(model=str(recognizer)),
                              rerank=RerankStage(enabled=False), ground=GroundStage(enabled=False))
    else:
        base = load_config(config or "lite")
    changes: dict[str, Any] = {}
    if recognizer is not None:
        changes["recognizer"] = {"model": str(recognizer)}
    if knowledge is not None:
        changes["knowledge"] = {"file": str(knowledge)}
    return with_device(apply_ablations(with_changes(base, changes) if changes else base, ablations), device)


def model_availability(config: PipelineConfig) -> dict[str, tuple[str, bool]]:
    """Each model the configuration names, by role: (name or path, whether this machine has it)."""
    from ..hub import is_available

    models = {"recognizer": config.recognizer.model, "reranker": config.rerank.model,
              "ITM (grounding)": config.ground.itm_model, "segmenter": config.ground.sam_model,
              "LLM": config.knowledge.llm.model if config.knowledge.llm else None,
              "captioner": config.knowledge.captioner}
    return {role: (model, Path(model).exists() or is_available(model)) for role, model in models.items() if model}
