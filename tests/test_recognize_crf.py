"""The CRF (paper eq. 5) against hand computation, brute-force enumeration and pytorch-crf."""

from __future__ import annotations

import itertools
import math

import pytest
import torch

from gemner.recognize.crf import (
    CRF,
    crf_log_marginals,
    crf_log_partition,
    crf_log_partition_reference,
    crf_log_potentials,
    crf_sequence_log_score,
    crf_viterbi,
)


def _path_score(em, tags, start, end, trans):
    score = start[tags[0]] + em[0, tags[0]]
    for i in range(1, len(tags)):
        score = score + trans[tags[i - 1], tags[i]] + em[i, tags[i]]
    return score + end[tags[-1]]


def _random_crf(seed: int, batch=4, length=4, tags=3):
    g = torch.Generator().manual_seed(seed)
    em = torch.randn(batch, length, tags, generator=g, dtype=torch.float64)
    start = torch.randn(tags, generator=g, dtype=torch.float64)
    end = torch.randn(tags, generator=g, dtype=torch.float64)
    trans = torch.randn(tags, tags, generator=g, dtype=torch.float64)
    lengths = torch.randint(1, length + 1, (batch,), generator=g)
    lengths[0] = length
    mask = torch.arange(length)[None] < lengths[:, None]
    return em, mask, start, end, trans, lengths.tolist()


def test_eq5_hand_computed_two_tags_two_steps():
    em = torch.tensor([[[1.0, 0.0], [0.0, 2.0]]])
    trans = torch.tensor([[0.5, -1.0], [0.0, 0.2]])
    zero = torch.zeros(2)
    mask = torch.ones(1, 2, dtype=torch.bool)
    # the four paths, y1[c1] + trans[c1, c2] + y2[c2]: (0,0) 1.5, (0,1) 2.0, (1,0) 0.0, (1,1) 2.2
    log_z = math.log(math.exp(1.5) + math.exp(2.0) + math.exp(0.0) + math.exp(2.2))
    assert crf_log_partition(em, mask, zero, zero, trans).item() == pytest.approx(log_z, abs=1e-6)
    score = crf_sequence_log_score(em, torch.tensor([[0, 1]]), mask, zero, zero, trans)
    assert score.item() == pytest.approx(2.0)
    crf = CRF(2)
    with torch.no_grad():
        crf.transitions.copy_(trans)
    assert crf.log_likelihood(em, torch.tensor([[0, 1]]), mask).exp().item() == pytest.approx(
        math.exp(2.0) / math.exp(log_z), abs=1e-6)
    tags, best = crf_viterbi(em, mask, zero, zero, trans)
    assert tags.tolist() == [[1, 1]] and best.item() == pytest.approx(2.2)
    # log psi(c_1=j, c_2=k, y_2) = trans[j, k] + y_2[k]
    torch.testing.assert_close(crf_log_potentials(em, trans)[0, 0], torch.tensor([[0.5, 1.0], [0.0, 2.2]]))


