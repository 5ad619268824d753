"""Textual entity-image matching, paper §3.4.1 and Table 8, with eq. 11 tracing on the same pass.

BLIP's ITM head (`BlipForImageTextRetrieval`) reads "<entity> is belong <category>" with the image;
P_T = softmax(itm_logits)[match]. The image is encoded once per post (`encode_images`) and all the
post's entities (and, in batches, several posts' entities) run through the text encoder together,
each row cross-attending to its own image's features, picked by `image_index`.
"""

from __future__ import annotations

import math
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from PIL import Image

from ..data.limits import ITM_TEXT_CHARS, clip
from .tracing import CrossAttentionRecorder, cross_attention_module, eq11_scores

MATCH = 1  # index of "match" in BLIP's ITM logits (0: no match, 1: match)


def itm_text(entity: str, category: str) -> str:
    """Paper Table 8: "<entity> is belong <category>" (the paper's grammar, kept as trained); each part
    cut to `ITM_TEXT_CHARS` characters before tokenising (the tokenizer keeps 35 subwords anyway)."""
    return f"{clip(entity, ITM_TEXT_CHARS)} is belong {clip(category, ITM_TEXT_CHARS)}"


@dataclass
class Matched:
    """P_T per text row and, when traced, the eq. 11 scores over the image positions."""

    p_true: torch.Tensor  # (rows,)
    scores: torch.Tensor | None = None  # (rows, positions), [CLS] first


class EntityImageMatcher:
    """A BLIP ITM model with its tokenizer and image processor; batched matching and tracing."""

    def __init__(self, model, tokenizer, image_processor, *, trace_layer: int | None = None,
                 max_text_length: int = 35, device: str | torch.device = "cpu",
                 dtype: torch.dtype = torch.float32):
        self.model = model.to(device=device, dtype=dtype).eval()
        self.tokenizer = tokenizer
        self.image_processor = image_processor
        self.trace_layer = trace_layer
        self.max_text_length = max_text_length
        self.device = torch.device(device)
        self.dtype = dtype

    @classmethod
    def from_pretrained(cls, name: str, *, trust_remote_code: bool = False, **kwargs) -> EntityImageMatcher:
        """Load by name or path through `gemner.hub` (MissingWeightsError when weights are absent)."""
        from transformers import AutoTokenizer, BlipForImageTextRetrieval

        from ..hub import resolve
        from .processors import blip_image_processor

        pretrained = resolve(name, trust_remote_code=trust_remote_code)
        model = pretrained.load(BlipForImageTextRetrieval)
        tokenizer = pretrained.load(AutoTokenizer)
        image_processor = pretrained.load(blip_image_processor())
        return cls(model, tokenizer, image_processor, **kwargs)

    # -- inputs ---------------------------------------------------------------------------------
    def pixel_values(self, images: Sequence[Image.Image]) -> torch.Tensor:
        rgb = [image.convert("RGB") for image in images]
        pixels = self.image_processor(images=rgb, return_tensors="pt")["pixel_values"]
        return pixels.to(self.device, self.dtype)

    def tokenize(self, texts: Sequence[str]) -> dict[str, torch.Tensor]:
        tokens = self.tokenizer(list(texts), padding=True, truncation=True,
                                max_length=self.max_text_length, return_tensors="pt")
        return {"input_ids": tokens["input_ids"].to(self.device),
                "attention_mask": tokens["attention_mask"].to(self.device)}

    # -- model passes ----------------------------------------------------------------------------
    def encode_images(self, pixel_values: torch.Tensor) -> torch.Tensor:
        """(images, positions, hidden) vision features, computed once per image."""
        return self.model.vision_model(pixel_values=pixel_values).last_hidden_state

    def itm_logits(self, image_embeds: torch.Tensor, image_index: torch.Tensor,
                   tokens: dict[str, torch.Tensor]) -> torch.Tensor:
        """(rows, 2) ITM logits; row r reads its text with image `image_index[r]`."""
        layout = RowLayout.of(image_index.to(image_embeds.device), image_embeds.shape[0])
        traced = cross_attention_module(self.model, self.trace_layer)
        with shared_image_cross_attention(self.model, layout, traced):
            text = self.model.text_encoder(
                input_ids=tokens["input_ids"], attention_mask=tokens["attention_mask"],
                encoder_hidden_states=image_embeds, encoder_attention_mask=None,
            )
        return self.model.itm_head(text.last_hidden_state[:, 0, :])

    @torch.no_grad()
    def match(self, image_embeds: torch.Tensor, image_index: torch.Tensor,
              texts: Sequence[str]) -> Matched:
        logits = self.itm_logits(image_embeds, image_index, self.tokenize(texts))
        return Matched(logits.float().softmax(-1)[:, MATCH])

    def match_and_trace(self, image_embeds: torch.Tensor, image_index: torch.Tensor,
                        texts: Sequence[str]) -> Matched:
        """P_T and eq. 11 scores for every row, from one batched forward and one backward pass.

        Each row's P_T depends only on its own row of A, so one backward pass of the summed rows
        gives every row's gradient at once. P_T = sigmoid(d) with d = logit_match - logit_no_match,
        so dP_T/dA = sigmoid'(d) * dd/dA: the backward pass runs on d and the factor sigmoid'(d) is
        applied in float64. Same value as differentiating P_T directly, but a confident match
        (P_T rounding to 1.0 in float32) no longer turns every gradient into zero.
        """
        tokens = self.tokenize(texts)
        image_embeds = image_embeds.detach().requires_grad_(True)  # puts A in the graph, frozen weights too
        with torch.enable_grad(), CrossAttentionRecorder(
                cross_attention_module(self.model, self.trace_layer)) as recorder:
            logits = self.itm_logits(image_embeds, image_index, tokens).float()
            margin = logits[:, MATCH] - logits[:, 1 - MATCH]
            if recorder.attention is None:
                raise RuntimeError("the traced cross-attention layer did not run")
            (gradient,) = torch.autograd.grad(margin.sum(), recorder.attention)
        layout = RowLayout.of(image_index.to(image_embeds.device), image_embeds.shape[0])
        length = tokens["input_ids"].shape[1]
        attention = layout.unstack(recorder.attention.detach(), length).double()
        margin = margin.detach().double()
        slope = torch.sigmoid(margin) * torch.sigmoid(-margin)  # dP_T / dd, > 0
        # relu(c * g) = c * relu(g) for c > 0: eq. 11 of dP_T/dA equals slope x eq. 11 of dd/dA
        scores = slope[:, None] * eq11_scores(attention, layout.unstack(gradient, length).double(),
                                              tokens["attention_mask"])
        return Matched(torch.sigmoid(margin).float(), scores.float())


