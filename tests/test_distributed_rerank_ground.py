"""Data-parallel training and gradient accumulation of the reranker and the grounder (gloo, CPU).

For each trainer: two processes with two accumulation steps, killed mid-run and resumed, end with the
weights of one uninterrupted process at the same effective batch; accumulation alone (one process,
micro-batches of half the batch) equals the whole batch; and a run at another batch does not (so the
comparisons can fail)."""

from __future__ import annotations

import json

import pytest
import torch
from safetensors.torch import load_file

from gemner.data import FMNERG_SCHEMA
from gemner.data.synthetic import write_synthetic_benchmark
from gemner.distributed import describe_batch, run_processes
from gemner.ground.checkpoint import train_grounder_checkpoint
from gemner.ground.config import GrounderTrainConfig
from gemner.ground.tiny import TinyItmSpec, build_tiny_itm, save_tiny_itm
from gemner.rerank.config import RerankerConfig
from gemner.rerank.train import train_reranker_on_dataset

ADAPTER = "adapter_model.safetensors"


def _quiet(_message: str) -> None:
    pass


class _Killed(Exception):
    pass


def _kill_at_step_3(step: int, _loss: float) -> None:
    if step == 3:  # the last state was saved at step 2
        raise _Killed


def _assert_same(a: dict[str, torch.Tensor], b: dict[str, torch.Tensor]) -> None:
    assert a.keys() == b.keys() and a
    for key in a:
        torch.testing.assert_close(b[key], a[key], rtol=1e-4, atol=1e-6, msg=key)


def _differs(a: dict[str, torch.Tensor], b: dict[str, torch.Tensor]) -> bool:
    return any(not torch.allclose(a[key], b[key], rtol=1e-4, atol=1e-6) for key in a)


def _relative_distance(trained: dict[str, torch.Tensor], other: dict[str, torch.Tensor],
                       start: dict[str, torch.Tensor]) -> float:
    """|other - trained| / |trained - start| over all weights: how far apart two runs end, measured in
    the length of the training's own step. (Per-weight equality does not hold for a full fine-tune:
    attention key biases have a gradient that is mathematically zero, and Adam turns its float-order
    noise into steps of up to lr.)"""
    keys = [key for key in trained if trained[key].is_floating_point()]
    apart = sum(float(((other[k] - trained[k]).double() ** 2).sum()) for k in keys)
    moved = sum(float(((trained[k] - start[k]).double() ** 2).sum()) for k in keys)
    return (apart / moved) ** 0.5


@pytest.fixture(scope="module")
def bench(tmp_path_factory):
    folder = tmp_path_factory.mktemp("bench") / "synthetic"
    write_synthetic_benchmark(folder, posts=40, seed=2)
    return folder


def test_describe_batch_states_the_arithmetic():
    assert describe_batch(16, 2, 2, "posts") == ("effective batch 16 posts = 2 process(es) x 2 accumulation step(s) "
                                                 "x 4 posts per micro-batch")
    assert "up to 3" in describe_batch(10, 2, 2, "images")
    assert "some processes get no items" in describe_batch(2, 2, 2, "images")


