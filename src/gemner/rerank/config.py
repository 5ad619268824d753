"""Reranker settings. Defaults are the paper's (§3.3, Appendix C); `PRESETS` adds the offline `lite`.

The paper's constants live here once: `PAPER_GAMMA` (the sample filter's eq. 10 threshold) and `PAPER_K`
(candidates per entity). `RerankSettings` holds what both a reranker run (`RerankerConfig`) and the
pipeline's rerank stage (`pipeline.config.RerankStage`) set, so each of those defaults is stated once.
"""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from ..hub import ignore_remote_code_setting

PAPER_GAMMA = 0.2  # §3.3.1: entities with eq. 10 entropy H > gamma go to the reranker
PAPER_K = 5  # §3.3.2: top-5 candidates per entity
PAPER_LORA_RANK = 64
PAPER_MODEL = "llava-hf/llava-1.5-7b-hf"
LITE_MODEL = "smollm2-135m"
DEV_SEED_OFFSET = 1000  # the dev subset of `train reranker` / `eval-reranker` is drawn with seed + this


class RerankSettings(BaseModel):
    """What a reranker run and the pipeline's rerank stage share."""

    model_config = ConfigDict(extra="forbid")

    k: int = Field(PAPER_K, ge=1, description="candidates per entity (paper: top-5)")
    gamma: float = Field(PAPER_GAMMA, ge=0, description="sample-filter threshold on eq. 10 entropy (paper: 0.2)")
    mode: Literal["score", "generate"] = Field(
        "score", description="score: constrained, each candidate's log-probability; generate: free, mapped")


class RerankerConfig(RerankSettings):
    """Everything that defines a reranker run; saved as `reranker.json` next to the adapter."""

    model: str = Field(PAPER_MODEL, description="base model: HF image-text-to-text or causal LM, name or path")
    lora_rank: int = Field(PAPER_LORA_RANK, ge=1, description="paper: LoRA rank 64")
    lora_alpha: int = Field(2 * PAPER_LORA_RANK, ge=1, description="2 x rank, LLaVA's LoRA convention (paper silent)")
    lora_dropout: float = Field(0.05, ge=0, lt=1)
    lr: float = Field(5e-6, gt=0, description="paper: 5e-6")
    epochs: float = Field(3, gt=0, description="paper: 3 epochs; fractions stop early")
    batch_size: int = Field(4, ge=1, description="effective batch of one optimizer step, whatever the processes "
                            "and accumulation (the paper's mini-batch of 4; it names none for the reranker)")
    accumulate: int = Field(1, ge=1, description="gradient accumulation: each process's share of a batch "
                            "runs as this many micro-batches (less memory, same training)")
    warmup_ratio: float = Field(0.03, ge=0, lt=1, description="linear warm-up, then linear decay")
    weight_decay: float = Field(0.0, ge=0)
    max_train: int | None = Field(None, ge=1, description="seeded subset of training entities (None: all)")
    candidate_pool: Literal["schema", "train"] = Field(
        "schema", description="where a training prompt's other candidates are drawn from: every label of the "
        "schema (paper) or the labels the training split's gold entities use, so that the types a model must "
        "tell apart at inference meet in training too (a schema far larger than the data's types)")
    seed: int = 0
    bf16: bool = Field(False, description="bf16 autocast for training (CPU avx512_bf16 / GPU)")
    gradient_checkpointing: bool = Field(False, description="trade compute for memory when training")
    bf16_inference: bool = Field(False, description="bf16 autocast for scoring/generation (faster, ~1e-2 noise)")
    length_norm: Literal["sum", "mean"] = Field(
        "sum", description="candidate score: sum (joint log-prob of the answer) or mean of its token log-probs")
    few_shot: int = Field(0, ge=0, le=3, description="paper Table 7 examples as few-shot turns")
    use_caption: bool = Field(True, description="text-only models: add a Caption line when one is known")
    max_new_tokens: int = Field(16, ge=1, description="generate mode: answer length limit")

    @model_validator(mode="before")
    @classmethod
    def _no_remote_code_switch(cls, data: Any) -> Any:
        # `reranker.json` travels with the weights: it must not decide to run their code
        return ignore_remote_code_setting(data, "a reranker config")


PRESETS: dict[str, RerankerConfig] = {
    "paper": RerankerConfig(),
    # SmolLM2-135M-Instruct, text-only, on CPU: a seeded subset, one epoch, a learning rate suited to a
    # 135M model with LoRA (5e-6 barely moves it in the steps a CPU affords); see README.
    "lite": RerankerConfig(model=LITE_MODEL, lr=2e-4, epochs=1, max_train=2000, bf16=True),
}


def preset(name: str) -> RerankerConfig:
    try:
        return PRESETS[name].model_copy()
    except KeyError:
        raise ValueError(f"unknown reranker preset {name!r}; choose one of {', '.join(PRESETS)}") from None


def with_settings(base: RerankerConfig, **given: object) -> RerankerConfig:
    """`base` with the settings given (None keeps the base's). A new LoRA rank brings alpha = 2 x rank
    unless alpha is given too. A bad value is a `DataError` naming the setting."""
    values = {key: value for key, value in given.items() if value is not None}
    if "lora_rank" in values and "lora_alpha" not in values:
        values["lora_alpha"] = 2 * int(values["lora_rank"])  # type: ignore[call-overload]
    return _validated({**base.model_dump(), **values})


def overrides(**given: object) -> RerankerConfig:
    """A config holding only the settings given (None: not given), for `Reranker.load` to lay over the
    saved ones (it reads only the fields that were set)."""
    return _validated({key: value for key, value in given.items() if value is not None})


def _validated(values: dict[str, object]) -> RerankerConfig:
    from ..data.issues import DataError

    try:
        return RerankerConfig.model_validate(values)
    except ValidationError as err:
        first = err.errors()[0]
        raise DataError(f"invalid reranker setting: {first['loc'][0]}: {first['msg']}") from None
