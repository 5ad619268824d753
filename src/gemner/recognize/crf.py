"""Linear-chain CRF (paper eq. 5), batched and vectorised over the batch and the tag set.

    P(c | T) = prod_i psi(c_{i-1}, c_i, y_i) / sum_{c'} prod_i psi(c'_{i-1}, c'_i, y_i)        (5)

with log psi(c_{i-1}, c_i, y_i) = transition[c_{i-1}, c_i] + y_i[c_i] (plus `start[c_1]` at the first
position and `end[c_N]` after the last). Everything is kept in log space.

Masks are *prefix* masks: `mask[b, :n_b]` is True and the rest False (every sequence has at least one
position). The recogniser builds its emissions that way, one row per text word (first-subword rule).
"""

from __future__ import annotations

import math

import torch
from torch import nn


def crf_log_potentials(emissions: torch.Tensor, transitions: torch.Tensor) -> torch.Tensor:
    """log psi(c_{i-1}=j, c_i=k, y_i) for i >= 2 (eq. 5): [B, L-1, T, T] = transitions[j, k] + y_i[k]."""
    return transitions[None, None] + emissions[:, 1:, None, :]


def crf_sequence_log_score(
    emissions: torch.Tensor, tags: torch.Tensor, mask: torch.Tensor,
    start: torch.Tensor, end: torch.Tensor, transitions: torch.Tensor,
) -> torch.Tensor:
    """log prod_i psi(c_{i-1}, c_i, y_i) of the given tag sequences (numerator of eq. 5): [B]."""
    mask_f = mask.to(emissions.dtype)
    emitted = emissions.gather(2, tags.unsqueeze(2)).squeeze(2)  # [B, L]
    score = start[tags[:, 0]] + emitted[:, 0]
    steps = transitions[tags[:, :-1], tags[:, 1:]] + emitted[:, 1:]  # [B, L-1]
    score = score + (steps * mask_f[:, 1:]).sum(1)
    last = mask.long().sum(1) - 1
    return score + end[tags.gather(1, last.unsqueeze(1)).squeeze(1)]


def crf_log_partition(
    emissions: torch.Tensor, mask: torch.Tensor,
    start: torch.Tensor, end: torch.Tensor, transitions: torch.Tensor,
) -> torch.Tensor:
    """log sum_{c'} prod_i psi(c'_{i-1}, c'_i, y_i) (denominator of eq. 5), forward algorithm: [B].

    Each step is alpha_i[k] = logsumexp_j(alpha_{i-1}[j] + transition[j, k]) + y_i[k], computed as
    one [B, T] x [T, T] matmul in exp space after subtracting the row maximum of alpha and the largest
    transition (exact up to rounding; ~8x faster than materialising [B, T, T] for 100 tags).
    For target k the predecessor with the largest alpha contributes at least
    exp(transition[j, k] - max transition), so nothing underflows while the transition scores span
    less than ~80 (fp32); beyond that (never seen in practice) the logsumexp form is used.
    """
    top = transitions.max()
    if float((top - transitions.min()).detach()) > 0.9 * -math.log(torch.finfo(emissions.dtype).tiny):
        return crf_log_partition_reference(emissions, mask, start, end, transitions)
    exp_transitions = (transitions - top).exp()
    alpha = start[None] + emissions[:, 0]  # [B, T]
    for i in range(1, emissions.shape[1]):
        peak = alpha.max(dim=1, keepdim=True).values
        step = ((alpha - peak).exp() @ exp_transitions).log() + peak + top + emissions[:, i]
        alpha = torch.where(mask[:, i, None], step, alpha)
    return torch.logsumexp(alpha + end[None], dim=1)


def crf_log_partition_reference(
    emissions: torch.Tensor, mask: torch.Tensor,
    start: torch.Tensor, end: torch.Tensor, transitions: torch.Tensor,
) -> torch.Tensor:
    """The same forward algorithm written with logsumexp over [B, T, T] (the textbook form; tests)."""
    alpha = start[None] + emissions[:, 0]
    for i in range(1, emissions.shape[1]):
        step = torch.logsumexp(alpha.unsqueeze(2) + transitions[None], dim=1) + emissions[:, i]
        alpha = torch.where(mask[:, i, None], step, alpha)
    return torch.logsumexp(alpha + end[None], dim=1)


