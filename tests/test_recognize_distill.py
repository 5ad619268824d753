"""Distillation: a student learns the teachers' fine-tag distributions (CRF marginals), alone or with gold."""

from __future__ import annotations

import json
import math
from dataclasses import replace

import pytest
import torch
from typer.testing import CliRunner

from gemner.cli.main import app
from gemner.data.issues import DataError
from gemner.data.schema import LabelSchema
from gemner.data.types import Post
from gemner.recognize.config import RecognizerConfig
from gemner.recognize.crf import CRF
from gemner.recognize.distill import TARGETS_FILE, load_targets, soft_target_loss, teacher_targets
from gemner.recognize.model import Recognizer
from gemner.recognize.testing import TINY_SCHEMA, synthetic_posts
from gemner.recognize.train import train_recognizer


def _quiet(_message: str) -> None:
    pass


def test_the_soft_target_loss_is_the_cross_entropy_against_the_students_marginals() -> None:
    # one word, two tags, emissions (0, ln 3): the student says (1/4, 3/4); the teachers (1/2, 1/2)
    emissions = torch.tensor([[[0.0, math.log(3.0)], [5.0, 0.0]]])
    targets = torch.tensor([[[0.5, 0.5], [0.0, 0.0]]])  # the second word has no target
    mask = torch.tensor([[True, True]])
    hand = -0.5 * math.log(1 / 4) - 0.5 * math.log(3 / 4)
    assert soft_target_loss(emissions, targets, None, mask).item() == pytest.approx(hand, abs=1e-6)
    # a CRF with zero transitions, start and end scores has the per-word softmax as its marginals
    assert soft_target_loss(emissions, targets, CRF(2), mask).item() == pytest.approx(hand, abs=1e-6)
    crf = CRF(2)
    with torch.no_grad():
        crf.transitions.copy_(torch.tensor([[2.0, -2.0], [-2.0, 2.0]]))  # now the neighbours count
    assert soft_target_loss(emissions, targets, crf, mask).item() != pytest.approx(hand, abs=1e-3)
    assert soft_target_loss(emissions, torch.zeros_like(targets), crf, mask).item() == 0.0


@pytest.fixture(scope="module")
def teacher(wide_encoder_dir, tmp_path_factory):
    """A tiny recogniser that knows the synthetic task (the `test_recognize_train` recipe)."""
    torch.set_num_threads(1)
    config = RecognizerConfig(encoder=wide_encoder_dir, lr=3e-3, head_lr=1e-2, batch_size=16, epochs=5,
                              warmup_ratio=0.1, length_buckets=True)
    folder = tmp_path_factory.mktemp("teacher")
    result = train_recognizer(config, TINY_SCHEMA, synthetic_posts(320, seed=1),
                              synthetic_posts(80, seed=2, prefix="d"), folder, progress=False, log=_quiet)
    assert result.best_dev_f1 > 95
    return folder


def test_teacher_targets_are_distributions_that_agree_with_the_teacher(teacher) -> None:
    posts = synthetic_posts(30, seed=5, prefix="t")
    one = teacher_targets([teacher], TINY_SCHEMA, posts, None, log=_quiet)
    assert [tuple(t.shape) for t in one] == [(len(p.tokens), len(TINY_SCHEMA.tags)) for p in posts]
    assert all(t.dtype == torch.float16 for t in one)
    sums = torch.cat(one).float().sum(-1)
    torch.testing.assert_close(sums, torch.ones_like(sums), atol=2e-3, rtol=0)
    tags = {t: i for i, t in enumerate(TINY_SCHEMA.tags)}
    gold = [tags[f"B-{e.type}"] for p in posts for e in p.entities]
    guessed = [int(t[e.start].argmax()) for p, t in zip(posts, one, strict=True) for e in p.entities]
    assert sum(g == h for g, h in zip(gold, guessed, strict=True)) >= 0.9 * len(gold)
    empty = teacher_targets([teacher], TINY_SCHEMA, [Post("e", []), posts[0]], None, log=_quiet)
    assert tuple(empty[0].shape) == (0, len(TINY_SCHEMA.tags))
    torch.testing.assert_close(empty[1].float(), one[0].float(), atol=1e-3, rtol=0)  # batched otherwise
    twice = teacher_targets([teacher, teacher], TINY_SCHEMA, posts, None, log=_quiet)  # the mean of equals
    for a, b in zip(one, twice, strict=True):
        torch.testing.assert_close(a.float(), b.float(), atol=1e-3, rtol=0)