@dataclass(frozen=True)
class RowLayout:
    """Where each text row sits when the rows are stacked per image.

    Rows reading the same image are laid side by side along the query axis of that image's
    cross-attention: image k gets a (slots x tokens) block of queries. Cross-attention treats every
    query token independently, so this is the same arithmetic as one row at a time, but each
    image's keys and values are projected once and never copied per row.
    """

    flat: torch.Tensor  # (rows,) index into images * slots
    images: int
    slots: int

    @classmethod
    def of(cls, image_index: torch.Tensor, images: int) -> RowLayout:
        counts = torch.bincount(image_index, minlength=images)
        order = torch.argsort(image_index, stable=True)
        starts = torch.cumsum(counts, 0) - counts
        slot = torch.empty_like(image_index)
        slot[order] = torch.arange(len(image_index), device=image_index.device) - starts[image_index[order]]
        return cls(image_index * int(counts.max()) + slot, images, int(counts.max()))

    def stack(self, rows: torch.Tensor) -> torch.Tensor:
        """(rows, heads, tokens, d) -> (images, heads, slots * tokens, d); empty slots are zeros."""
        _, heads, tokens, size = rows.shape
        padded = rows.new_zeros(self.images * self.slots, heads, tokens, size).index_copy(0, self.flat, rows)
        return (padded.view(self.images, self.slots, heads, tokens, size).transpose(1, 2)
                .reshape(self.images, heads, self.slots * tokens, size))

    def unstack(self, stacked: torch.Tensor, tokens: int) -> torch.Tensor:
        """(images, heads, slots * tokens, last) -> (rows, heads, tokens, last)."""
        _, heads, _, last = stacked.shape
        per_slot = (stacked.view(self.images, heads, self.slots, tokens, last).transpose(1, 2)
                    .reshape(self.images * self.slots, heads, tokens, last))
        return per_slot.index_select(0, self.flat)


@contextmanager
def shared_image_cross_attention(model, layout: RowLayout,
                                 explicit: torch.nn.Module | None = None) -> Iterator[None]:
    """Cross-attention over the distinct images, each image's keys and values projected once.

    Stock BLIP projects the image features into keys and values again for every text row (a
    `hidden x hidden` product over all image positions, per layer, per entity). Here the text
    encoder gets the distinct images only; each cross-attention module stacks the rows of an image
    along its query axis (`RowLayout`). Same weights and arithmetic as the stock module (tests
    compare it with `BlipForImageTextRetrieval.forward`). The module `explicit` computes its
    probabilities in the open and returns them (stacked layout), for tracing; the others use
    fused attention.
    """
    modules = [layer.crossattention.self for layer in model.text_encoder.encoder.layer]
    for module in modules:
        module.forward = _stacked_forward(module, layout, module is explicit)
    try:
        yield
    finally:
        for module in modules:
            del module.forward  # back to the class's forward


def _stacked_forward(module, layout: RowLayout, explicit: bool):
    heads, size = module.num_attention_heads, module.attention_head_size

    def split(states: torch.Tensor, projection: torch.nn.Module) -> torch.Tensor:
        batch, length, _ = states.shape
        return projection(states).view(batch, length, heads, size).transpose(1, 2)

    def forward(hidden_states, attention_mask=None, encoder_hidden_states=None, **_kwargs):
        if encoder_hidden_states is None or attention_mask is not None:
            raise RuntimeError("stacked cross-attention needs image features and attends to every position")
        rows, tokens = hidden_states.shape[:2]
        query = layout.stack(split(hidden_states, module.query))
        key = split(encoder_hidden_states, module.key)
        value = split(encoder_hidden_states, module.value)
        if explicit:
            probs = (query @ key.transpose(-1, -2) / math.sqrt(size)).softmax(dim=-1)
            context = module.dropout(probs) @ value
        else:
            probs = None
            dropout = module.dropout.p if module.training else 0.0
            context = F.scaled_dot_product_attention(query, key, value, dropout_p=dropout)
        context = layout.unstack(context, tokens)  # (rows, heads, tokens, size)
        return context.transpose(1, 2).reshape(rows, tokens, heads * size), probs

    return forward