def crf_log_marginals(
    emissions: torch.Tensor, mask: torch.Tensor,
    start: torch.Tensor, end: torch.Tensor, transitions: torch.Tensor,
) -> torch.Tensor:
    """log P(c_i = k | S) under eq. 5 for every position and tag, forward-backward: [B, L, T] (padded positions:
    0). alpha_i[k] sums the paths' scores up to tag k at i, beta_i[k] those from k at i to the end, and
    P(c_i = k) = exp(alpha_i[k] + beta_i[k] - log Z). Differentiable, for training on soft targets
    (`distill`); written in the logsumexp form of `crf_log_partition_reference`."""
    length = emissions.shape[1]
    alphas = [start[None] + emissions[:, 0]]
    for i in range(1, length):
        step = torch.logsumexp(alphas[-1].unsqueeze(2) + transitions[None], dim=1) + emissions[:, i]
        alphas.append(torch.where(mask[:, i, None], step, alphas[-1]))
    final = end[None].expand_as(alphas[0])
    betas = [final]
    for i in range(length - 2, -1, -1):  # beta_i from beta_{i+1}; past a row's last word beta is `end`
        step = torch.logsumexp(transitions[None] + (emissions[:, i + 1] + betas[-1]).unsqueeze(1), dim=2)
        betas.append(torch.where(mask[:, i + 1, None], step, final))
    betas.reverse()
    log_z = torch.logsumexp(alphas[-1] + end[None], dim=1)
    marginals = torch.stack(alphas, 1) + torch.stack(betas, 1) - log_z[:, None, None]
    return torch.where(mask[..., None], marginals, torch.zeros_like(marginals))


def crf_viterbi(
    emissions: torch.Tensor, mask: torch.Tensor,
    start: torch.Tensor, end: torch.Tensor, transitions: torch.Tensor,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Best tag sequence of each row and its log score: ([B, L] tags, [B] scores).

    Padded steps store identity back-pointers, so the backtrace carries the last real tag through the
    padding unchanged and the whole batch is traced back in one vectorised pass. Tags past a row's
    length repeat its last tag; callers cut each row to its length.
    """
    batch, length, n_tags = emissions.shape
    incoming = transitions.t().contiguous()  # [to, from]: the max runs over the contiguous last dim
    score = start[None] + emissions[:, 0]
    identity = torch.arange(n_tags, device=emissions.device).expand(batch, n_tags)
    pointers = []
    for i in range(1, length):
        best, best_prev = (score.unsqueeze(1) + incoming[None]).max(dim=2)
        keep = mask[:, i, None]
        score = torch.where(keep, best + emissions[:, i], score)
        pointers.append(torch.where(keep, best_prev, identity))
    score = score + end[None]
    best_score, last_tag = score.max(dim=1)
    tags = [last_tag]
    for back in reversed(pointers):
        last_tag = back.gather(1, last_tag.unsqueeze(1)).squeeze(1)
        tags.append(last_tag)
    tags.reverse()
    return torch.stack(tags, dim=1), best_score


class CRF(nn.Module):
    """A linear-chain CRF over `num_tags` tags with start, end and transition scores."""

    def __init__(self, num_tags: int) -> None:
        super().__init__()
        self.num_tags = num_tags
        # Zero init: the CRF starts as independent per-token softmaxes and learns its transitions.
        self.start = nn.Parameter(torch.zeros(num_tags))
        self.end = nn.Parameter(torch.zeros(num_tags))
        self.transitions = nn.Parameter(torch.zeros(num_tags, num_tags))

    def _params(self, emissions: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        dtype = emissions.dtype
        return self.start.to(dtype), self.end.to(dtype), self.transitions.to(dtype)

    def log_likelihood(self, emissions: torch.Tensor, tags: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        """log P(tags | emissions) per row (eq. 5): [B]."""
        start, end, transitions = self._params(emissions)
        numerator = crf_sequence_log_score(emissions, tags, mask, start, end, transitions)
        return numerator - crf_log_partition(emissions, mask, start, end, transitions)

    def nll(self, emissions: torch.Tensor, tags: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        """Mean over the batch of -log P(c* | S) (eqs. 6-7)."""
        return -self.log_likelihood(emissions, tags, mask).mean()

    def log_marginals(self, emissions: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        """log P(c_i = k | S) of every position and tag: [B, L, T] (`crf_log_marginals`)."""
        return crf_log_marginals(emissions, mask, *self._params(emissions))

    @torch.no_grad()
    def decode(self, emissions: torch.Tensor, mask: torch.Tensor) -> list[list[int]]:
        """Viterbi paths, each cut to its row's length."""
        start, end, transitions = self._params(emissions)
        tags, _ = crf_viterbi(emissions, mask, start, end, transitions)
        lengths = mask.long().sum(1).tolist()
        return [row[:n] for row, n in zip(tags.tolist(), lengths, strict=True)]
