"""Data-parallel training: two gloo processes on CPU train the same recogniser as one process with the
same effective batch, and a two-process run killed mid-epoch resumes to the same weights."""

from __future__ import annotations

import json
import os

import pytest
import torch
from safetensors.torch import load_file

from gemner.distributed import DataParallel, run_processes
from gemner.recognize.config import RecognizerConfig
from gemner.recognize.testing import TINY_SCHEMA, synthetic_posts
from gemner.recognize.train import train_recognizer


def _quiet(_message: str) -> None:
    pass


class _Killed(Exception):
    pass


def _kill_at_step_5(step: int, _loss: float) -> None:
    if step == 5:  # mid epoch 1 (7 steps an epoch); the last state was saved at step 4
        raise _Killed


class _LossRecorder:
    """Appends each process's share loss to `<folder>/rank-<RANK>.txt` (picklable for spawned processes)."""

    def __init__(self, folder):
        self.folder = folder

    def __call__(self, step: int, loss: float) -> None:
        with (self.folder / f"rank-{os.environ.get('RANK', '0')}.txt").open("a") as handle:
            handle.write(f"{step} {loss}\n")


def _weights(folder) -> dict[str, torch.Tensor]:
    return load_file(folder / "last" / "model.safetensors")


@pytest.fixture(scope="module")
def setup(encoder_dir):
    # 25 posts in batches of 4: the last batch holds one post, so one process trains on none of it
    config = RecognizerConfig(encoder=encoder_dir, lr=3e-3, head_lr=1e-2, batch_size=4, epochs=2, dropout=0.0,
                              save_every_steps=2, length_buckets=True)
    return config, synthetic_posts(25, seed=3), synthetic_posts(12, seed=4, prefix="d")


def test_two_processes_train_what_one_process_trains_and_resume_after_a_kill(setup, tmp_path):
    config, train, dev = setup
    one = train_recognizer(config, TINY_SCHEMA, train, dev, tmp_path / "one", progress=False, log=_quiet)
    with pytest.raises(Exception, match="_Killed"):
        run_processes(train_recognizer, 2, config, TINY_SCHEMA, train, dev, tmp_path / "two", progress=False,
                      log=_quiet, on_step=_kill_at_step_5)
    state = json.loads((tmp_path / "two" / "last" / "trainer_state.json").read_text())
    assert state["global_step"] == 4  # the state the main process saved before the kill
    two = run_processes(train_recognizer, 2, config, TINY_SCHEMA, train, dev, tmp_path / "two", resume=True,
                        progress=False, log=_quiet, on_step=_LossRecorder(tmp_path))
    losses = [(tmp_path / f"rank-{rank}.txt").read_text().splitlines() for rank in (0, 1)]
    assert len(losses[0]) == len(losses[1]) == 10 and losses[0] != losses[1]  # each process its own posts
    state = json.loads((tmp_path / "two" / "last" / "trainer_state.json").read_text())
    assert state["global_step"] == 14  # 7 steps of the effective batch an epoch, not 14 half batches
    a, b = _weights(tmp_path / "one"), _weights(tmp_path / "two")
    assert a.keys() == b.keys()
    for key in a:
        torch.testing.assert_close(b[key], a[key], rtol=1e-4, atol=1e-5, msg=key)
    assert [h["mner_f1"] for h in two.history] == [h["mner_f1"] for h in one.history]
    # the comparison can fail: one process on the per-process share (batch 2) trains another model
    half = config.model_copy(update={"batch_size": 2})
    train_recognizer(half, TINY_SCHEMA, train, dev, tmp_path / "half", progress=False, log=_quiet)
    c = _weights(tmp_path / "half")
    assert any(not torch.allclose(c[key], a[key], rtol=1e-4, atol=1e-5) for key in a)


def test_shares_cover_each_batch_once():
    batch = list(range(7))
    shares = [DataParallel(rank, 3).share(batch) for rank in range(3)]
    assert sorted(i for share in shares for i in share) == batch
    weights = [DataParallel(rank, 3).loss_weight(len(share), len(batch)) for rank, share in enumerate(shares)]
    assert sum(weights) / 3 == pytest.approx(1.0)  # the averaged gradient is the batch mean's


def test_accumulating_two_micro_batches_trains_what_the_whole_batch_trains(setup, tmp_path):
    config, train, dev = setup
    config = config.model_copy(update={"epochs": 1})
    train_recognizer(config, TINY_SCHEMA, train, dev, tmp_path / "whole", progress=False, log=_quiet)
    lines: list[str] = []
    accumulated = config.model_copy(update={"accumulate": 2})  # micro-batches of 2 posts
    train_recognizer(accumulated, TINY_SCHEMA, train, dev, tmp_path / "acc", progress=False, log=lines.append)
    assert "effective batch 4 posts = 1 process(es) x 2 accumulation step(s) x 2 posts per micro-batch" in lines
    a, b = _weights(tmp_path / "whole"), _weights(tmp_path / "acc")
    for key in a:
        torch.testing.assert_close(b[key], a[key], rtol=1e-4, atol=1e-5, msg=key)
