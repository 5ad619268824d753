"""`predict_with_ray` on a local two-CPU Ray cluster: the same records as the local engine, post by
post; per-shard resume; an actor killed mid-run loses and duplicates nothing."""

from __future__ import annotations

import json
import os
import signal
from pathlib import Path

import pytest

ray = pytest.importorskip("ray")

from gemner.data.userio import read_prediction_records  # noqa: E402
from gemner.pipeline.config import PipelineConfig  # noqa: E402
from gemner.pipeline.gem import GEM  # noqa: E402
from gemner.pipeline.predict import predict_to_file  # noqa: E402
from gemner.pipeline.ray_engine import MANIFEST, REJECTED, predict_with_ray, shard_path  # noqa: E402
from gemner.recognize.config import RecognizerConfig  # noqa: E402
from gemner.recognize.testing import TINY_SCHEMA, synthetic_posts  # noqa: E402
from gemner.recognize.train import train_recognizer  # noqa: E402

N_POSTS = 200


@pytest.fixture(scope="module")
def cluster():
    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False,
             runtime_env={"env_vars": {"OMP_NUM_THREADS": "1", "PYTHONPATH": os.environ.get("PYTHONPATH", "")}})
    yield
    ray.shutdown()


@pytest.fixture(scope="module")
def pipeline(tmp_path_factory, wide_encoder_dir) -> PipelineConfig:
    root = tmp_path_factory.mktemp("ray-models")
    config = RecognizerConfig(encoder=wide_encoder_dir, lr=3e-3, head_lr=1e-2, batch_size=16, epochs=2)
    train_recognizer(config, TINY_SCHEMA, synthetic_posts(160, seed=1), synthetic_posts(20, seed=2, prefix="d"),
                     root / "recognizer", progress=False, log=lambda _m: None)
    return PipelineConfig.model_validate({"name": "tiny", "knowledge": {"enabled": False},
                                          "recognizer": {"model": str(root / "recognizer")},
                                          "rerank": {"enabled": False}, "ground": {"enabled": False}})


@pytest.fixture(scope="module")
def local_records(pipeline, tmp_path_factory) -> dict[str, dict]:
    output = tmp_path_factory.mktemp("local") / "predictions.jsonl"
    predict_to_file(GEM(pipeline), synthetic_posts(N_POSTS, seed=5, prefix="p"), output, batch_size=8)
    return {r["id"]: r for r in read_prediction_records(output)}


def _records(folder: Path) -> list[dict]:
    return [r for path in sorted(folder.glob("part-*.jsonl")) for r in read_prediction_records(path)]


def test_ray_output_equals_the_local_engine_post_by_post(cluster, pipeline, local_records, tmp_path):
    rejected = [("broken-1", "line 3: no text or tokens")]
    counts = predict_with_ray(pipeline, synthetic_posts(N_POSTS, seed=5, prefix="p"), tmp_path, actors=2,
                              shard_size=40, batch_size=8, rejected=rejected)
    records = _records(tmp_path)
    assert counts.written == N_POSTS + 1 and counts.shards == 5 and counts.skipped_shards == 0
    assert [r["id"] for r in records] == list(local_records)  # every post once, in input order
    assert read_prediction_records(tmp_path / REJECTED) == [
        {"id": "broken-1", "tokens": [], "image": None, "entities": [], "error": "line 3: no text or tokens"}]
    assert sum(bool(r["entities"]) for r in records) > N_POSTS // 2, "the trained recogniser finds entities"
    for record in records:
        assert record == local_records[record["id"]]


@pytest.mark.slow  # each Ray run starts its actors (~8 s); resuming is also covered by the object-storage test
def test_finished_shards_are_skipped_on_rerun(cluster, pipeline, local_records, tmp_path):
    posts = synthetic_posts(N_POSTS, seed=5, prefix="p")
    predict_with_ray(pipeline, posts, tmp_path, actors=1, shard_size=40, batch_size=8)
    cut = shard_path(tmp_path, 2)  # a run killed while writing shard 2: keep 7 of its posts
    cut.write_text("".join(cut.read_text().splitlines(keepends=True)[:7]))
    shard_path(tmp_path, 4).unlink()
    shards_written = []
    counts = predict_with_ray(pipeline, posts, tmp_path, actors=1, shard_size=40, batch_size=8,
                              on_shard=lambda index, _pid: shards_written.append(index))
    assert sorted(shards_written) == [2, 4] and counts.skipped_shards == 3
    assert counts.written == 33 + 40
    assert [r["id"] for r in _records(tmp_path)] == list(local_records)
    with pytest.raises(Exception, match="shard"):
        predict_with_ray(pipeline, posts, tmp_path, shard_size=48, batch_size=8)
    assert json.loads((tmp_path / MANIFEST).read_text())["shard_size"] == 40
    predict_with_ray(pipeline, posts, tmp_path, shard_size=48, batch_size=8, resume=False)  # starts over
    assert len(list(tmp_path.glob("part-*.jsonl"))) == 5 and [r["id"] for r in _records(tmp_path)] == list(
        local_records)


