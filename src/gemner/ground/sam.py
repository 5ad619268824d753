"""`SamModel` as the point-promptable segmenter (the paper uses SEEM; SAM plays the same role).

One image embedding per image, all of its points decoded in one call (SAM's `point_batch`).
Mask choice: of the three masks SAM returns per point, the one with the highest predicted IoU
among those that contain the prompt point; if none contains it, the highest predicted IoU.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from PIL import Image

from ..data.types import Box
from .segment import Point, mask_to_box

SAM_PRESETS: dict[str, str] = {
    "sam-vit-base": "facebook/sam-vit-base",  # the paper-role default: SAM ViT-B, 94M parameters
    "slimsam-50": "nielsr/slimsam-50-uniform",  # CPU-friendly: SlimSAM, ViT-B pruned to 384 wide, 28M
    "slimsam-77": "nielsr/slimsam-77-uniform",  # lighter still: 168 wide
}
# The vision widths of the SlimSAM checkpoints (their config.json); everything else is SAM ViT-B's.
SAM_VISION_OVERRIDES: dict[str, dict[str, int]] = {
    "facebook/sam-vit-base": {},
    "nielsr/slimsam-50-uniform": {"hidden_size": 384, "mlp_dim": 1536},
    "nielsr/slimsam-77-uniform": {"hidden_size": 168, "mlp_dim": 696},
}


def sam_config(name: str):
    """The `SamConfig` of a preset, built locally (no download): for shapes, timing and tests."""
    from transformers import SamConfig

    hub_id = SAM_PRESETS.get(name, name)
    if hub_id not in SAM_VISION_OVERRIDES:
        raise ValueError(f"no local config for {name!r}; known: {', '.join(SAM_VISION_OVERRIDES)}")
    return SamConfig(vision_config=SAM_VISION_OVERRIDES[hub_id])


class SamSegmenter:
    name = "sam"

    def __init__(self, model, image_processor, *, device: str | torch.device = "cpu",
                 dtype: torch.dtype = torch.float32):
        self.model = model.to(device=device, dtype=dtype).eval()
        self.image_processor = image_processor
        self.device = torch.device(device)
        self.dtype = dtype

    @classmethod
    def from_pretrained(cls, name: str, *, trust_remote_code: bool = False, **kwargs) -> SamSegmenter:
        """Load a SAM checkpoint (a preset name, hub id or path); MissingWeightsError when absent."""
        from transformers import SamModel

        from ..hub import resolve
        from .processors import sam_image_processor

        pretrained = resolve(SAM_PRESETS.get(name, name), trust_remote_code=trust_remote_code)
        return cls(pretrained.load(SamModel), pretrained.load(sam_image_processor()), **kwargs)

    @torch.no_grad()
    def embed(self, images: Sequence[Image.Image]) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """(embeddings, original_sizes, reshaped_sizes) for a batch of images, sizes as (height, width)."""
        inputs = self.image_processor(images=[image.convert("RGB") for image in images], return_tensors="pt")
        pixels = inputs["pixel_values"].to(self.device, self.dtype)
        embeddings = self.model.get_image_embeddings(pixels)
        return embeddings, inputs["original_sizes"], inputs["reshaped_input_sizes"]

    @torch.no_grad()
    def boxes_from_embedding(self, embedding: torch.Tensor, original_size: torch.Tensor,
                             reshaped_size: torch.Tensor, points: Sequence[Point]) -> list[Box | None]:
        """All points of one image through the prompt encoder and mask decoder in one call."""
        if not points:
            return []
        height, width = (int(v) for v in original_size)
        scale = torch.tensor([float(reshaped_size[1]) / width, float(reshaped_size[0]) / height])
        coords = torch.tensor([[x + 0.5, y + 0.5] for x, y in points]) * scale  # pixel centres
        out = self.model(image_embeddings=embedding[None],
                         input_points=coords[None, :, None, :].to(self.device, self.dtype),
                         multimask_output=True)
        masks = self.image_processor.post_process_masks(
            out.pred_masks.float().cpu(), original_size[None], reshaped_size[None])[0]  # (points, 3, H, W)
        return [mask_to_box(best_mask(masks[k], out.iou_scores[0, k].float().cpu(), point))
                for k, point in enumerate(points)]

    def boxes(self, image: Image.Image, points: Sequence[Point],
              heatmaps: Sequence[torch.Tensor] = ()) -> list[Box | None]:
        return self.boxes_many([image], [points])[0]

    def boxes_many(self, images: Sequence[Image.Image], points: Sequence[Sequence[Point]],
                   heatmaps: Sequence[Sequence[torch.Tensor]] = ()) -> list[list[Box | None]]:
        """Several images: one batched image-encoder pass over those with points, then one decode each."""
        wanted = [k for k, pts in enumerate(points) if pts]
        result: list[list[Box | None]] = [[] for _ in images]
        if not wanted:
            return result
        embeddings, original, reshaped = self.embed([images[k] for k in wanted])
        for j, k in enumerate(wanted):
            result[k] = self.boxes_from_embedding(embeddings[j], original[j], reshaped[j], points[k])
        return result


def best_mask(masks: torch.Tensor, predicted_iou: torch.Tensor, point: Point) -> torch.Tensor:
    """The highest-predicted-IoU mask among those that contain the point (else the highest overall)."""
    x, y = point
    contains = masks[:, y, x].bool()
    ranked = predicted_iou.masked_fill(~contains, float("-inf")) if contains.any() else predicted_iou
    return masks[int(torch.argmax(ranked))]
