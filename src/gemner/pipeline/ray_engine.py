"""Batch prediction on a Ray cluster (Ray Data): the same records as `predict_to_file`, written as shards.

The posts are cut into shards of `shard_size` posts (a multiple of `batch_size`, so every model batch
holds the same posts as in the local engine). Each pending shard is one Ray Data block; `map_batches`
hands it to a pool of `_GEMActor`s (one pipeline load per actor, `actors` of them, `gpus_per_actor`
each) and the driver writes what comes back to `<output>/part-NNNNN.jsonl` through the one resumable
writer (`PredictionWriter`), so the output needs no file system shared with the workers.

* **Resumable per shard**: a shard whose file already holds every one of its posts is not sent again; a
  shard cut short is sent again and only its missing posts are written. `shards.json` records the
  sharding, and a rerun with another `shard_size` or other posts is refused rather than mixed.
* **Object storage**: the output folder may be a URI (`s3://`, `gs://`, `file://`, any fsspec scheme);
  the shards are written to a local staging folder and each finished one is copied up (`data.remote`).
* **Nothing lost, nothing twice**: an actor that dies is restarted by Ray and its shard retried (the
  actor pool's defaults: unlimited `max_restarts` and `max_task_retries`); the writer skips ids it
  already holds, so a retried shard never duplicates a post. A post that fails inside the pipeline
  gets its error record, as in the local engine.

Ray is an optional dependency (`pip install 'gemner[ray]'`); it is imported only when this runs.
"""

from __future__ import annotations

import json
import os
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ..data.issues import DataError
from ..data.remote import MirroredFolder, is_uri, local_path
from ..data.types import Post
from ..data.writer import PredictionWriter
from .config import PipelineConfig

MANIFEST = "shards.json"
REJECTED = "rejected.jsonl"  # error records of the input posts that could not be read


@dataclass
class RayCounts:
    """What one Ray run did to its output folder."""

    shards: int = 0  # shards of the whole input
    skipped_shards: int = 0  # shards found finished and not sent again
    written: int = 0  # records written by this run
    errors: int = 0  # of which carry an "error"
    workers: int = 0  # distinct actor processes that returned a shard (restarted actors count again)

    def summary(self) -> str:
        return (f"{self.written} posts in {self.shards - self.skipped_shards} shards ({self.skipped_shards} of "
                f"{self.shards} shards already there, {self.errors} posts with an error, {self.workers} workers)")


def shard_path(output_dir: str | Path, index: int) -> Path:
    return Path(output_dir) / f"part-{index:05d}.jsonl"


def _post_json(post: Post) -> dict[str, Any]:
    """What an actor needs of a post (a prediction record carries no gold entities)."""
    return {"id": post.id, "tokens": post.tokens, "image": str(post.image) if post.image is not None else None,
            "image_size": list(post.image_size) if post.image_size else None}


def _post_from_json(data: dict[str, Any]) -> Post:
    return Post(data["id"], list(data["tokens"]), image=Path(data["image"]) if data["image"] else None,
                image_size=tuple(data["image_size"]) if data["image_size"] else None)


class _GEMActor:
    """One pipeline per actor process; `__call__` predicts whole shards (a Ray Data batch of rows)."""

    def __init__(self, config_json: str, batch_size: int, trust_remote_code: bool, threads: int | None):
        from .gem import GEM

        if threads:
            import torch

            torch.set_num_threads(threads)
        self.gem = GEM(PipelineConfig.model_validate_json(config_json), trust_remote_code=trust_remote_code)
        self.batch_size = batch_size

    def __call__(self, batch: dict[str, Any]) -> dict[str, Any]:
        import numpy as np

        records = []
        for posts_json in batch["posts"]:
            posts = [_post_from_json(p) for p in json.loads(str(posts_json))]
            results = self.gem.predict_batch(posts, batch_size=self.batch_size)
            records.append(json.dumps([result.record() for result in results], ensure_ascii=False))
        return {"shard": np.asarray(batch["shard"]), "records": np.asarray(records, dtype=object),
                "worker_pid": np.full(len(records), os.getpid())}


def _check_manifest(output_dir: Path, shards: list[list[str]], shard_size: int, resume: bool) -> None:
    """Refuse to resume a folder cut into other shards (its posts would land twice); else record ours."""
    manifest = {"shard_size": shard_size, "shards": len(shards), "first_ids": [ids[0] if ids else None
                                                                                for ids in shards]}
    path = output_dir / MANIFEST
    if resume and path.exists():
        try:
            stored = json.loads(path.read_text(encoding="utf-8"))
        except ValueError:
            stored = None
        if stored != manifest:
            raise DataError(f"{output_dir} holds shards of other posts or another --shard-size ({path}); "
                            "rerun with the same input and shard size, or choose another --output")
    output_dir.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(manifest) + "\n", encoding="utf-8")


def _finished(path: Path, ids: Sequence[str], retry_errors: bool) -> bool:
    if not path.exists():
        return False
    with PredictionWriter(path, retry_errors=retry_errors) as writer:
        return set(ids) <= writer.done_ids


