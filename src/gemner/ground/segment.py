"""Point to box, paper §3.4.3: a point-promptable segmenter turns the traced peak into a mask, then a box.

Three segmenters share one interface, `boxes(image, points, heatmaps) -> [Box | None]`, all the
points of one image at once (the image is encoded once):

* `sam`: `SamModel` (the paper's SEEM role; `facebook/sam-vit-base`, or a lighter checkpoint such as
  SlimSAM) prompted with the point; of its three masks the one with the highest predicted IoU that
  contains the point is kept (SAM's own ranking; a mask that misses its prompt is a failed guess).
* `region`: weight-free colour region growing: the connected pixels whose colour is within
  `tolerance` of a seed colour (the median of a 3x3 window, so one noisy pixel does not decide).
  Seeds are taken inside the traced heat map's hot component and the colour region that best
  overlaps it wins (the peak alone often sits on the object's border). Objects of one colour come
  out whole; a textured one only as far as its dominant colour reaches.
* `heatmap`: weight-free, the connected component of the heat map above `level` x its peak, around
  the peak: no image evidence, only where the tracing put its mass.
* `centre`: no localisation at all, a baseline: the box of half the image side at the image centre, for
  every entity the ITM puts in the image (the `centre-box` ablation of `pipeline.config.ABLATIONS`);
  what a grounder scores when the trace and the segmenter add nothing.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Protocol

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image

from ..data.types import Box

Point = tuple[int, int]


class Segmenter(Protocol):
    name: str

    def boxes(self, image: Image.Image, points: Sequence[Point],
              heatmaps: Sequence[torch.Tensor]) -> list[Box | None]: ...


def mask_to_box(mask: np.ndarray | torch.Tensor) -> Box | None:
    """Bounding box of a (height, width) boolean mask in pixel-edge coordinates; None when empty."""
    mask = mask.cpu().numpy() if isinstance(mask, torch.Tensor) else np.asarray(mask)
    rows = np.flatnonzero(mask.any(axis=1))
    cols = np.flatnonzero(mask.any(axis=0))
    if len(rows) == 0:
        return None
    return Box(float(cols[0]), float(rows[0]), float(cols[-1] + 1), float(rows[-1] + 1))


def connected_component(allowed: torch.Tensor, seed: Point, max_steps: int | None = None) -> torch.Tensor:
    """The 8-connected component of the boolean map `allowed` that holds `seed` (x, y).

    Grown by repeated 3x3 dilation restricted to `allowed` (vectorised; as many steps as the
    component's geodesic radius). An empty mask if the seed itself is not allowed.
    """
    x, y = seed
    start = torch.zeros_like(allowed, dtype=torch.bool)
    start[y, x] = bool(allowed[y, x])
    return _grown(start, allowed, max_steps)


def fill_holes(mask: torch.Tensor) -> torch.Tensor:
    """`mask` with its holes filled: every pixel that cannot reach the image border without crossing it."""
    outside = ~mask
    return ~_grown(_image_border(mask) & outside, outside)


def _image_border(like: torch.Tensor) -> torch.Tensor:
    """A boolean mask of the outermost pixels of an image shaped like `like`."""
    border = torch.zeros_like(like, dtype=torch.bool)
    border[0, :], border[-1, :], border[:, 0], border[:, -1] = True, True, True, True
    return border


def _grown(start: torch.Tensor, allowed: torch.Tensor, max_steps: int | None = None) -> torch.Tensor:
    """The pixels of `allowed` 8-connected to `start` (a boolean map inside `allowed`)."""
    region = start.float()
    allowed_f = allowed.float()
    limit = max_steps or (allowed.shape[0] + allowed.shape[1]) * 2
    for _ in range(limit):
        grown = F.max_pool2d(region[None, None], 3, stride=1, padding=1)[0, 0] * allowed_f
        if torch.equal(grown, region):
            break
        region = grown
    return region.bool()


def _work_scale(size: tuple[int, int], max_side: int) -> float:
    return min(1.0, max_side / max(size))


@dataclass
class RegionGrowingSegmenter:
    """Weight-free: grow a colour region (RGB distance <= tolerance, 0-255 scale) from the traced point.

    With a heat map (`heat_guided`, the default when one is given) the seed is not taken blindly at
    the peak, which often sits on an object's border (the patches that carry its outline score
    highest): seeds are sampled inside the heat map's hot component around the peak, each distinct
    colour region is grown, and the one that best overlaps that component (IoU) wins. Without a heat
    map, the region is grown from the point alone.
    """

    tolerance: float = 40.0
    max_side: int = 320  # large images are grown at this size, the box scaled back
    heat_guided: bool = True
    level: float = 0.5  # the hot component: heat >= level x the peak's heat
    seeds: int = 25  # at most this many seed candidates inside the hot component
    # a region enclosed by one other region is part of it (letters on a sign, a logo's word on its plate),
    # unless the enclosing region is the backdrop: this large a share of the image, or reaching its border
    # (a backdrop with a light gradient splits into several regions of one tolerance, each under that share)
    backdrop_share: float = 0.5
    name: str = "region"

    def boxes(self, image: Image.Image, points: Sequence[Point],
              heatmaps: Sequence[torch.Tensor] = ()) -> list[Box | None]:
        scale = _work_scale(image.size, self.max_side)
        work = image.convert("RGB")
        if scale < 1.0:
            work = work.resize((max(1, round(image.width * scale)), max(1, round(image.height * scale))),
                               Image.BILINEAR)
        pixels = torch.from_numpy(np.asarray(work, dtype=np.float32))
        guided = self.heat_guided and len(heatmaps) == len(points)
        boxes = []
        for k, point in enumerate(points):
            seed = _scaled_point(point, scale, pixels.shape[1], pixels.shape[0])
            if guided:
                hot = _hot_component(heatmaps[k], point, self.level, pixels.shape[:2])
                mask = self._best_region(pixels, seed, hot)
            else:
                mask = self._grow(pixels, seed)
            boxes.append(_scaled(mask_to_box(self._enclosing_object(pixels, mask)), 1.0 / scale))
        return boxes

    def _grow(self, pixels: torch.Tensor, seed: Point) -> torch.Tensor:
        x, y = seed
        window = pixels[max(0, y - 1): y + 2, max(0, x - 1): x + 2].reshape(-1, 3)
        seed_colour = window.median(dim=0).values  # one noisy pixel does not decide
        allowed = (pixels - seed_colour).norm(dim=-1) <= self.tolerance
        allowed[y, x] = True  # the seed always belongs to its own region
        return connected_component(allowed, (x, y))

    def _enclosing_object(self, pixels: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        """`mask`, or the object around it: while most of the ring around the (hole-filled) region is one
        colour region that is not the backdrop (under `backdrop_share` of the image and clear of its border),
        that region with its holes filled is taken instead (a letter -> the logo's plate; the plate -> the
        backdrop, so the plate stays)."""
        filled = fill_holes(mask)
        for _ in range(3):  # a stroke's antialiased edge -> the letter -> the plate
            ring = F.max_pool2d(filled.float()[None, None], 5, stride=1, padding=2)[0, 0].bool() & ~filled
            if not bool(ring.any()):
                return mask
            ys, xs = torch.nonzero(ring, as_tuple=True)
            allowed = (pixels - _dominant_colour(pixels[ys, xs], self.tolerance)).norm(dim=-1) <= self.tolerance
            if float(allowed[ys, xs].float().mean()) < 0.3:
                return mask  # no one colour around it: an object of its own
            outer = fill_holes(_grown(ring & allowed, allowed) | filled)
            if float(outer.float().mean()) >= self.backdrop_share or _touches_border(outer):
                return mask
            mask = filled = outer  # already hole-filled
        return mask

    def _best_region(self, pixels: torch.Tensor, seed: Point, hot: torch.Tensor) -> torch.Tensor:
        """Of the colour regions met inside the hot component, the one with the highest IoU with it (the
        backdrop is not an object: it is taken only when nothing else is met)."""
        best, best_iou = self._grow(pixels, seed), -1.0
        covered = torch.zeros_like(hot)
        for x, y in [seed, *_sample_points(hot, self.seeds)]:
            if covered[y, x]:
                continue  # already inside a grown region: same region again
            region = self._grow(pixels, (x, y))
            covered |= region
            if float(region.float().mean()) >= self.backdrop_share:
                continue
            union = (region | hot).sum()
            iou = float((region & hot).sum() / union) if union > 0 else 0.0
            if iou > best_iou:
                best, best_iou = region, iou
        return best


def _touches_border(mask: torch.Tensor) -> bool:
    return bool((mask & _image_border(mask)).any())


def _dominant_colour(colours: torch.Tensor, tolerance: float) -> torch.Tensor:
    """The colour (N, 3) with the most others within `tolerance` of it: the majority colour of a mixed ring
    (a median of black plate and white ink pixels would be a grey that is neither)."""
    close = (torch.cdist(colours, colours) <= tolerance).sum(dim=1)
    return colours[int(close.argmax())]


def _scaled_point(point: Point, scale: float, width: int, height: int) -> Point:
    return min(width - 1, max(0, int(point[0] * scale))), min(height - 1, max(0, int(point[1] * scale)))


def _hot_component(heatmap: torch.Tensor, point: Point, level: float, shape: tuple[int, int]) -> torch.Tensor:
    """The heat map's component above level x peak around the point, at the working size (height, width)."""
    heatmap = heatmap.float()
    if tuple(heatmap.shape) != tuple(shape):
        scale_x, scale_y = shape[1] / heatmap.shape[1], shape[0] / heatmap.shape[0]
        heatmap = F.interpolate(heatmap[None, None], size=shape, mode="bilinear", align_corners=False)[0, 0]
        point = (min(shape[1] - 1, int(point[0] * scale_x)), min(shape[0] - 1, int(point[1] * scale_y)))
    peak = heatmap[point[1], point[0]]
    if peak <= 0:
        hot = torch.zeros(shape, dtype=torch.bool)
        hot[point[1], point[0]] = True
        return hot
    return connected_component(heatmap >= level * peak, point)


