"""End-to-end throughput of `GEM.predict_batch` and the share of time each stage takes.

Two runs on the same benchmark posts (FMNERG test, first N):

* the pipeline preset as configured (default `lite`: shipped recogniser and reranker, CPU). On this
  machine no vision weights exist, so its grounding stage reports "not computed" and costs nothing;
* the same with the paper-size vision stage (`--paper-vision`): BLIP-base ITM + eq. 11 trace + SAM
  ViT-B (or `--sam slimsam-50`) with random weights, every post given one 640x480 image. The ITM
  threshold is 0, so every entity is traced and segmented: the most work a post can cost.

    python benchmarks/pipeline_speed.py --posts 64 --threads 1
    python benchmarks/pipeline_speed.py --posts 1500 --threads 2 --compare --gammas 0.82 0.2
    python benchmarks/pipeline_speed.py --posts 32 --threads 1 --paper-vision --vision-posts 8 [--sam slimsam-50]
    python benchmarks/pipeline_speed.py --posts 1500 --threads 2 --recogniser-batches 16 256
    python benchmarks/pipeline_speed.py --posts 1500 --threads 1 --presets lite base

`--compare` times, in one process (same machine load), at each `--gammas` value: the recogniser
alone (rerank off), the pipeline with batched reranking (the hard entities of a whole batch of posts
scored together), and the pipeline reranking entity by entity (the scorer before batching), then
prints posts/s of each, the new/old ratio and the pipeline/recogniser time ratio.

`--presets A B ...` times whole presets on the same posts in one process, in alternating rounds (best kept), and
prints each one's posts/s and its time as a multiple of the first's.

Stage times come from wrapping the pipeline's four stage runners (knowledge, recognise, rerank,
ground) with wall-clock timers; "other" is the rest (tokenising, result objects).
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from collections import defaultdict
from dataclasses import replace
from pathlib import Path

import torch
from PIL import Image

# (runner, method) pairs timed; the reranker's batched entry point `rerank_many` counts as its stage too
STAGES = (("knowledge", "knowledge"), ("recognizer", "recognise"), ("reranker", "rerank"), ("reranker", "rerank_many"),
          ("grounder", "ground"))


def add_stage_timers(gem, seconds: dict[str, float]) -> None:
    """Replace each stage runner's entry point by a timed call of the original."""
    for runner_name, method_name in STAGES:
        runner = getattr(gem, runner_name)
        original = getattr(runner, method_name)

        def timed(*args, _original=original, _name=runner_name, **kwargs):
            start = time.perf_counter()
            try:
                return _original(*args, **kwargs)
            finally:
                seconds[_name] += time.perf_counter() - start

        setattr(runner, method_name, timed)


def entity_by_entity(gem) -> None:
    """Make `gem` rerank each post's entities one at a time (the path before batched reranking)."""
    runner = gem.reranker

    def one_post_at_a_time(items, log):
        return [runner.rerank(post, entities, caption, image, log) for post, entities, caption, image in items]

    runner.rerank_many = one_post_at_a_time


def compare(preset: str, posts, batch_size: int, gammas: list[float]) -> None:
    """Recogniser alone vs batched vs entity-by-entity reranking, posts/s and ratios, one process."""
    from gemner import GEM

    alone = GEM.from_pretrained(preset, {"rerank": {"enabled": False}})
    timers: dict[str, float] = defaultdict(float)
    recogniser_s, _, _ = run(alone, posts, batch_size, timers)
    print(f"\nrecogniser alone (rerank off): {len(posts)} posts, {recogniser_s:.1f} s -> "
          f"{len(posts) / recogniser_s:.1f} posts/s")
    print("| gamma | hard entities | batched s | batched posts/s | entity-by-entity s | entity-by-entity posts/s "
          "| new/old speed-up | batched / recogniser time | rerank share (batched) |")
    print("| ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |")
    for gamma in gammas:
        new_gem = GEM.from_pretrained(preset, {"rerank": {"gamma": gamma}})
        timers = defaultdict(float)
        add_stage_timers(new_gem, timers)
        new_s, new_stages, _ = run(new_gem, posts, batch_size, timers)
        hard = new_gem.reranker.run.stats.reranked
        old_gem = GEM.from_pretrained(preset, {"rerank": {"gamma": gamma}})
        entity_by_entity(old_gem)
        old_s, _, _ = run(old_gem, posts, batch_size, defaultdict(float))
        share = 100 * new_stages.get("reranker", 0.0) / new_s
        print(f"| {gamma} | {hard} | {new_s:.1f} | {len(posts) / new_s:.1f} | {old_s:.1f} | {len(posts) / old_s:.1f} "
              f"| {old_s / new_s:.2f}x | {new_s / recogniser_s:.2f}x | {share:.0f} % |", flush=True)