def _write_shard(path: Path, records: list[dict[str, Any]], retry_errors: bool, counts: RayCounts) -> None:
    with PredictionWriter(path, retry_errors=retry_errors) as writer:
        for record in writer.pending(records, key=lambda item: item["id"]):
            writer.write(record)
    counts.written += writer.counts.written
    counts.errors += writer.counts.errors


def _output_folder(output: str | Path, staging: str | Path | None, resume: bool) -> tuple[Path, MirroredFolder | None]:
    """The local folder the shards are written to, and the remote folder it mirrors (None: local output)."""
    if is_uri(output):
        local = local_path(str(output))
        if local is not None:  # file://: the folder itself
            return local, None
        mirror = MirroredFolder.open(str(output), staging)
        if resume:
            mirror.pull()
        return mirror.local, mirror
    return Path(output), None


def predict_with_ray(config: PipelineConfig, posts: Sequence[Post], output_dir: str | Path, *,
                     rejected: Sequence[tuple[str, str]] = (), actors: int = 1, gpus_per_actor: float = 0.0,
                     cpus_per_actor: float = 1.0, threads_per_actor: int | None = None, shard_size: int = 256,
                     batch_size: int = 16, resume: bool = True, retry_errors: bool = True,
                     trust_remote_code: bool = False, address: str | None = None,
                     on_shard: Callable[[int, int], None] | None = None,
                     staging: str | Path | None = None) -> RayCounts:
    """Predict `posts` on Ray and write one predictions JSONL per shard in `output_dir`.

    `output_dir`: a local folder, or a URI (`s3://bucket/run/`, `gs://...`, `file:///...`,
    `gemner.data.remote`): the shards are then written to `staging` (default: a folder of the user
    cache) and each is copied up as it is finished; a rerun first copies the remote folder back, so it
    resumes from what the remote holds. `rejected`: (post id, reason) of input posts that could not be
    read; they get error records in `<output>/rejected.jsonl` (rewritten on each run, like the local
    engine retries them). `address`: the cluster to join (`"auto"`, `"ray://host:10001"`); None starts a
    local one unless Ray is already initialised. `on_shard(shard index, worker pid)` runs as each shard
    is written.
    """
    import ray

    if shard_size <= 0 or shard_size % batch_size:
        raise ValueError(f"shard_size ({shard_size}) must be a positive multiple of batch_size ({batch_size})")
    output_dir, mirror = _output_folder(output_dir, staging, resume)
    if output_dir.exists() and not output_dir.is_dir():
        raise DataError(f"--output {output_dir} is a file; the Ray engine writes a folder of shards")
    chunks = [list(posts[start:start + shard_size]) for start in range(0, len(posts), shard_size)]
    shard_ids = [[p.id for p in chunk] for chunk in chunks]
    _check_manifest(output_dir, shard_ids, shard_size, resume)
    counts = RayCounts(shards=len(chunks))
    if not resume:  # every shard of an earlier run goes, also those past this run's last shard
        for path in output_dir.glob("part-*.jsonl"):
            path.unlink()
        for name in mirror.remote_names() if mirror else ():
            if name.startswith("part-"):
                mirror.delete(name)
    uploaded = mirror.push if mirror else (lambda _name: None)
    uploaded(MANIFEST)
    pending = []
    for index, ids in enumerate(shard_ids):
        path = shard_path(output_dir, index)
        if resume and _finished(path, ids, retry_errors):
            counts.skipped_shards += 1
            continue
        pending.append(index)
    if rejected or (output_dir / REJECTED).exists():
        with PredictionWriter(output_dir / REJECTED, resume=resume, retry_errors=retry_errors) as writer:
            for post_id, reason in writer.pending(rejected, key=lambda item: item[0]):
                writer.write_error(post_id, reason)
        counts.written += writer.counts.written
        counts.errors += writer.counts.errors
        uploaded(REJECTED)
    pending = [i for i in pending if chunks[i]]
    if not pending:
        return counts
    if not ray.is_initialized():
        ray.init(address=address, log_to_driver=False)
    rows = [{"shard": i, "posts": json.dumps([_post_json(p) for p in chunks[i]], ensure_ascii=False)}
            for i in pending]
    dataset = ray.data.from_items(rows, override_num_blocks=len(rows)).map_batches(
        _GEMActor, batch_size=1, compute=ray.data.ActorPoolStrategy(size=actors), num_cpus=cpus_per_actor,
        num_gpus=gpus_per_actor,
        fn_constructor_kwargs={"config_json": config.model_dump_json(), "batch_size": batch_size,
                               "trust_remote_code": trust_remote_code, "threads": threads_per_actor})
    pids: set[int] = set()
    for row in dataset.iter_rows():
        index, pid = int(row["shard"]), int(row["worker_pid"])
        _write_shard(shard_path(output_dir, index), json.loads(row["records"]), retry_errors, counts)
        uploaded(shard_path(output_dir, index).name)
        pids.add(pid)
        if on_shard is not None:
            on_shard(index, pid)
    counts.workers = len(pids)
    return counts
