"""Point to box: mask -> box, the weight-free segmenters, SAM (tiny, random) prompted with points."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from PIL import Image, ImageDraw

from gemner.data.drawing import draw_logo
from gemner.data.types import Box
from gemner.ground.sam import SamSegmenter, best_mask, sam_config
from gemner.ground.segment import (
    HeatmapSegmenter,
    RegionGrowingSegmenter,
    connected_component,
    fill_holes,
    mask_to_box,
)
from gemner.ground.segmenters import build_segmenter


def test_mask_to_box_uses_pixel_edges():
    mask = np.zeros((10, 12), dtype=bool)
    mask[2:5, 3:9] = True
    assert mask_to_box(mask) == Box(3, 2, 9, 5)
    assert mask_to_box(np.zeros((4, 4), dtype=bool)) is None


def test_connected_component_keeps_only_the_seed_region():
    allowed = torch.zeros(8, 8, dtype=torch.bool)
    allowed[1:3, 1:3] = True  # region A
    allowed[5:7, 4:8] = True  # region B, not touching A
    region = connected_component(allowed, (1, 1))
    assert region.sum() == 4 and region[1:3, 1:3].all()
    assert not connected_component(allowed, (0, 0)).any()  # seed outside: empty


def _scene() -> Image.Image:
    image = Image.new("RGB", (120, 90), (150, 150, 150))
    draw = ImageDraw.Draw(image)
    draw.ellipse([10, 20, 39, 49], fill=(220, 40, 40))  # box [10, 20, 40, 50]
    draw.rectangle([70, 10, 109, 29], fill=(40, 80, 220))  # box [70, 10, 110, 30]
    draw.rectangle([75, 15, 80, 20], fill=(255, 255, 255))  # a white mark inside the blue plate
    noise = np.random.default_rng(0).normal(0, 5, (90, 120, 3))
    return Image.fromarray(np.clip(np.asarray(image, dtype=float) + noise, 0, 255).astype(np.uint8))


def test_region_growing_recovers_exact_boxes():
    boxes = RegionGrowingSegmenter().boxes(_scene(), [(25, 35), (100, 25)], [])
    assert boxes[0] == Box(10, 20, 40, 50)
    assert boxes[1] == Box(70, 10, 110, 30)  # the white mark is a hole, not the border


def test_fill_holes_closes_a_ring_but_not_a_notch():
    mask = torch.zeros(9, 9, dtype=torch.bool)
    mask[2:7, 2:7] = True
    mask[4, 4] = False  # a hole
    mask[2, 4] = False  # a notch open to the outside
    filled = fill_holes(mask)
    assert filled[4, 4] and not filled[2, 4] and int(filled.sum()) == 24


def test_a_seed_on_a_letter_boxes_the_whole_sign_not_the_letter_or_the_backdrop():
    image = Image.new("RGB", (128, 128), (150, 150, 150))
    draw_logo(ImageDraw.Draw(image), "ZETA", (20, 40, 99, 69))  # a white plate, dark letters: box [20, 40, 100, 70]
    ink = np.argwhere(np.asarray(image, dtype=int).sum(axis=2) < 200)  # a dark letter pixel
    seed = (int(ink[len(ink) // 2][1]), int(ink[len(ink) // 2][0]))
    segmenter = RegionGrowingSegmenter()
    assert segmenter.boxes(image, [seed], [])[0] == Box(20, 40, 100, 70)
    assert segmenter.boxes(image, [(5, 5)], [])[0] == Box(0, 0, 128, 128)  # nothing but backdrop: kept
    plain = Image.new("RGB", (128, 128), (150, 150, 150))
    ImageDraw.Draw(plain).ellipse([30, 30, 69, 69], fill=(220, 40, 40))
    assert segmenter.boxes(plain, [(50, 50)], [])[0] == Box(30, 30, 70, 70)  # the backdrop around is not taken


def test_a_backdrop_split_by_its_gradient_is_still_not_an_enclosing_object():
    # grey rising by 200 from left to right: one tolerance (40) holds a band of it, under half the image
    ramp = np.linspace(40, 240, 128, dtype=np.float32)
    backdrop = np.broadcast_to(ramp[None, :, None], (128, 128, 3)).astype(np.uint8)
    image = Image.fromarray(np.ascontiguousarray(backdrop))
    ImageDraw.Draw(image).ellipse([50, 40, 81, 71], fill=(245, 140, 20))
    segmenter = RegionGrowingSegmenter()
    band = segmenter._grow(torch.from_numpy(np.asarray(image, dtype=np.float32)), (66, 10))
    assert float(band.float().mean()) < segmenter.backdrop_share  # the band around the circle, alone, is small
    assert segmenter.boxes(image, [(66, 56)], [])[0] == Box(50, 40, 82, 72)


def test_region_growing_on_a_large_image_works_at_reduced_size():
    big = _scene().resize((1200, 900), Image.NEAREST)
    box = RegionGrowingSegmenter(max_side=240).boxes(big, [(250, 350)], [])[0]
    assert box.iou(Box(100, 200, 400, 500)) > 0.9


def test_heat_guided_region_recovers_an_object_when_the_peak_sits_just_outside_it():
    image = _scene()
    heatmap = torch.zeros(90, 120)
    heatmap[18:52, 8:42] = 0.6  # the hot blob covers the red disc (box [10, 20, 40, 50]) ...
    heatmap[19, 9] = 1.0  # ... but its maximum is on the background, at the disc's box corner
    peak = (9, 19)
    point_only = RegionGrowingSegmenter(heat_guided=False).boxes(image, [peak])[0]
    guided = RegionGrowingSegmenter().boxes(image, [peak], [heatmap])[0]
    assert point_only.iou(Box(10, 20, 40, 50)) < 0.2  # grew the grey background instead
    assert guided == Box(10, 20, 40, 50)


def test_heatmap_segmenter_takes_the_component_around_the_peak():
    heatmap = torch.zeros(20, 30)
    heatmap[5:10, 4:12] = 0.8
    heatmap[7, 6] = 1.0  # the peak
    heatmap[15:18, 20:25] = 0.9  # a separate hot region: not part of the box
    box = HeatmapSegmenter(level=0.5).boxes(Image.new("RGB", (30, 20)), [(6, 7)], [heatmap])[0]
    assert box == Box(4, 5, 12, 10)
    with pytest.raises(ValueError, match="one heat map per point"):
        HeatmapSegmenter().boxes(Image.new("RGB", (30, 20)), [(6, 7)], [])


def test_best_mask_prefers_masks_holding_the_point():
    masks = torch.zeros(3, 10, 10, dtype=torch.bool)
    masks[0, 0:3, 0:3] = True  # highest predicted IoU, but misses the point
    masks[1, 4:9, 4:9] = True
    masks[2, 5:7, 5:7] = True
    chosen = best_mask(masks, torch.tensor([0.99, 0.7, 0.8]), (6, 6))
    assert torch.equal(chosen, masks[2])
    chosen = best_mask(masks, torch.tensor([0.99, 0.7, 0.8]), (9, 0))  # held by none: best overall
    assert torch.equal(chosen, masks[0])


@pytest.fixture(scope="module")
def tiny_sam():
    from transformers import SamConfig, SamModel

    from gemner.ground.processors import sam_image_processor

    torch.manual_seed(0)
    config = SamConfig(
        vision_config={"hidden_size": 32, "num_hidden_layers": 2, "num_attention_heads": 2, "mlp_dim": 64,
                       "image_size": 256, "output_channels": 32, "global_attn_indexes": [1], "window_size": 4,
                       "num_pos_feats": 16},
        prompt_encoder_config={"hidden_size": 32, "image_size": 256, "image_embedding_size": 16},
        mask_decoder_config={"hidden_size": 32, "num_hidden_layers": 2, "num_attention_heads": 2,
                             "mlp_dim": 64, "iou_head_hidden_dim": 32},
    )
    processor = sam_image_processor()(size={"longest_edge": 256}, pad_size={"height": 256, "width": 256})
    return SamSegmenter(SamModel(config), processor)


def test_sam_segmenter_returns_one_box_per_point_inside_the_image(tiny_sam):
    image = _scene()
    boxes = tiny_sam.boxes(image, [(25, 35), (100, 25), (5, 80)])
    assert len(boxes) == 3
    for box in boxes:
        if box is not None:
            assert 0 <= box.x1 < box.x2 <= image.width and 0 <= box.y1 < box.y2 <= image.height


def test_sam_batch_over_images_matches_one_at_a_time(tiny_sam):
    first, second = _scene(), _scene().transpose(Image.FLIP_LEFT_RIGHT)
    together = tiny_sam.boxes_many([first, second, first], [[(25, 35)], [(30, 30), (90, 60)], []])
    assert together[0] == tiny_sam.boxes(first, [(25, 35)])
    assert together[1] == tiny_sam.boxes(second, [(30, 30), (90, 60)])
    assert together[2] == []


def test_slimsam_configs_build_and_are_lighter_than_sam_vit_b():
    from transformers import SamModel

    with torch.device("meta"):  # shapes only: no memory, no weights
        sizes = {name: sum(p.numel() for p in SamModel(sam_config(name)).parameters())
                 for name in ("sam-vit-base", "slimsam-50", "slimsam-77")}
    assert 90e6 < sizes["sam-vit-base"] < 100e6
    assert sizes["slimsam-77"] < sizes["slimsam-50"] < sizes["sam-vit-base"] / 3


def test_build_segmenter_names():
    assert build_segmenter("region").name == "region"
    assert build_segmenter("heatmap").name == "heatmap"
    with pytest.raises(ValueError, match="unknown segmenter"):
        build_segmenter("seem")