def recogniser_batches(preset: str, posts, batch_sizes: list[int], rounds: int = 2) -> None:
    """The pipeline with rerank off (the recogniser stage through `GEM.pipe`) at each `GEM.pipe` batch
    size, which is also the recogniser's length-bucketing window; alternating rounds, best kept."""
    from gemner import GEM

    gem = GEM.from_pretrained(preset, {"rerank": {"enabled": False}})
    best = {size: float("inf") for size in batch_sizes}
    for _ in range(rounds):
        for size in batch_sizes:
            best[size] = min(best[size], run(gem, posts, size, defaultdict(float))[0])
    print("| pipe batch size (bucketing window) | seconds | posts/s | x first |")
    print("| ---: | ---: | ---: | ---: |")
    for size in batch_sizes:
        ratio = best[batch_sizes[0]] / best[size]
        print(f"| {size} | {best[size]:.2f} | {len(posts) / best[size]:.1f} | {ratio:.2f}x |")


def presets_side_by_side(presets: list[str], posts, batch_size: int, rounds: int = 2) -> None:
    """Each preset as configured over `posts`, alternating rounds so that load changes hit all alike."""
    from gemner import GEM

    models = {name: GEM.from_pretrained(name) for name in presets}
    best = {name: float("inf") for name in presets}
    for _ in range(rounds):
        for name, gem in models.items():
            best[name] = min(best[name], run(gem, posts, batch_size, defaultdict(float))[0])
    print("| preset | stages | seconds | posts/s | time x first |")
    print("| --- | --- | ---: | ---: | ---: |")
    for name, gem in models.items():
        print(f"| {name} | {gem.stage_summary()} | {best[name]:.1f} | {len(posts) / best[name]:.1f} "
              f"| {best[name] / best[presets[0]]:.2f}x |")


def random_image(folder: Path) -> Path:
    generator = torch.Generator().manual_seed(0)
    pixels = (torch.rand(480, 640, 3, generator=generator) * 255).to(torch.uint8).numpy()
    path = folder / "post.jpg"
    Image.fromarray(pixels).save(path, quality=90)
    return path


def attach_paper_vision(gem, sam: str) -> None:
    """The grounding stage with BLIP-base + SAM architectures (random weights), every entity traced."""
    from gemner.pipeline.stages import StageState

    sys.path.insert(0, str(Path(__file__).parent))
    from grounder_speed import build_grounder  # the same random paper-size models as that benchmark

    gem.grounder.grounder = build_grounder(sam, torch.device("cpu"), torch.float32)
    gem.grounder.state = StageState()


def run(gem, posts, batch_size: int, seconds: dict[str, float]) -> tuple[float, dict[str, float], int]:
    """Time one pass over `posts`; `seconds` is the dict the stage timers fill."""
    list(gem.predict_batch(posts[:2], batch_size=batch_size))  # warm-up (lazy loads, first-call costs)
    seconds.clear()
    start = time.perf_counter()
    entities = sum(len(result.entities) for result in gem.predict_batch(posts, batch_size=batch_size))
    return time.perf_counter() - start, dict(seconds), entities