def test_reranker_two_processes_accumulating_and_resumed_train_what_one_process_trains(bench, tiny_chat_lm,
                                                                                       tmp_path):
    # 24 entities in batches of 8: 3 steps an epoch, 6 in all; with 2 processes x 2 micro-batches, 2 a micro-batch
    config = RerankerConfig(model=tiny_chat_lm, lr=1e-3, epochs=2, batch_size=8, lora_rank=4, lora_alpha=8,
                            lora_dropout=0.0, warmup_ratio=0.0, max_train=24, bf16=False)
    common = {"dev_max": 0, "device": "cpu", "log": _quiet, "save_every": 2}
    one = train_reranker_on_dataset(config, bench, tmp_path / "one", **common)
    assert one["steps"] == 6
    parallel = config.model_copy(update={"accumulate": 2})
    with pytest.raises(Exception, match="_Killed"):
        run_processes(train_reranker_on_dataset, 2, parallel, bench, tmp_path / "two", on_step=_kill_at_step_3,
                      **common)
    assert json.loads((tmp_path / "two" / "checkpoint" / "trainer_state.json").read_text())["step"] == 2
    two = run_processes(train_reranker_on_dataset, 2, parallel, bench, tmp_path / "two", **common)
    assert two["resumed_from"] == 2 and two["steps"] == 6
    reference = load_file(tmp_path / "one" / ADAPTER)
    _assert_same(reference, load_file(tmp_path / "two" / ADAPTER))
    logged = [json.loads(line)["loss"] for line in (tmp_path / "one" / "train_log.jsonl").read_text().splitlines()]
    resumed = [json.loads(line)["loss"] for line in (tmp_path / "two" / "train_log.jsonl").read_text().splitlines()]
    assert resumed == pytest.approx(logged, rel=1e-4)  # the whole batch's loss, not one process's share
    # accumulation alone: micro-batches of 4 in one process, and the control: a batch of 4 trains another model
    train_reranker_on_dataset(parallel, bench, tmp_path / "acc", **common)
    _assert_same(reference, load_file(tmp_path / "acc" / ADAPTER))
    train_reranker_on_dataset(config.model_copy(update={"batch_size": 4}), bench, tmp_path / "half", **common)
    assert _differs(reference, load_file(tmp_path / "half" / ADAPTER))


@pytest.fixture(scope="module")
def tiny_itm(bench, tmp_path_factory):
    words = {w.lower() for path in (bench / "txt").glob("*.txt") for row in path.read_text().splitlines()
             for w in row.split("\t")[:1] if w and not w.startswith("IMGID:")}
    model = build_tiny_itm(sorted(words | set(FMNERG_SCHEMA.labels)), TinyItmSpec(image_size=32, hidden_size=32))
    return save_tiny_itm(*model, tmp_path_factory.mktemp("tiny-itm"))


def test_grounder_two_processes_accumulating_and_resumed_train_what_one_process_trains(bench, tiny_itm, tmp_path):
    # 12 train posts with images in batches of 4 images: 3 steps an epoch, 6 in all
    config = GrounderTrainConfig(lr=1e-3, epochs=2, images_per_batch=4, save_every_steps=2, positive_weight=2.0)
    common = {"base_model": str(tiny_itm), "tune": False, "max_posts": 12, "device": "cpu", "log": _quiet}
    settings = train_grounder_checkpoint(bench, bench / "images", tmp_path / "one", config=config, **common)
    assert settings["steps"] == 6
    parallel = config.model_copy(update={"accumulate": 2})
    with pytest.raises(Exception, match="_Killed"):
        run_processes(train_grounder_checkpoint, 2, bench, bench / "images", tmp_path / "two", config=parallel,
                      on_step=_kill_at_step_3, **common)
    assert json.loads((tmp_path / "two" / "last" / "trainer_state.json").read_text())["steps"] == 2
    two = run_processes(train_grounder_checkpoint, 2, bench, bench / "images", tmp_path / "two", config=parallel,
                        **common)
    assert two["steps"] == 6
    reference, start = load_file(tmp_path / "one" / "model.safetensors"), load_file(tiny_itm / "model.safetensors")
    assert _relative_distance(reference, load_file(tmp_path / "two" / "model.safetensors"), start) < 0.02
    train_grounder_checkpoint(bench, bench / "images", tmp_path / "acc", config=parallel, **common)
    assert _relative_distance(reference, load_file(tmp_path / "acc" / "model.safetensors"), start) < 0.02
    other = config.model_copy(update={"images_per_batch": 2})
    train_grounder_checkpoint(bench, bench / "images", tmp_path / "half", config=other, **common)
    assert _relative_distance(reference, load_file(tmp_path / "half" / "model.safetensors"), start) > 0.3
    with pytest.raises(Exception, match="other training settings"):  # a resumed run keeps its recipe
        train_grounder_checkpoint(bench, bench / "images", tmp_path / "one", config=other, **common)
