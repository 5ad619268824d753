"""Entity-level category distributions and their uncertainty (input of the sample filter, eq. 10).

For each predicted span: mean-pool the encoder's last hidden states over the span's words (by
default each word's first subword, the positions the tag classifier is trained on;
`span_pooling="all-subwords"` pools every subword), apply the (MGA-mixed) tag classifier, merge each
category's B-/I- logits by logsumexp, softmax over the categories, entropy (eq. 10) and the top-K
labels. The classifier is linear, so this equals mean-pooling the words' tag logits. The coarse
distribution comes from the coarse path when the model has one; otherwise it is the fine
distribution summed per coarse parent.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch

from .encoding import EncodedPost
from .equations import entropy, merge_bio_logits


def pool_spans(hidden: torch.Tensor, items: Sequence[EncodedPost], spans: Sequence[tuple[int, int, int]],
               how: str = "first-subword") -> torch.Tensor:
    """Mean of hidden[row] over words [start, end) (their first subwords, or all their subwords)."""
    if how == "first-subword":
        pooled = [hidden[row, items[row].word_starts[start:end]].mean(dim=0) for row, start, end in spans]
    else:
        pooled = [hidden[row, items[row].word_starts[start]:items[row].word_ends[end - 1]].mean(dim=0)
                  for row, start, end in spans]
    return torch.stack(pooled) if pooled else hidden.new_zeros(0, hidden.shape[-1])


def topk_pairs(probs: torch.Tensor, labels: Sequence[str], k: int) -> list[list[list]]:
    """[[label, prob], ...] per row, descending, k entries (or all labels when fewer)."""
    values, indices = probs.topk(min(k, len(labels)), dim=-1)
    return [[[labels[i], round(float(v), 6)] for v, i in zip(vs, ix, strict=True)]
            for vs, ix in zip(values.tolist(), indices.tolist(), strict=True)]


@torch.no_grad()
def span_scores(model, hidden: torch.Tensor, items: Sequence[EncodedPost],
                spans: Sequence[tuple[int, int, int]]) -> list[dict]:
    """The `scores` dict (entropy, topk, coarse_topk) of every span (row, start, end)."""
    if not spans:
        return []
    schema = model.schema
    pooled = pool_spans(hidden, items, spans, model.config.span_pooling)
    if model.shape_embedding is not None:  # the heads also saw each word's shape: mean over the span
        shape_rows = [model.shape_embedding(torch.tensor(items[row].word_shapes[start:end], device=hidden.device))
                      .mean(dim=0) for row, start, end in spans]
        pooled = torch.cat([pooled, torch.stack(shape_rows)], dim=-1)
    logits = model.tag_logits(pooled)
    fine_probs = merge_bio_logits(logits.fine).softmax(-1)
    scores = [{"entropy": round(float(h), 6)} for h in entropy(fine_probs).tolist()]
    for score, top in zip(scores, topk_pairs(fine_probs, schema.labels, model.config.topk), strict=True):
        score["topk"] = top
    if schema.hierarchical:
        if logits.coarse is not None:
            coarse_probs = merge_bio_logits(logits.coarse).softmax(-1)
        else:
            parent = torch.tensor([schema.coarse_labels.index(schema.coarse_of[f]) for f in schema.labels])
            coarse_probs = fine_probs.new_zeros(len(spans), len(schema.coarse_labels))
            coarse_probs.index_add_(1, parent, fine_probs)
        coarse_top = topk_pairs(coarse_probs, schema.coarse_labels, len(schema.coarse_labels))
        for score, top in zip(scores, coarse_top, strict=True):
            score["coarse_topk"] = top
    return scores
