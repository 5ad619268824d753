"""The grounding stage, end to end: ITM relevance -> eq. 11 trace -> peak -> segmenter -> box.

`Grounder.ground` takes a batch of images, each with its (entity, category) queries, and returns
one `Grounding` per query. Per batch: one vision pass for all the images, one text forward and one
backward for all the entities, then the segmenter for the relevant ones (SAM: one image embedding
per image, all its points decoded together).
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import torch
from PIL import Image

from ..data.types import Box
from ..devices import resolve_device
from .config import SETTINGS_FILE, GrounderConfig, torch_dtype
from .itm import EntityImageMatcher, itm_text
from .segment import Segmenter
from .segmenters import build_segmenter
from .tracing import patch_grid, peak_point, resize_to_image


@dataclass(frozen=True)
class Query:
    entity: str
    category: str


@dataclass
class Grounding:
    """The decision for one entity: P_T, and when relevant (P_T >= threshold) the peak and the box."""

    p_true: float
    relevant: bool
    peak: tuple[int, int] | None = None
    box: Box | None = None
    heatmap: torch.Tensor | None = None  # (height, width), kept only when asked for


class Grounder:
    def __init__(self, matcher: EntityImageMatcher, segmenter: Segmenter, config: GrounderConfig):
        self.matcher = matcher
        self.segmenter = segmenter
        self.config = config

    @classmethod
    def from_config(cls, config: GrounderConfig, *, trust_remote_code: bool = False) -> Grounder:
        """Load the ITM model and the segmenter (MissingWeightsError, with a how-to, when absent).
        `trust_remote_code`: let the models' own Python code run (only when the user asked)."""
        config = with_saved_settings(config)
        device = resolve_device(config.device)
        dtype = torch_dtype(config.dtype)
        matcher = EntityImageMatcher.from_pretrained(
            config.itm_model, trace_layer=config.trace_layer, max_text_length=config.max_text_length,
            device=device, dtype=dtype, trust_remote_code=trust_remote_code)
        segmenter = build_segmenter(config.segmenter, config.sam_model, device=device, dtype=dtype,
                                    trust_remote_code=trust_remote_code)
        return cls(matcher, segmenter, config)

    def ground(self, images: Sequence[Image.Image], queries: Sequence[Sequence[Query]],
               keep_heatmaps: bool = False) -> list[list[Grounding]]:
        """One list of groundings per image, in the order of its queries."""
        if len(images) != len(queries):
            raise ValueError(f"{len(images)} images but {len(queries)} query lists")
        texts = [itm_text(q.entity, q.category) for qs in queries for q in qs]
        rows = [k for k, qs in enumerate(queries) for _ in qs]
        results: list[list[Grounding]] = [[] for _ in images]
        if not texts:
            return results
        with torch.no_grad():
            image_embeds = self.matcher.encode_images(self.matcher.pixel_values(images))
        image_index = torch.tensor(rows, device=image_embeds.device)
        matched = self.matcher.match_and_trace(image_embeds, image_index, texts)
        grids = patch_grid(matched.scores)
        points: list[list[tuple[int, int]]] = [[] for _ in images]
        maps: list[list[torch.Tensor]] = [[] for _ in images]
        for row, image_id in enumerate(rows):
            p_true = float(matched.p_true[row])
            grounding = Grounding(p_true, p_true >= self.config.threshold)
            if grounding.relevant:
                heatmap = resize_to_image(grids[row: row + 1], images[image_id].size)[0]
                grounding.peak = peak_point(heatmap)
                points[image_id].append(grounding.peak)
                maps[image_id].append(heatmap)
                if keep_heatmaps:
                    grounding.heatmap = heatmap
            results[image_id].append(grounding)
        self._attach_boxes(images, results, points, maps)
        return results

    def _attach_boxes(self, images, results, points, maps) -> None:
        boxes_many = getattr(self.segmenter, "boxes_many", None)
        if boxes_many is not None:
            per_image = boxes_many(images, points, maps)
        else:
            per_image = [self.segmenter.boxes(image, pts, hm) if pts else []
                         for image, pts, hm in zip(images, points, maps, strict=True)]
        for groundings, boxes in zip(results, per_image, strict=True):
            relevant = iter(boxes)
            for grounding in groundings:
                if grounding.relevant:
                    grounding.box = next(relevant)


def with_saved_settings(config: GrounderConfig) -> GrounderConfig:
    """Take the tuned threshold and trace layer saved with a fine-tuned checkpoint, unless set explicitly."""
    settings_path = Path(config.itm_model) / SETTINGS_FILE
    if not settings_path.is_file():
        return config
    saved = json.loads(settings_path.read_text())
    explicit = config.model_fields_set
    update = {key: saved[key] for key in ("threshold", "trace_layer") if key in saved and key not in explicit}
    return config.model_copy(update=update)
