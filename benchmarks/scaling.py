"""How cost grows with the work: recogniser time vs post length, reranker time vs entities per post.

    python benchmarks/scaling.py --threads 2 [--posts 32] [--dtype bfloat16] [--skip-reranker]

* recogniser (shipped FMNERG lite, prepared for inference as the pipeline runs it): posts of 10, 50
  and 250 words (FMNERG test words laid end to end), `--posts` of each, best of `--rounds`; time per
  encoded word (words past the 256-subword budget are cut and predicted O, so they are not counted)
  should stay flat or fall (a short post pays per-post costs; attention's quadratic term is small);
* reranker (shipped lite, batched path): posts of `--rerank-words` words carrying 1, 5 or 20
  hard entities (entropy above gamma, the recogniser's top-5 candidates of a real post) and as many
  easy ones (entropy 0), plus a row of posts with 20 easy entities only; time per hard entity should
  stay flat, "entities scored" must equal the hard ones and the easy-only row must cost ~nothing.

Everything runs in one process, so the ratios hold under any machine load.
"""

from __future__ import annotations

import argparse
import os
import time

import torch

from gemner.data.types import Post, PredictedEntity

TOPK = [["city", 0.4], ["country", 0.3], ["park", 0.1], ["company", 0.1], ["sports_team", 0.1]]


def words_of(posts, n: int, start: int) -> list[str]:
    pool = [w for post in posts for w in post.tokens]
    return [pool[(start + i) % len(pool)] for i in range(n)]


def clocks(fn) -> tuple[float, float]:
    """(wall, process CPU) seconds of one call."""
    wall, cpu = time.perf_counter(), time.process_time()
    fn()
    return time.perf_counter() - wall, time.process_time() - cpu


def recogniser_table(model, posts, count: int, rounds: int) -> None:
    """Posts of 10, 50 and 250 words, `count` of each, best of `rounds` alternating rounds."""
    from gemner.recognize.encoding import encode_post
    from gemner.recognize.predict import input_limit, predict_posts

    lengths = (10, 50, 250)
    batches = {n: [Post(f"s{n}-{i}", words_of(posts, n, 97 * i)) for i in range(count)] for n in lengths}
    limit = input_limit(model)  # words past the subword budget are cut (predicted O): count the kept ones
    kept = {n: sum(encode_post(model.tokenizer, p.tokens, None, limit).n_words for p in batch)
            for n, batch in batches.items()}
    for batch in batches.values():
        list(predict_posts(model, batch[:2]))
    best = {n: (float("inf"), float("inf")) for n in lengths}
    for _ in range(rounds):
        for n, batch in batches.items():
            best[n] = min(best[n], clocks(lambda b=batch: list(predict_posts(model, b))))
    print("| words per post | words encoded per post | posts | seconds | posts/s | ms per encoded word | "
          "CPU ms per encoded word | per word vs 10 words |")
    print("| ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |")
    base = best[10][0] / kept[10]
    for n in lengths:
        wall, cpu = best[n]
        print(f"| {n} | {kept[n] / count:.0f} | {count} | {wall:.2f} | {count / wall:.1f} | "
              f"{1000 * wall / kept[n]:.2f} | {1000 * cpu / kept[n]:.2f} | {wall / kept[n] / base:.2f}x |", flush=True)


def entity(tokens: list[str], index: int, hard: bool) -> PredictedEntity:
    scores = {"entropy": 1.5 if hard else 0.0, "topk": TOPK}
    return PredictedEntity(index, index + 1, tokens[index], "city", "location", box=None, scores=scores,
                           box_status="not_computed")


def reranker_table(run, posts, count: int, words: int) -> None:
    """`count` posts of `words` words per row, each with `hard` hard and `easy` easy entities, interleaved
    (hard, easy, hard, ...). Every row has the same post length, so the prompts are alike and the cost per
    hard entity shows how it grows with the entities alone (a longer post makes every prompt longer)."""
    from gemner.data.issues import IssueLog
    from gemner.rerank.apply import PostContext

    print("| hard entities per post | easy entities per post | posts | entities scored | seconds | "
          "ms per hard entity | CPU ms per hard entity |")
    print("| ---: | ---: | ---: | ---: | ---: | ---: | ---: |")
    for hard, easy in ((0, 20), (1, 1), (5, 5), (20, 20)):
        items = []
        for i in range(count):
            tokens = words_of(posts, words, 131 * i)
            entities = [entity(tokens, 2 * j, True) for j in range(hard)] + \
                [entity(tokens, 2 * j + 1, False) for j in range(easy)]
            items.append((sorted(entities, key=lambda e: e.start), PostContext(f"r{hard}-{i}", tokens)))
        run.rerank_posts(items[:1], IssueLog())  # warm-up: the static prefix, first-call costs
        scored = run.stats.hard
        wall, cpu = clocks(lambda items=items: run.rerank_posts(items, IssueLog()))
        scored = run.stats.hard - scored
        per = f"{1000 * wall / (count * hard):.0f} | {1000 * cpu / (count * hard):.0f}" if hard else "- | -"
        print(f"| {hard} | {easy} | {count} | {scored} | {wall:.2f} | {per} |", flush=True)


def main() -> None:
    from gemner.data.benchmarks import load_dataset
    from gemner.paths import models_dir
    from gemner.recognize import Recognizer
    from gemner.recognize.inference import prepare_for_inference
    from gemner.rerank.apply import EntityReranker
    from gemner.rerank.filter import SampleFilter
    from gemner.rerank.model import Reranker

    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--posts", type=int, default=32, help="posts per recogniser row (reranker: a quarter)")
    parser.add_argument("--rounds", type=int, default=3, help="recogniser rounds (best kept)")
    parser.add_argument("--dtype", default="float32", help="the recogniser's (float32 | bfloat16)")
    parser.add_argument("--threads", type=int, default=None)
    parser.add_argument("--skip-reranker", action="store_true")
    parser.add_argument("--rerank-words", type=int, default=48, help="words per reranker post (>= 40)")
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    posts = load_dataset("fmnerg", "test").posts
    model = prepare_for_inference(
        Recognizer.from_pretrained(str(models_dir() / "fmnerg-recognizer-lite"), device="cpu"), args.dtype)
    load = os.getloadavg()[0]
    print(f"{torch.get_num_threads()} threads, recogniser {args.dtype}, load average {load:.1f}")
    recogniser_table(model, posts, args.posts, args.rounds)
    if args.skip_reranker:
        return
    reranker = Reranker.load(str(models_dir() / "fmnerg-reranker-lite"), device="cpu")
    run = EntityReranker.build(reranker, SampleFilter(0.2, k=5), model.schema)
    reranker_table(run, posts, max(1, args.posts // 4), max(40, args.rerank_words))
    print(f"load average at the end {os.getloadavg()[0]:.1f}")


if __name__ == "__main__":
    main()