def _sample_points(mask: torch.Tensor, count: int) -> list[Point]:
    """Up to `count` points of the mask on an even grid over its bounding box."""
    ys, xs = torch.nonzero(mask, as_tuple=True)
    if len(xs) == 0:
        return []
    step = max(1, int((len(xs) / count) ** 0.5))
    chosen = [(int(x), int(y)) for x, y in zip(xs.tolist(), ys.tolist(), strict=True)
              if x % step == 0 and y % step == 0]
    return chosen[:: max(1, len(chosen) // count)][:count]


@dataclass
class HeatmapSegmenter:
    """Weight-free: the heat map's connected region above `level` x its peak value, around the peak."""

    level: float = 0.5
    name: str = "heatmap"

    def boxes(self, image: Image.Image, points: Sequence[Point],
              heatmaps: Sequence[torch.Tensor] = ()) -> list[Box | None]:
        if len(heatmaps) != len(points):
            raise ValueError("the heatmap segmenter needs one heat map per point")
        return [self._box(heatmap, point) for heatmap, point in zip(heatmaps, points, strict=True)]

    def _box(self, heatmap: torch.Tensor, point: Point) -> Box | None:
        x, y = point
        peak = heatmap[y, x]
        if peak <= 0:
            return None
        return mask_to_box(connected_component(heatmap >= self.level * peak, point))


@dataclass
class CentreSegmenter:
    """Baseline: whatever the point, the centred box of `fraction` x each image side."""

    fraction: float = 0.5
    name: str = "centre"

    def boxes(self, image: Image.Image, points: Sequence[Point],
              heatmaps: Sequence[torch.Tensor] = ()) -> list[Box | None]:
        return [centre_box(image.width, image.height, self.fraction) for _ in points]


def centre_box(width: int, height: int, fraction: float = 0.5) -> Box:
    """The box of `fraction` x each side, centred in a `width` x `height` image."""
    half_w, half_h = width * fraction / 2, height * fraction / 2
    return Box(width / 2 - half_w, height / 2 - half_h, width / 2 + half_w, height / 2 + half_h)


def _scaled(box: Box | None, factor: float) -> Box | None:
    if box is None or factor == 1.0:
        return box
    return Box(box.x1 * factor, box.y1 * factor, box.x2 * factor, box.y2 * factor)
