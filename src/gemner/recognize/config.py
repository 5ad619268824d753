"""Recogniser configuration: defaults are the paper's (Appendix C); deviations are named options."""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

Head = Literal["crf", "softmax"]


class RecognizerConfig(BaseModel):
    """Model and training settings of the multi-granularity recogniser (paper §3.2, Appendix C)."""

    model_config = ConfigDict(extra="forbid")

    # --- model (§3.2) ---
    encoder: str = Field("bert-base-cased", description="HF encoder: hub id, local path or gemner alias")
    max_length: int = Field(256, description="subword budget of `text <SEP> knowledge` (paper: 256)")
    head: Head = Field("crf", description="crf (paper) | softmax: per-word cross-entropy baseline")
    mgp: bool = Field(True, description="multi-granularity prediction: coarse + fine paths (eqs. 6-8)")
    mga: bool = Field(True, description="multi-granularity augmentation: learnable M (eq. 9)")
    alpha: float = Field(0.1, description="eq. 8 weight of the coarse loss")
    beta: float = Field(0.1, description="eq. 9 weight of the coarse-to-fine term")
    mga_norm: Literal["column", "row"] = Field(
        "column", description="how M's co-occurrence counts are normalised (see equations.py)")
    dropout: float = Field(0.1, description="dropout on word representations before the heads")
    word_shape_dim: int = Field(
        0, description="0: off (paper). > 0: an embedding of each word's shape (case, digits, symbols) "
        "joined to its representation; gives back the letter case an uncased encoder (MiniLM) drops")
    topk: int = Field(10, description="categories written to `scores.topk` (at least 10, or all)")
    span_pooling: Literal["first-subword", "all-subwords"] = Field(
        "first-subword", description="eq. 10 entity pooling: words' first subwords (as trained) or all")

    # --- encoder adaptation ---
    lora_rank: int = Field(0, description="0: train the full encoder; > 0: LoRA adapters of this rank")
    lora_alpha: int | None = Field(None, description="LoRA scaling numerator (default 2 * rank)")
    lora_dropout: float = 0.05
    lora_targets: str | list[str] = Field("all-linear", description="peft target_modules")

    # --- training (Appendix C: AdamW, linear schedule, lr 5e-6, batch 4, 10 epochs) ---
    lr: float = 5e-6
    head_lr: float | None = Field(
        None, description="separate lr for heads, CRFs and M (None: same as lr, as in the paper)")
    weight_decay: float = 0.01
    warmup_ratio: float = 0.0
    batch_size: int = Field(4, description="effective batch of one optimizer step (paper: 4), whatever "
                            "the processes and accumulation")
    accumulate: int = Field(1, ge=1, description="gradient accumulation: each process's share of a batch "
                            "runs as this many micro-batches (less memory, same training)")
    eval_batch_size: int = 32
    epochs: int = 10
    grad_clip: float | None = 1.0
    seed: int = 42
    bf16: bool = Field(False, description="bf16 autocast for the encoder (CRF stays fp32)")
    length_buckets: bool = Field(False, description="batch posts of similar length (less padding)")
    save_every_steps: int = Field(200, description="write the resumable `last/` state this often")

    # --- distillation (not in the paper; `distill`) ---
    teachers: list[str] = Field(default_factory=list, description="recogniser checkpoints whose averaged "
                                "fine-tag distributions the model is also trained on (none: plain training)")
    distill_weight: float = Field(0.5, ge=0.0, le=1.0, description="with teachers: the weight of their "
                                  "distributions against the gold tags' (fine path)")

    def describe(self) -> str:
        return ", ".join(f"{k}={v}" for k, v in self.model_dump().items())


PRESETS: dict[str, RecognizerConfig] = {
    # Appendix C, for BERT/RoBERTa-size encoders.
    "paper": RecognizerConfig(),
    # all-MiniLM-L6-v2 on CPU. Provisional: the small encoder needs a far larger lr than BERT-base
    # at 5e-6, the randomly initialised CRF transitions and M need more still, and bf16 autocast and
    # length buckets make an epoch ~1.6x and ~1.3x cheaper on this CPU. Tuned on dev by the lead.
    "lite": RecognizerConfig(
        encoder="minilm", lr=1.5e-4, head_lr=1.5e-3, batch_size=16, epochs=12, warmup_ratio=0.06,
        bf16=True, length_buckets=True, word_shape_dim=16,
    ),
    # all-mpnet-base-v2 (110M, `gemner download base`) on CPU: the lite recipe with the usual fine-tuning lr of a
    # base-size encoder and half the epochs (each costs ~4.3x lite's); not tuned further (docs/results.md).
    "base": RecognizerConfig(
        encoder="mpnet", lr=5e-5, head_lr=1.5e-3, batch_size=16, epochs=6, warmup_ratio=0.06,
        bf16=True, length_buckets=True, word_shape_dim=16,
    ),
}


def preset(name: str, **overrides: object) -> RecognizerConfig:
    """A preset with some fields replaced (None values are ignored, so CLI defaults pass through)."""
    if name not in PRESETS:
        raise ValueError(f"unknown recogniser preset {name!r}; choose one of {', '.join(PRESETS)}")
    base = PRESETS[name].model_dump()
    base.update({k: v for k, v in overrides.items() if v is not None})
    return RecognizerConfig(**base)


def variant_name(*, no_mgp: bool = False, no_mga: bool = False, head: str | None = None,
                 lora_rank: int | None = None) -> str:
    """The part of a run's default folder name that tells an ablation apart (`softmax-nomgp`, `lora16`, ...)."""
    parts = [head if head and head != "crf" else "", "nomgp" if no_mgp else "", "nomga" if no_mga else "",
             f"lora{lora_rank}" if lora_rank else ""]
    return "-".join(p for p in parts if p)