def test_a_student_learns_the_task_from_the_teacher_alone(teacher, wide_encoder_dir, tmp_path) -> None:
    """Its gold tags are all O (every entity removed) and weigh nothing: what it knows comes from the teacher."""
    torch.set_num_threads(1)
    train = [replace(post, entities=[]) for post in synthetic_posts(320, seed=1)]
    dev = synthetic_posts(80, seed=2, prefix="d")
    config = RecognizerConfig(encoder=wide_encoder_dir, lr=3e-3, head_lr=1e-2, batch_size=16, epochs=5,
                              warmup_ratio=0.1, length_buckets=True, mgp=False, teachers=[str(teacher)],
                              distill_weight=1.0, seed=7)
    lines: list[str] = []
    result = train_recognizer(config, TINY_SCHEMA, train, dev, tmp_path / "student", progress=False,
                              log=lines.append)
    assert result.best_dev_f1 > 90, result.history
    blind = config.model_copy(update={"teachers": [], "epochs": 1})  # the same gold, no teacher: nothing learnt
    alone = train_recognizer(blind, TINY_SCHEMA, train, dev, tmp_path / "alone", progress=False, log=_quiet)
    assert alone.best_dev_f1 < 5
    stored = json.loads((tmp_path / "student" / "config.json").read_text())["recognizer"]
    assert stored["teachers"] == [str(teacher)] and stored["distill_weight"] == 1.0
    # the targets were kept beside the run: a resumed run reads them instead of running the teacher again
    assert load_targets(tmp_path / "student" / TARGETS_FILE, [str(teacher)], train) is not None
    assert load_targets(tmp_path / "student" / TARGETS_FILE, ["another"], train) is None
    ran_teacher = f"teacher {teacher}: reading"
    assert any(line.startswith(ran_teacher) for line in lines)
    more = config.model_copy(update={"epochs": 6})
    lines.clear()
    train_recognizer(more, TINY_SCHEMA, train, dev, tmp_path / "student", resume=True, progress=False,
                     log=lines.append)
    assert any("read from" in line for line in lines) and not any(line.startswith(ran_teacher) for line in lines)


def test_a_teacher_with_other_labels_is_refused(wide_encoder_dir, tmp_path) -> None:
    other = LabelSchema(name="other", labels=("PER", "LOC"), coarse_labels=("PER", "LOC"),
                        coarse_of={"PER": "PER", "LOC": "LOC"})
    config = RecognizerConfig(encoder=wide_encoder_dir)
    Recognizer.build(config, other).save_pretrained(tmp_path / "other")
    with pytest.raises(DataError, match="other labels than the student"):
        teacher_targets([tmp_path / "other"], TINY_SCHEMA, synthetic_posts(3), None, log=_quiet)


def test_the_command_trains_a_student_of_several_teachers(encoder_dir, tmp_path) -> None:
    runner = CliRunner()
    common = ["--dataset", "fmnerg", "--preset", "lite", "--encoder", encoder_dir, "--max-train-posts", "24",
              "--max-dev-posts", "12", "--epochs", "1", "--batch-size", "8", "--no-progress", "--threads", "1"]
    for seed in (1, 2):
        result = runner.invoke(app, ["train", "recognizer", *common, "--seed", str(seed),
                                     "--output", str(tmp_path / f"s{seed}")])
        assert result.exit_code == 0, result.output
    result = runner.invoke(app, ["train", "recognizer", *common, "--teacher", str(tmp_path / "s1"),
                                 "--teacher", str(tmp_path / "s2"), "--distill-weight", "0.7",
                                 "--output", str(tmp_path / "student")])
    assert result.exit_code == 0, result.output
    stored = json.loads((tmp_path / "student" / "config.json").read_text())["recognizer"]
    assert stored["teachers"] == [str(tmp_path / "s1"), str(tmp_path / "s2")] and stored["distill_weight"] == 0.7
    assert (tmp_path / "student" / TARGETS_FILE).is_file()
