"""The Ray engine against the local engine on the FMNERG test split: posts/s, overhead, scaling estimate.

Runs the same pipeline (default: the shipped `lite` preset with `--no-rerank`, i.e. the recogniser and a
grounder whose weights are not installed offline) three ways on the same posts, each from a cold start
(model loads and, for Ray, the local cluster start and actor start are inside the wall time):

* local: `predict_to_file` in this process, `--threads` torch threads;
* ray, 1 actor and 2 actors: `predict_with_ray` on a local Ray cluster, one torch thread per actor.

It checks that the three outputs hold the same records post by post, prints posts/s (cold and, for Ray,
after its first shard), the overhead ratio of the engine and a scaling estimate for 10 M posts from the
measured per-actor rate. Noise: on a shared machine absolute numbers move with the load (printed);
the ratios of one run are what to read.

    python benchmarks/ray_engine.py                          # 1,500 FMNERG test posts
    python benchmarks/ray_engine.py --posts 300 --rerank     # the full lite pipeline on fewer posts
"""

from __future__ import annotations

import argparse
import os
import tempfile
import time
from pathlib import Path

import torch

from gemner.data import load_dataset
from gemner.data.userio import read_prediction_records
from gemner.pipeline.config import SWITCH_ABLATIONS, predict_config
from gemner.pipeline.gem import GEM
from gemner.pipeline.predict import predict_to_file
from gemner.pipeline.ray_engine import predict_with_ray

TARGET_POSTS = 10_000_000


def run_local(config, posts, output: Path, batch_size: int, shard_size: int) -> tuple[float, float]:
    """(cold wall seconds, seconds after the first `shard_size` posts were written)."""
    first: list[float] = []
    started = time.perf_counter()
    predict_to_file(GEM(config), posts, output, batch_size=batch_size,
                    on_post=lambda n: n == shard_size and first.append(time.perf_counter()))
    ended = time.perf_counter()
    return ended - started, ended - first[0]


def run_ray(config, posts, output: Path, actors: int, batch_size: int, shard_size: int) -> tuple[float, float]:
    """(cold wall seconds, seconds after the first shard came back)."""
    first: list[float] = []
    started = time.perf_counter()
    predict_with_ray(config, posts, output, actors=actors, batch_size=batch_size, shard_size=shard_size,
                     threads_per_actor=1, on_shard=lambda _i, _pid: first or first.append(time.perf_counter()))
    ended = time.perf_counter()
    return ended - started, ended - first[0]


def records_of(path: Path) -> list[dict]:
    files = sorted(path.glob("part-*.jsonl")) if path.is_dir() else [path]
    return [r for f in files for r in read_prediction_records(f)]


def scaling_table(per_actor: float, efficiency: float) -> list[str]:
    rows = ["| nodes | actors/node | posts/s | 10 M posts |", "|---:|---:|---:|---:|"]
    for nodes in (1, 4, 16):
        for per_node in (2, 8, 32):
            rate = per_actor * nodes * per_node * efficiency
            hours = TARGET_POSTS / rate / 3600
            rows.append(f"| {nodes} | {per_node} | {rate:,.0f} | {hours:,.1f} h |")
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--posts", type=int, default=1500)
    parser.add_argument("--config", default="lite")
    parser.add_argument("--rerank", action="store_true", help="keep the reranker (default: --no-rerank)")
    parser.add_argument("--batch-size", type=int, default=16)
    parser.add_argument("--shard-size", type=int, default=128)
    parser.add_argument("--threads", type=int, default=1, help="torch threads of the local engine")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    ablations = [] if args.rerank else [SWITCH_ABLATIONS["no-rerank"]]
    config = predict_config(args.config, ablations=ablations)
    posts = load_dataset("fmnerg", "test").posts[:args.posts]
    print(f"{len(posts)} FMNERG test posts, preset {args.config}{'' if args.rerank else ' --no-rerank'}, "
          f"batch {args.batch_size}, shards of {args.shard_size}; load average before: {os.getloadavg()}")
    import ray

    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False)
    with tempfile.TemporaryDirectory() as folder:
        root = Path(folder)
        local, local_warm = run_local(config, posts, root / "local.jsonl", args.batch_size, args.shard_size)
        print(f"local engine: {len(posts) / local:.2f} posts/s cold ({local:.1f} s), "
              f"{(len(posts) - args.shard_size) / local_warm:.2f} posts/s after the first {args.shard_size} posts")
        reference = records_of(root / "local.jsonl")
        rates = {}
        for actors in (1, 2):
            cold, warm = run_ray(config, posts, root / f"ray{actors}", actors, args.batch_size, args.shard_size)
            rates[actors] = (len(posts) - args.shard_size) / warm
            same = records_of(root / f"ray{actors}") == reference
            print(f"ray, {actors} actor(s): {len(posts) / cold:.2f} posts/s cold ({cold:.1f} s), "
                  f"{rates[actors]:.2f} posts/s after the first shard; records equal the local engine's: {same}")
            print(f"  engine overhead (cold wall time, ray / local): {cold / local:.2f}x")
    ray.shutdown()
    efficiency = rates[2] / (2 * rates[1])
    print(f"2 actors / 1 actor: {rates[2] / rates[1]:.2f}x (scaling efficiency {efficiency:.2f}); "
          f"load average after: {os.getloadavg()}")
    print(f"\nEstimate for {TARGET_POSTS:,} posts at {rates[1]:.2f} posts/s per actor, efficiency 1.0:")
    print("\n".join(scaling_table(rates[1], 1.0)))


if __name__ == "__main__":
    main()
