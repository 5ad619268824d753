"""Paper eqs. 8, 9 and 10 and the MGA matrix M, each against values computed by hand."""

from __future__ import annotations

import math

import pytest
import torch

from gemner.recognize.equations import (
    bio_transition_matrix,
    cooccurrence_matrix,
    entropy,
    initial_mga_matrix,
    merge_bio_logits,
    multi_granularity_augmentation,
    multi_granularity_loss,
    normalise_cooccurrence,
)
from gemner.recognize.testing import TINY_SCHEMA


def test_eq8_loss_mixing():
    # 0.1 * 2 + 0.9 * 4 = 3.8
    assert multi_granularity_loss(torch.tensor(2.0), torch.tensor(4.0), 0.1).item() == pytest.approx(3.8)
    assert multi_granularity_loss(torch.tensor(2.0), torch.tensor(4.0), 0.0).item() == pytest.approx(4.0)


def test_bio_transition_matrix_maps_b_to_b_i_to_i_o_to_o():
    m = torch.tensor([[0.25, 0.75]])  # 1 coarse (person) x 2 fine (athlete, politician)
    expected = torch.tensor([
        # O    B-ath  I-ath  B-pol  I-pol
        [1.0, 0.0, 0.0, 0.0, 0.0],    # O
        [0.0, 0.25, 0.0, 0.75, 0.0],  # B-person
        [0.0, 0.0, 0.25, 0.0, 0.75],  # I-person
    ])
    torch.testing.assert_close(bio_transition_matrix(m), expected)


def test_eq9_mga_mixing_by_hand():
    m_tag = bio_transition_matrix(torch.tensor([[0.25, 0.75]]))
    y_coarse = torch.tensor([1.0, 2.0, 3.0])  # O, B-person, I-person
    y_fine = torch.tensor([0.0, 10.0, 20.0, 30.0, 40.0])
    # y_c @ M_tag = [1, 0.5, 0.75, 1.5, 2.25]; 0.1 * that + 0.9 * y_f
    expected = torch.tensor([0.1, 9.05, 18.075, 27.15, 36.225])
    torch.testing.assert_close(multi_granularity_augmentation(y_coarse, y_fine, m_tag, 0.1), expected)


def test_gradient_reaches_m_through_the_tag_matrix():
    m = torch.tensor([[0.25, 0.75]], requires_grad=True)
    out = multi_granularity_augmentation(torch.tensor([1.0, 2.0, 3.0]), torch.zeros(5), bio_transition_matrix(m), 0.1)
    out.sum().backward()
    # d/dM[0, j] = 0.1 * (y_c[B] + y_c[I]) = 0.1 * 5
    torch.testing.assert_close(m.grad, torch.tensor([[0.5, 0.5]]))


def test_cooccurrence_and_both_normalisations():
    counts = cooccurrence_matrix([("a", "x")] * 3 + [("a", "y"), ("b", "y"), ("b", "y")], ["a", "b"], ["x", "y"])
    torch.testing.assert_close(counts, torch.tensor([[3.0, 1.0], [0.0, 2.0]]))
    torch.testing.assert_close(normalise_cooccurrence(counts, "column"), torch.tensor([[1.0, 1 / 3], [0.0, 2 / 3]]))
    torch.testing.assert_close(normalise_cooccurrence(counts, "row"), torch.tensor([[0.75, 0.25], [0.0, 1.0]]))


def test_initial_m_fills_unseen_fine_labels_from_the_schema():
    # coarse (person, place) x fine (athlete, politician, city, country); only athlete/city seen
    m = initial_mga_matrix(TINY_SCHEMA, [("person", "athlete"), ("person", "athlete"), ("place", "city")])
    torch.testing.assert_close(m, torch.tensor([[1.0, 1.0, 0.0, 0.0], [0.0, 0.0, 1.0, 1.0]]))
    row = initial_mga_matrix(TINY_SCHEMA, [("person", "athlete")] * 3, "row")
    # person row: athlete 3 + politician 1 (schema fill) -> 0.75 / 0.25
    torch.testing.assert_close(row[0], torch.tensor([0.75, 0.25, 0.0, 0.0]))


def test_merge_bio_logits_by_logsumexp():
    logits = torch.tensor([5.0, 1.0, 2.0, 0.0, 0.0])  # O, B-x, I-x, B-y, I-y
    merged = merge_bio_logits(logits)
    assert merged.tolist() == pytest.approx([math.log(math.e + math.e ** 2), math.log(2.0)])
    # softmax over merged categories == tag-softmax mass of {B-x, I-x} renormalised without O
    tag_probs = logits.softmax(-1)
    mass_x = (tag_probs[1] + tag_probs[2]) / tag_probs[1:].sum()
    assert merged.softmax(-1)[0].item() == pytest.approx(mass_x.item())


def test_eq10_entropy_by_hand():
    probs = torch.tensor([[0.5, 0.5, 0.0, 0.0], [1.0, 0.0, 0.0, 0.0], [0.25, 0.25, 0.25, 0.25]])
    assert entropy(probs).tolist() == pytest.approx([math.log(2), 0.0, math.log(4)])
    # p = (0.7, 0.2, 0.1): -(0.7 ln 0.7 + 0.2 ln 0.2 + 0.1 ln 0.1) = 0.801819
    assert entropy(torch.tensor([0.7, 0.2, 0.1])).item() == pytest.approx(0.801819, abs=1e-6)
    # H([0.9, 0.1]) = -(0.9 ln 0.9 + 0.1 ln 0.1) = 0.325083...; the sample filter's gamma compares with this
    assert entropy(torch.tensor([0.9, 0.1])).item() == pytest.approx(0.3250829733914482)
