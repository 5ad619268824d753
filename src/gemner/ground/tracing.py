"""Visual entity tracing, paper §3.4.2, eq. 11: gradient-weighted cross-attention (Grad-CAM).

    s_i = 1/H * sum_j sum_h max(0, dP_T / dA_ji^(h)) * A_ji^(h)

A is the cross-attention probability from text token j to image position i in head h of one layer
of the ITM text encoder, P_T the ITM "match" probability. The image positions of BLIP's vision
encoder are [CLS] followed by the patch grid; [CLS] is dropped before the map is reshaped to the
grid, resized to the image, and its maximum taken as the entity's point.

Default layer: the middle layer of the text encoder (index L // 2: layer 6 of the 12 of BLIP-base).
That is the block PnP-VQA (Tiong et al., 2022, which the paper cites for this step) and the LAVIS
BLIP Grad-CAM take (`block_num=6`): earlier cross-attention layers see text tokens that carry little
context yet, later ones have already mixed the image evidence across tokens, so their maps blur.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F


def eq11_scores(attention: torch.Tensor, gradient: torch.Tensor,
                token_mask: torch.Tensor | None = None) -> torch.Tensor:
    """Eq. 11 for a batch: attention and gradient (batch, heads, tokens, positions) -> (batch, positions).

    `token_mask` (batch, tokens), 1 for real tokens, limits the sum over j to the S real tokens of
    each text (padding rows have zero gradient anyway; the mask makes that explicit).
    """
    if attention.shape != gradient.shape or attention.dim() != 4:
        raise ValueError(f"attention {tuple(attention.shape)} and gradient {tuple(gradient.shape)} "
                         "must both be (batch, heads, tokens, positions)")
    weighted = gradient.clamp(min=0) * attention
    if token_mask is not None:
        weighted = weighted * token_mask[:, None, :, None].to(weighted.dtype)
    heads = attention.shape[1]
    return weighted.sum(dim=(1, 2)) / heads


def patch_grid(scores: torch.Tensor, has_cls: bool = True) -> torch.Tensor:
    """(batch, positions) -> (batch, rows, cols): drop the [CLS] position, reshape to the square grid."""
    patches = scores[:, 1:] if has_cls else scores
    side = round(patches.shape[1] ** 0.5)
    if side * side != patches.shape[1]:
        raise ValueError(f"{patches.shape[1]} patch positions do not form a square grid")
    return patches.reshape(scores.shape[0], side, side)


def resize_to_image(grid: torch.Tensor, size: tuple[int, int]) -> torch.Tensor:
    """(batch, rows, cols) -> (batch, height, width) by bilinear interpolation; size is (width, height)."""
    width, height = size
    resized = F.interpolate(grid[:, None].float(), size=(height, width), mode="bilinear", align_corners=False)
    return resized[:, 0]


def peak_point(heatmap: torch.Tensor) -> tuple[int, int]:
    """(x, y) of the maximum of one (height, width) map."""
    flat = int(torch.argmax(heatmap))
    width = heatmap.shape[1]
    return flat % width, flat // width


@dataclass
class CrossAttentionRecorder:
    """Keeps the attention probabilities of one cross-attention module during a forward pass.

    BLIP's text attention (`BlipTextSelfAttention`) always computes its probabilities explicitly
    (no fused kernel in transformers 5.x), and returns them as its second output; this forward hook
    keeps that tensor, still in the autograd graph, so dP_T/dA can be taken afterwards.
    """

    module: torch.nn.Module
    attention: torch.Tensor | None = None

    def __post_init__(self) -> None:
        self._handle = self.module.register_forward_hook(self._keep)

    def _keep(self, _module, _inputs, outputs) -> None:
        self.attention = outputs[1]

    def remove(self) -> None:
        self._handle.remove()

    def __enter__(self) -> CrossAttentionRecorder:
        return self

    def __exit__(self, *_exc) -> None:
        self.remove()


def cross_attention_module(model, layer: int | None = None) -> torch.nn.Module:
    """The cross-attention probabilities module of the ITM text encoder (default: the middle layer)."""
    layers = model.text_encoder.encoder.layer
    index = len(layers) // 2 if layer is None else layer
    if not -len(layers) <= index < len(layers):
        raise ValueError(f"trace layer {index} out of range: the text encoder has {len(layers)} layers")
    return layers[index].crossattention.self