@pytest.mark.parametrize("seed", range(6))
def test_log_partition_and_viterbi_match_brute_force(seed):
    em, mask, start, end, trans, lengths = _random_crf(seed)
    log_z = crf_log_partition(em, mask, start, end, trans)
    reference = crf_log_partition_reference(em, mask, start, end, trans)
    best_tags, best_scores = crf_viterbi(em, mask, start, end, trans)
    for b, n in enumerate(lengths):
        paths = list(itertools.product(range(em.shape[2]), repeat=n))
        scores = torch.stack([_path_score(em[b], p, start, end, trans) for p in paths])
        assert log_z[b].item() == pytest.approx(torch.logsumexp(scores, 0).item(), abs=1e-9)
        assert reference[b].item() == pytest.approx(torch.logsumexp(scores, 0).item(), abs=1e-9)
        assert tuple(best_tags[b, :n].tolist()) == paths[int(scores.argmax())]
        assert best_scores[b].item() == pytest.approx(scores.max().item(), abs=1e-9)
        gold = torch.tensor([paths[len(paths) // 2] + (0,) * (em.shape[1] - n)])
        numerator = crf_sequence_log_score(em[b:b + 1], gold, mask[b:b + 1], start, end, trans)
        assert numerator.item() == pytest.approx(_path_score(em[b], paths[len(paths) // 2], start, end, trans).item())


def test_eq5_marginals_hand_computed_two_tags_two_steps():
    em = torch.tensor([[[1.0, 0.0], [0.0, 2.0]]])
    trans = torch.tensor([[0.5, -1.0], [0.0, 0.2]])
    zero = torch.zeros(2)
    # paths (0,0) 1.5, (0,1) 2.0, (1,0) 0.0, (1,1) 2.2: P(c_1 = 0) = (e^1.5 + e^2) / Z, P(c_2 = 1) = (e^2 + e^2.2) / Z
    z = math.exp(1.5) + math.exp(2.0) + math.exp(0.0) + math.exp(2.2)
    marginals = crf_log_marginals(em, torch.ones(1, 2, dtype=torch.bool), zero, zero, trans).exp()[0]
    expected = [[(math.exp(1.5) + math.exp(2.0)) / z, (math.exp(0.0) + math.exp(2.2)) / z],
                [(math.exp(1.5) + math.exp(0.0)) / z, (math.exp(2.0) + math.exp(2.2)) / z]]
    torch.testing.assert_close(marginals, torch.tensor(expected), atol=1e-6, rtol=0)


@pytest.mark.parametrize("seed", range(4))
def test_marginals_match_brute_force_and_carry_gradients(seed):
    em, mask, start, end, trans, lengths = _random_crf(seed)
    em = em.clone().requires_grad_()
    log_marginals = crf_log_marginals(em, mask, start, end, trans)
    for b, n in enumerate(lengths):
        paths = list(itertools.product(range(em.shape[2]), repeat=n))
        probs = torch.softmax(torch.stack([_path_score(em[b], p, start, end, trans) for p in paths]), 0).detach()
        for i in range(n):
            for k in range(em.shape[2]):
                want = sum(float(q) for q, p in zip(probs, paths, strict=True) if p[i] == k)
                assert log_marginals[b, i, k].exp().item() == pytest.approx(want, abs=1e-9)
        assert log_marginals[b, n:].abs().sum() == 0  # padding
    (log_marginals[:, :, 0].exp() * mask).sum().backward()
    assert em.grad[mask].abs().sum() > 0 and em.grad[~mask].abs().sum() == 0


def test_padding_does_not_change_a_row():
    em, mask, start, end, trans, lengths = _random_crf(1, batch=3, length=5)
    n = lengths[1]
    alone = crf_log_partition(em[1:2, :n], mask[1:2, :n], start, end, trans)
    assert crf_log_partition(em, mask, start, end, trans)[1].item() == pytest.approx(alone.item(), abs=1e-12)
    crf = CRF(3)
    padded_paths = crf.decode(em.float(), mask)
    assert [len(p) for p in padded_paths] == lengths


def test_nll_gradients_reach_every_parameter_and_emissions():
    em, mask, *_ = _random_crf(2)
    em = em.float().requires_grad_()
    crf = CRF(3)
    tags = torch.randint(0, 3, mask.shape)
    loss = crf.nll(em, tags, mask)
    loss.backward()
    assert loss.item() > 0
    for param in (crf.start, crf.end, crf.transitions, em):
        assert param.grad is not None and param.grad.abs().sum() > 0
    # padded positions get no gradient
    assert em.grad[~mask].abs().sum() == 0


def test_matches_pytorch_crf():
    torchcrf = pytest.importorskip("torchcrf")
    em, mask, start, end, trans, _ = _random_crf(3, batch=5, length=6, tags=5)
    theirs = torchcrf.CRF(5, batch_first=True).double()
    ours = CRF(5).double()
    with torch.no_grad():
        for value, params in ((start, (theirs.start_transitions, ours.start)),
                              (end, (theirs.end_transitions, ours.end)),
                              (trans, (theirs.transitions, ours.transitions))):
            for param in params:
                param.copy_(value)
    tags = torch.randint(0, 5, mask.shape)
    assert ours.log_likelihood(em, tags, mask).sum().item() == pytest.approx(
        theirs(em, tags, mask, reduction="sum").item(), abs=1e-9)
    assert ours.decode(em, mask) == theirs.decode(em, mask)


@pytest.mark.parametrize("trans_scale", [5.0, 40.0])
def test_fast_partition_is_stable_with_large_scores(trans_scale):
    em, mask, start, end, trans, _ = _random_crf(4, batch=3, length=6, tags=4)
    # fp32; emissions spanning hundreds, transitions spanning ~20 (matmul path) or ~200 (fallback)
    em, trans = (em * 300).float(), (trans * trans_scale).float()
    fast = crf_log_partition(em, mask, start.float(), end.float(), trans)
    slow = crf_log_partition_reference(em, mask, start.float(), end.float(), trans)
    assert torch.isfinite(fast).all()
    torch.testing.assert_close(fast, slow, rtol=1e-6, atol=1e-3)
