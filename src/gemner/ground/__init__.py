"""Implicit visual grounding, paper §3.4: ITM relevance (Table 8), eq. 11 tracing, point to box.

* `itm`: BLIP's image-text-matching head on "<entity> is belong <category>", P_T, shared image encoding
* `tracing`: eq. 11, gradient-weighted cross-attention, the patch grid, the peak
* `segment`, `sam`, `segmenters`: point to box (SAM / SlimSAM, or weight-free region growing / heat-map component)
* `grounder`: the stage end to end; `batch`: a predictions JSONL filled in, resumable
* `train`: ITM fine-tuning on the benchmark; `synthetic`, `tiny`, `proof`: the proof on synthetic scenes
"""

from .config import PRESETS, GrounderConfig, GrounderTrainConfig, preset
from .grounder import Grounder, Grounding, Query
from .itm import EntityImageMatcher, itm_text
from .tracing import eq11_scores, patch_grid, peak_point, resize_to_image

__all__ = [
    "PRESETS", "EntityImageMatcher", "Grounder", "GrounderConfig", "GrounderTrainConfig", "Grounding", "Query",
    "eq11_scores", "itm_text", "patch_grid", "peak_point", "preset", "resize_to_image",
]
