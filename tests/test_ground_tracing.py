"""Eq. 11 against hand-computed values; the shared-image cross-attention against stock BLIP."""

from __future__ import annotations

import pytest
import torch

from gemner.ground.itm import EntityImageMatcher, RowLayout, itm_text
from gemner.ground.tiny import TinyItmSpec, build_tiny_itm
from gemner.ground.tracing import (
    CrossAttentionRecorder,
    cross_attention_module,
    eq11_scores,
    patch_grid,
    peak_point,
    resize_to_image,
)


def test_eq11_by_hand():
    # one text, H = 2 heads, S = 2 tokens, 3 image positions
    attention = torch.tensor([[[[0.2, 0.3, 0.5],
                                [0.6, 0.1, 0.3]],
                               [[0.1, 0.8, 0.1],
                                [0.3, 0.3, 0.4]]]])
    gradient = torch.tensor([[[[1.0, -2.0, 0.5],
                               [-1.0, 3.0, 0.0]],
                              [[2.0, 1.0, -1.0],
                               [0.5, -0.5, 2.0]]]])
    # s_i = 1/H sum_j sum_h relu(g) * A
    # i=0: h0: 0.2*1 + 0.6*0 = 0.2 ; h1: 0.1*2 + 0.3*0.5 = 0.35  -> 0.55 / 2 = 0.275
    # i=1: h0: 0.3*0 + 0.1*3 = 0.3 ; h1: 0.8*1 + 0.3*0 = 0.8     -> 1.1 / 2 = 0.55
    # i=2: h0: 0.5*0.5 + 0.3*0 = 0.25 ; h1: 0.1*0 + 0.4*2 = 0.8  -> 1.05 / 2 = 0.525
    expected = torch.tensor([[0.275, 0.55, 0.525]])
    torch.testing.assert_close(eq11_scores(attention, gradient), expected)


def test_eq11_token_mask_drops_padding_rows():
    attention = torch.ones(1, 1, 2, 2) * 0.5
    gradient = torch.tensor([[[[1.0, 2.0], [10.0, 10.0]]]])
    masked = eq11_scores(attention, gradient, torch.tensor([[1, 0]]))
    torch.testing.assert_close(masked, torch.tensor([[0.5, 1.0]]))


def test_eq11_rejects_mismatched_shapes():
    with pytest.raises(ValueError, match="batch, heads, tokens, positions"):
        eq11_scores(torch.ones(1, 2, 3, 4), torch.ones(1, 2, 3, 5))


def test_grid_drops_cls_and_peak_is_upsampled_maximum():
    scores = torch.zeros(1, 1 + 16)
    scores[0, 0] = 100.0  # [CLS]: must be ignored
    scores[0, 1 + 2 * 4 + 3] = 1.0  # patch row 2, col 3 of a 4x4 grid
    grid = patch_grid(scores)
    assert grid.shape == (1, 4, 4) and grid[0, 2, 3] == 1.0
    heatmap = resize_to_image(grid, (40, 20))[0]  # width 40, height 20
    assert heatmap.shape == (20, 40)
    x, y = peak_point(heatmap)
    # the centre of patch (row 2, col 3) in a 40x20 image: x in [30, 40), y in [10, 15)
    assert 30 <= x < 40 and 10 <= y < 15
    with pytest.raises(ValueError, match="square grid"):
        patch_grid(torch.zeros(1, 1 + 15))


def test_row_layout_stacks_and_unstacks():
    image_index = torch.tensor([1, 0, 1, 1, 2])
    layout = RowLayout.of(image_index, images=3)
    assert layout.slots == 3
    rows = torch.arange(5, dtype=torch.float32).view(5, 1, 1, 1).expand(5, 2, 4, 3).contiguous()
    stacked = layout.stack(rows)
    assert stacked.shape == (3, 2, 3 * 4, 3)
    torch.testing.assert_close(layout.unstack(stacked, tokens=4), rows)
    # image 1's block holds rows 0, 2, 3 in that order, then nothing
    assert stacked[1, 0, ::4, 0].tolist() == [0.0, 2.0, 3.0]


@pytest.fixture(scope="module")
def tiny():
    torch.manual_seed(0)
    words = ["red", "blue", "circle", "square", "shape"]
    model, tokenizer, processor = build_tiny_itm(words, TinyItmSpec(image_size=32, patch_size=8, hidden_size=32))
    with torch.no_grad():  # make the random model far from uniform, so differences would show
        for parameter in model.parameters():
            parameter.mul_(3.0)
    return EntityImageMatcher(model, tokenizer, processor, trace_layer=1)


def _batch(tiny):
    torch.manual_seed(1)
    pixels = torch.randn(3, 3, 32, 32)
    texts = [itm_text("red circle", "shape"), itm_text("blue square", "shape"), itm_text("red", "shape"),
             itm_text("blue circle square", "shape"), itm_text("square", "shape")]
    image_index = torch.tensor([2, 0, 2, 1, 2])
    return pixels, texts, image_index


def test_shared_image_cross_attention_equals_stock_blip(tiny):
    pixels, texts, image_index = _batch(tiny)
    tokens = tiny.tokenize(texts)
    with torch.no_grad():
        ours = tiny.itm_logits(tiny.encode_images(pixels), image_index, tokens)
        stock = tiny.model(input_ids=tokens["input_ids"], attention_mask=tokens["attention_mask"],
                           pixel_values=pixels[image_index]).itm_score
    assert ours.std() > 0.1  # the check compares real, varied outputs
    torch.testing.assert_close(ours, stock, atol=1e-5, rtol=1e-4)


def test_batched_trace_equals_one_stock_pass_per_entity(tiny):
    pixels, texts, image_index = _batch(tiny)
    with torch.no_grad():
        embeds = tiny.encode_images(pixels)
    batched = tiny.match_and_trace(embeds, image_index, texts)
    assert batched.scores.shape == (5, 1 + 16)
    for row in range(len(texts)):
        tokens = tiny.tokenize([texts[row]])
        image = pixels[image_index[row]][None]
        with CrossAttentionRecorder(cross_attention_module(tiny.model, 1)) as recorder:
            logits = tiny.model(input_ids=tokens["input_ids"], attention_mask=tokens["attention_mask"],
                                pixel_values=image).itm_score
            p_true = logits.softmax(-1)[0, 1]
            (gradient,) = torch.autograd.grad(p_true, recorder.attention)
        # the captured tensor is a probability distribution over image positions
        torch.testing.assert_close(recorder.attention.sum(-1), torch.ones_like(recorder.attention.sum(-1)))
        expected = eq11_scores(recorder.attention, gradient)[0]
        torch.testing.assert_close(batched.p_true[row], p_true.detach(), atol=1e-5, rtol=1e-4)
        torch.testing.assert_close(batched.scores[row], expected.detach(), atol=1e-6, rtol=1e-3)
    assert (batched.scores >= 0).all() and batched.scores.abs().sum() > 0


def test_default_trace_layer_is_the_middle_one(tiny):
    layers = tiny.model.text_encoder.encoder.layer
    assert cross_attention_module(tiny.model) is layers[len(layers) // 2].crossattention.self
    with pytest.raises(ValueError, match="out of range"):
        cross_attention_module(tiny.model, 7)
