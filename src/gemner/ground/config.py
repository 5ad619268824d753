"""Settings of the grounding stage; the defaults are the paper's (§3.4, Appendix C)."""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, Field

PAPER_ITM_MODEL = "Salesforce/blip-itm-base-coco"
PAPER_SAM_MODEL = "facebook/sam-vit-base"
SETTINGS_FILE = "grounder.json"  # written next to a fine-tuned ITM checkpoint (tuned threshold, layer)


class GrounderConfig(BaseModel):
    """How entities are matched to the image, traced and boxed."""

    itm_model: str = Field(PAPER_ITM_MODEL, description="BLIP ITM checkpoint: hub id or local folder")
    segmenter: Literal["sam", "region", "heatmap", "centre"] = Field(
        "sam", description="point to box: sam (paper role), region / heatmap (weight-free), centre (baseline: "
        "the centred box of half the image side)")
    sam_model: str = Field(PAPER_SAM_MODEL, description="SAM checkpoint, preset name, hub id or folder")
    threshold: float = Field(0.5, ge=0.0, le=1.0, description="P_T below this: the entity gets no box")
    trace_layer: int | None = Field(None, description="cross-attention layer traced; None: the middle one")
    category_field: Literal["type", "coarse"] = Field(
        "type", description="which label fills Table 8's <category>: the main (fine) one, as in the paper")
    max_text_length: int = 35
    posts_per_batch: int = Field(8, ge=1, description="posts whose entities share one batched pass")
    device: str = "auto"
    dtype: Literal["float32", "bfloat16", "float16"] = "float32"


class GrounderTrainConfig(BaseModel):
    """Fine-tuning of the ITM head and model (paper: lr 5e-5, 1 epoch; AdamW, linear schedule)."""

    lr: float = 5e-5
    epochs: int = 1
    images_per_batch: int = Field(8, ge=1, description="effective batch: images per optimizer step, each with "
                                  "all its entities, whatever the processes and accumulation (paper: not stated)")
    accumulate: int = Field(1, ge=1, description="gradient accumulation: each process's share of a batch runs "
                            "as this many micro-batches (less memory, same training)")
    save_every_steps: int = Field(100, ge=0, description="write the resumable `last/` state this often (0: at "
                                  "the end and on interrupt only)")
    weight_decay: float = 0.01
    warmup_ratio: float = 0.0
    positive_weight: float = Field(1.0, gt=0, description="loss weight of 'has a box' examples")
    absent_negatives: int = Field(
        0, ge=0, description="0: the paper's pairs only. > 0: per training image, this many drawn entities of "
        "other images asked as 'no box' (from scratch, they make the ITM look at the image, not the name)")
    seed: int = 0
    threads: int | None = None


PRESETS: dict[str, GrounderConfig] = {
    # The paper's roles: BLIP ITM (base, COCO) and a point-promptable segmenter (SAM ViT-B for SEEM).
    "paper": GrounderConfig(),
    # CPU-friendly: SlimSAM-50 (SAM ViT-B pruned to 28M parameters) instead of SAM ViT-B.
    "lite": GrounderConfig(sam_model="nielsr/slimsam-50-uniform"),
    # No segmentation weights at all: colour region growing from the traced point.
    "weight-free": GrounderConfig(segmenter="region"),
}


def preset(name: str, **overrides) -> GrounderConfig:
    if name not in PRESETS:
        raise ValueError(f"unknown grounder preset {name!r}; choose one of {', '.join(PRESETS)}")
    return PRESETS[name].model_copy(update={k: v for k, v in overrides.items() if v is not None})


def torch_dtype(name: str):
    import torch

    return {"float32": torch.float32, "bfloat16": torch.bfloat16, "float16": torch.float16}[name]
