"""How cost grows with the work: recogniser time vs post length, reranker time vs entities per post.

    python benchmarks/scaling.py --threads 2 [--posts 32]

* recogniser (shipped FMNERG lite): posts of 10, 50 and 250 words (FMNERG test words laid end to end),
  `--posts` of each; time per word should stay flat (no quadratic term at these lengths);
* reranker (shipped lite, batched path): posts of 10x the entity count in words carrying 1, 5 or 20
  hard entities (entropy above gamma, the recogniser's top-5 candidates of a real post) and as many
  easy ones (entropy 0); time per hard entity should stay flat and the easy ones cost nothing.

Everything runs in one process, so the ratios hold under any machine load.
"""

from __future__ import annotations

import argparse
import time

import torch

from gemner.data.types import Post, PredictedEntity

TOPK = [["city", 0.4], ["country", 0.3], ["park", 0.1], ["company", 0.1], ["sports_team", 0.1]]


def words_of(posts, n: int, start: int) -> list[str]:
    pool = [w for post in posts for w in post.tokens]
    return [pool[(start + i) % len(pool)] for i in range(n)]


def recogniser_table(model, posts, count: int) -> None:
    from gemner.recognize.predict import predict_posts

    print("| words per post | posts | seconds | posts/s | ms per word |")
    print("| ---: | ---: | ---: | ---: | ---: |")
    for length in (10, 50, 250):
        batch = [Post(f"s{length}-{i}", words_of(posts, length, 97 * i)) for i in range(count)]
        list(predict_posts(model, batch[:2]))
        start = time.perf_counter()
        list(predict_posts(model, batch))
        seconds = time.perf_counter() - start
        print(f"| {length} | {count} | {seconds:.2f} | {count / seconds:.1f} | "
              f"{1000 * seconds / (count * length):.2f} |", flush=True)


def entity(index: int, hard: bool) -> PredictedEntity:
    scores = {"entropy": 1.5 if hard else 0.0, "topk": TOPK}
    return PredictedEntity(index, index + 1, f"w{index}", "city", "location", box=None, scores=scores,
                           box_status="not_computed")


def reranker_table(run, posts, count: int) -> None:
    from gemner.data.issues import IssueLog
    from gemner.rerank.apply import PostContext

    print("| hard entities per post | easy entities per post | posts | seconds | ms per hard entity |")
    print("| ---: | ---: | ---: | ---: | ---: |")
    for hard in (1, 5, 20):
        items = []
        for i in range(count):
            tokens = words_of(posts, 10 * hard + 2 * hard, 131 * i)
            entities = [entity(2 * j, True) for j in range(hard)] + [entity(2 * j + 1, False) for j in range(hard)]
            items.append((entities, PostContext(f"r{hard}-{i}", tokens)))
        run.rerank_posts(items[:1], IssueLog())
        start = time.perf_counter()
        run.rerank_posts(items, IssueLog())
        seconds = time.perf_counter() - start
        print(f"| {hard} | {hard} | {count} | {seconds:.2f} | {1000 * seconds / (count * hard):.1f} |", flush=True)


def main() -> None:
    from gemner.data.benchmarks import load_dataset
    from gemner.pipeline.config import models_dir
    from gemner.recognize import Recognizer
    from gemner.rerank.apply import EntityReranker
    from gemner.rerank.filter import SampleFilter
    from gemner.rerank.model import Reranker

    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--posts", type=int, default=32)
    parser.add_argument("--threads", type=int, default=None)
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    posts = load_dataset("fmnerg", "test").posts
    model = Recognizer.from_pretrained(str(models_dir() / "fmnerg-recognizer-lite"), device="cpu")
    print(f"{torch.get_num_threads()} threads")
    recogniser_table(model, posts, args.posts)
    reranker = Reranker.load(str(models_dir() / "fmnerg-reranker-lite"), device="cpu")
    run = EntityReranker.build(reranker, SampleFilter(0.2, k=5), model.schema)
    reranker_table(run, posts, max(1, args.posts // 4))


if __name__ == "__main__":
    main()