def report(title: str, total: float, seconds: dict[str, float], posts: int, entities: int) -> None:
    print(f"\n{title}: {posts} posts, {entities} entities, {total:.1f} s -> {posts / total:.2f} posts/s, "
          f"{entities / total:.2f} entities/s")
    print("| stage | seconds | share |")
    print("| --- | ---: | ---: |")
    for runner_name in dict.fromkeys(name for name, _ in STAGES):  # each stage once (the reranker has two entries)
        spent = seconds.get(runner_name, 0.0)
        print(f"| {runner_name} | {spent:.1f} | {100 * spent / total:.1f} % |")
    other = total - sum(seconds.values())
    print(f"| other | {other:.1f} | {100 * other / total:.1f} % |")


def main() -> None:
    from gemner import GEM
    from gemner.data.benchmarks import load_dataset

    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--preset", default="lite", help="pipeline preset, YAML file or folder")
    parser.add_argument("--dataset", default="fmnerg")
    parser.add_argument("--posts", type=int, default=64)
    parser.add_argument("--batch-size", type=int, default=16)
    parser.add_argument("--paper-vision", action="store_true", help="also time random BLIP-base + SAM grounding")
    parser.add_argument("--vision-posts", type=int, default=8, help="posts of the --paper-vision run")
    parser.add_argument("--sam", default="sam-vit-base", help="sam-vit-base | slimsam-50 | slimsam-77")
    parser.add_argument("--threads", type=int, default=None)
    parser.add_argument("--compare", action="store_true",
                        help="recogniser alone vs batched vs entity-by-entity reranking, in one process")
    parser.add_argument("--gammas", type=float, nargs="+", default=[0.82, 0.2], help="sample filter thresholds")
    parser.add_argument("--presets", nargs="+", default=None,
                        help="time these presets side by side in this process (e.g. lite base)")
    parser.add_argument("--recogniser-batches", type=int, nargs="+", default=None,
                        help="rerank off: posts/s at each of these pipe batch sizes (e.g. 16 256)")
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)

    posts = load_dataset(args.dataset, "test").posts[:args.posts]
    if args.presets:
        print(f"{torch.get_num_threads()} threads, {len(posts)} {args.dataset} test posts, batches of "
              f"{args.batch_size}, load average {os.getloadavg()[0]:.1f}")
        presets_side_by_side(args.presets, posts, args.batch_size)
        return
    if args.recogniser_batches:
        print(f"preset {args.preset}, rerank off, {torch.get_num_threads()} threads, {len(posts)} {args.dataset} "
              f"test posts, load average {os.getloadavg()[0]:.1f}")
        recogniser_batches(args.preset, posts, args.recogniser_batches)
        return
    if args.compare:
        print(f"preset {args.preset}, {torch.get_num_threads()} threads, {len(posts)} {args.dataset} test posts, "
              f"batches of {args.batch_size}")
        compare(args.preset, posts, args.batch_size, args.gammas)
        return
    gem = GEM.from_pretrained(args.preset, notify=lambda message: print(f"  note: {message}"))
    print(f"preset {args.preset}, stages {gem.stages()}, {torch.get_num_threads()} threads, "
          f"{args.dataset} test posts")
    timers: dict[str, float] = defaultdict(float)
    add_stage_timers(gem, timers)
    total, seconds, entities = run(gem, posts, args.batch_size, timers)
    report(f"{args.preset} preset", total, seconds, len(posts), entities)

    if args.paper_vision:
        attach_paper_vision(gem, args.sam)
        with tempfile.TemporaryDirectory() as folder:
            image = random_image(Path(folder))
            with_images = [replace(post, image=image) for post in posts[:args.vision_posts]]
            total, seconds, entities = run(gem, with_images, args.batch_size, timers)
        report(f"{args.preset} preset + BLIP-base ITM + {args.sam} (random weights, every entity grounded)",
               total, seconds, len(with_images), entities)


if __name__ == "__main__":
    main()