def test_a_killed_actor_loses_and_duplicates_nothing(cluster, pipeline, local_records, tmp_path):
    killed: list[int] = []

    def kill_the_first_worker(_index: int, pid: int) -> None:
        if not killed:
            os.kill(pid, signal.SIGKILL)  # its next shard is in flight or queued: Ray must restart and retry
            killed.append(pid)

    counts = predict_with_ray(pipeline, synthetic_posts(N_POSTS, seed=5, prefix="p"), tmp_path, actors=2,
                              shard_size=16, batch_size=8, on_shard=kill_the_first_worker)
    records = _records(tmp_path)
    assert killed and counts.written == N_POSTS
    assert counts.workers >= 3, "the killed actor was restarted (a new process returned shards)"
    assert [r["id"] for r in records] == list(local_records)
    assert all(record == local_records[record["id"]] for record in records)


@pytest.mark.slow  # the CLI's --engine ray is also covered by test_cli_reads_a_file_uri_and_writes_to_a_bucket
def test_cli_engine_ray_writes_the_local_records(cluster, pipeline, local_records, tmp_path):
    from typer.testing import CliRunner

    from gemner.cli.main import app

    posts = tmp_path / "posts.jsonl"
    lines = [json.dumps({"id": p.id, "tokens": p.tokens}) for p in synthetic_posts(40, seed=5, prefix="p")]
    posts.write_text("\n".join([*lines, '{"id": "bad", "tokens": 3}']) + "\n")
    config = tmp_path / "tiny.yaml"
    config.write_text(json.dumps(pipeline.model_dump(mode="json")))
    output = tmp_path / "out"
    result = CliRunner().invoke(app, ["predict", "--config", str(config), "--input", str(posts), "--output",
                                      str(output), "--engine", "ray", "--actors", "2", "--batch-size", "8",
                                      "--no-progress"])
    assert result.exit_code == 0, result.output
    records = _records(output)
    assert [r["id"] for r in records] == [f"p{i}" for i in range(40)]
    assert all(record == local_records[record["id"]] for record in records)
    assert [r["id"] for r in read_prediction_records(output / REJECTED)] == ["bad"]


def _memory_records(fs, folder: str) -> list[dict]:
    names = sorted(name for name in fs.ls(folder, detail=False) if name.rsplit("/", 1)[-1].startswith("part-"))
    return [json.loads(line) for name in names for line in fs.cat_file(name).decode().splitlines()]


def test_posts_and_shards_on_object_storage_resume_from_the_bucket(cluster, pipeline, local_records, tmp_path):
    fsspec = pytest.importorskip("fsspec")
    from gemner.data.userio import iter_posts

    bucket = f"memory://gemner-ray-{os.getpid()}-{tmp_path.name}"
    with fsspec.open(f"{bucket}/posts.jsonl", "w") as handle:
        handle.write("".join(json.dumps({"id": p.id, "tokens": p.tokens}) + "\n"
                             for p in synthetic_posts(48, seed=5, prefix="p")))
    posts = list(iter_posts(f"{bucket}/posts.jsonl"))  # read on the driver, through the one validator
    counts = predict_with_ray(pipeline, posts, f"{bucket}/run", shard_size=16, batch_size=8,
                              staging=tmp_path / "staging")
    assert counts.written == 48 and counts.shards == 3
    fs = fsspec.filesystem("memory")
    records = _memory_records(fs, f"{bucket}/run")
    assert [r["id"] for r in records] == [f"p{i}" for i in range(48)]
    assert all(record == local_records[record["id"]] for record in records)
    assert json.loads(fs.cat_file(f"{bucket}/run/{MANIFEST}"))["shards"] == 3
    # another driver (an empty staging folder) resumes from what the bucket holds: nothing is predicted again
    fs.rm(f"{bucket}/run/part-00001.jsonl")
    sent = []
    again = predict_with_ray(pipeline, posts, f"{bucket}/run", shard_size=16, batch_size=8,
                             staging=tmp_path / "elsewhere", on_shard=lambda index, _pid: sent.append(index))
    assert sent == [1] and again.skipped_shards == 2 and again.written == 16
    assert [r["id"] for r in _memory_records(fs, f"{bucket}/run")] == [f"p{i}" for i in range(48)]


def test_cli_reads_a_file_uri_and_writes_to_a_bucket(cluster, pipeline, local_records, tmp_path):
    fsspec = pytest.importorskip("fsspec")
    from typer.testing import CliRunner

    from gemner.cli.main import app

    posts = tmp_path / "posts.jsonl"
    posts.write_text("".join(json.dumps({"id": p.id, "tokens": p.tokens}) + "\n"
                             for p in synthetic_posts(24, seed=5, prefix="p")))
    config = tmp_path / "tiny.yaml"
    config.write_text(json.dumps(pipeline.model_dump(mode="json")))
    output = f"memory://gemner-cli-{os.getpid()}-{tmp_path.name}/run"
    result = CliRunner().invoke(app, ["predict", "--config", str(config), "--input", posts.as_uri(), "--output",
                                      output, "--engine", "ray", "--batch-size", "8", "--no-progress"])
    assert result.exit_code == 0, result.output
    records = _memory_records(fsspec.filesystem("memory"), output)
    assert [r["id"] for r in records] == [f"p{i}" for i in range(24)]
    assert all(record == local_records[record["id"]] for record in records)
    local = CliRunner().invoke(app, ["predict", "--config", str(config), "--input", posts.as_uri(), "--output",
                                     output + ".jsonl"])
    assert local.exit_code != 0 and "needs --engine ray" in local.output
