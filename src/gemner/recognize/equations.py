"""The recogniser's paper equations as small named functions (eq. 5 lives in `crf.py`).

* eq. 8  `multi_granularity_loss`: L = alpha * L_c + (1 - alpha) * L_f.
* eq. 9  `multi_granularity_augmentation`: y_f <- beta * M y_c + (1 - beta) * y_f, on BIO-tag logits
  through `bio_transition_matrix` (see there).
* `cooccurrence_matrix` / `normalise_cooccurrence`: the initial M (paper: co-occurrence frequencies,
  then normalised).
* eq. 10 input: `merge_bio_logits` (B- and I- logits of one category -> one logit) and `entropy`.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import Literal

import torch

from ..data.schema import LabelSchema

MgaNorm = Literal["column", "row"]


def multi_granularity_loss(nll_coarse: torch.Tensor, nll_fine: torch.Tensor, alpha: float) -> torch.Tensor:
    """Eq. 8: alpha * L_NLL^c + (1 - alpha) * L_NLL^f."""
    return alpha * nll_coarse + (1.0 - alpha) * nll_fine


def multi_granularity_augmentation(
    coarse_tag_logits: torch.Tensor, fine_tag_logits: torch.Tensor, tag_matrix: torch.Tensor, beta: float
) -> torch.Tensor:
    """Eq. 9 on tag logits: beta * (y_c @ M_tag) + (1 - beta) * y_f.

    `tag_matrix` is [T_c, T_f] (coarse tags -> fine tags). The paper writes `M y_c` with
    M in R^{C_c x C_f}; with row-vector logits that product is `y_c @ M`.
    """
    return beta * (coarse_tag_logits @ tag_matrix) + (1.0 - beta) * fine_tag_logits


def cooccurrence_matrix(
    pairs: Iterable[tuple[str, str]], coarse_labels: Sequence[str], fine_labels: Sequence[str]
) -> torch.Tensor:
    """Counts [C_c, C_f] of (coarse, fine) label pairs, one pair per training entity (or token)."""
    counts = torch.zeros(len(coarse_labels), len(fine_labels))
    coarse_index = {label: i for i, label in enumerate(coarse_labels)}
    fine_index = {label: j for j, label in enumerate(fine_labels)}
    for coarse, fine in pairs:
        counts[coarse_index[coarse], fine_index[fine]] += 1
    return counts


def normalise_cooccurrence(counts: torch.Tensor, how: MgaNorm = "column") -> torch.Tensor:
    """Normalise co-occurrence counts into the initial M.

    `column` (default): each fine category's column sums to 1, M[c, f] = P(coarse c | fine f). Every
    fine tag then receives its parent's coarse logit at unit weight, however many siblings it has and
    however rare it is: the boost does not shrink with the fan-out of the coarse type (13 person
    types vs 3 event types) nor favour frequent fine types, which matters for the long tail the paper
    targets. `row`: each coarse row sums to 1, M[c, f] = P(fine f | coarse c), a frequency prior.
    A column or row without counts stays zero (the caller fills it from the schema).
    """
    axis = 0 if how == "column" else 1
    totals = counts.sum(dim=axis, keepdim=True)
    return torch.where(totals > 0, counts / totals.clamp_min(1e-12), torch.zeros_like(counts))


def initial_mga_matrix(
    schema: LabelSchema, pairs: Iterable[tuple[str, str]], how: MgaNorm = "column"
) -> torch.Tensor:
    """M from training co-occurrences; a fine label never seen in training gets its schema parent."""
    counts = cooccurrence_matrix(pairs, schema.coarse_labels, schema.labels)
    for j, fine in enumerate(schema.labels):
        if counts[:, j].sum() == 0:
            counts[schema.coarse_labels.index(schema.coarse_of[fine]), j] = 1.0
    return normalise_cooccurrence(counts, how)


def bio_transition_matrix(category_matrix: torch.Tensor) -> torch.Tensor:
    """Lift M [C_c, C_f] to BIO tags [1 + 2C_c, 1 + 2C_f]: O->O is 1, B-c->B-f and I-c->I-f are M[c, f].

    Tag order is the schema's (`O`, `B-x1`, `I-x1`, `B-x2`, ...). B never feeds I (a coarse "begins"
    is evidence for a fine "begins", not for a fine "inside"), and O feeds only O. Built with
    differentiable ops so gradients reach M.
    """
    n_coarse, n_fine = category_matrix.shape
    eye2 = torch.eye(2, dtype=category_matrix.dtype, device=category_matrix.device)
    body = torch.kron(category_matrix, eye2)  # [2C_c, 2C_f]: B->B and I->I blocks
    top = category_matrix.new_zeros(1, 1 + 2 * n_fine)
    top[0, 0] = 1.0
    left = category_matrix.new_zeros(2 * n_coarse, 1)
    return torch.cat([top, torch.cat([left, body], dim=1)], dim=0)


def merge_bio_logits(tag_logits: torch.Tensor) -> torch.Tensor:
    """Merge each category's B- and I- logits into one by logsumexp: [..., 1 + 2C] -> [..., C].

    logsumexp keeps the merged value a proper logit: softmax over the merged categories equals the
    tag softmax's probability mass of {B-x, I-x} renormalised without `O`. The `O` logit is dropped
    because eq. 10's distribution is over the C_f categories only.
    """
    body = tag_logits[..., 1:]
    pairs = body.reshape(*body.shape[:-1], body.shape[-1] // 2, 2)
    return torch.logsumexp(pairs, dim=-1)


def entropy(probs: torch.Tensor) -> torch.Tensor:
    """Eq. 10: H(p) = -sum_j p_j log p_j (natural log), with 0 log 0 = 0, over the last dimension."""
    logs = torch.where(probs > 0, probs.log(), torch.zeros_like(probs))
    return -(probs * logs).sum(dim=-1)
