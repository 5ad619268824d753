"""Build a segmenter by name: SAM (`sam.py`) or a weight-free one (`segment.py`).

The factory lives apart from both so that `sam.py` can use the shared mask helpers of `segment.py`
without `segment.py` importing it back.
"""

from __future__ import annotations

import torch

from .sam import SamSegmenter
from .segment import CentreSegmenter, HeatmapSegmenter, RegionGrowingSegmenter, Segmenter

SEGMENTERS = ("sam", "region", "heatmap", "centre")


def build_segmenter(kind: str, sam_model: str = "facebook/sam-vit-base", *,
                    device: str | torch.device = "cpu", dtype: torch.dtype = torch.float32,
                    trust_remote_code: bool = False) -> Segmenter:
    """`kind` is one of `SEGMENTERS`; `sam_model` names the SAM checkpoint (used by `sam` only);
    `trust_remote_code` comes from the person running the command, never from a file."""
    if kind == "region":
        return RegionGrowingSegmenter()
    if kind == "heatmap":
        return HeatmapSegmenter()
    if kind == "centre":
        return CentreSegmenter()
    if kind == "sam":
        return SamSegmenter.from_pretrained(sam_model, device=device, dtype=dtype, trust_remote_code=trust_remote_code)
    raise ValueError(f"unknown segmenter {kind!r}; choose one of {', '.join(SEGMENTERS)}")
