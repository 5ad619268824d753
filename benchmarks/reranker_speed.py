"""Reranker speed on real prompts with real weights (SmolLM2-135M-Instruct, CPU by default).

Scoring: entities/s of shared-prefix scoring (prompt once, its KV cache repeated over the K candidates;
with and without the static cache of the prompt start common to all entities, the default) against
scoring every candidate from scratch, (a) batched over the K candidates and (b) one candidate per
forward pass, and of the default under bf16 autocast (`--bf16`); same process, same entities, methods
interleaved per round so machine load hits all alike. Also checks that the methods choose the same
candidates.

Training: seconds per LoRA step (batch 4, rank 64, bf16 autocast on/off) on the same prompts.

    python benchmarks/reranker_speed.py --n 36 --threads 1 2
    python benchmarks/reranker_speed.py --what training --threads 1 2
"""

from __future__ import annotations

import argparse
import os
import statistics
import time

import torch

from gemner.data import load_dataset
from gemner.rerank.config import LITE_MODEL, RerankerConfig
from gemner.rerank.infer import static_prefix
from gemner.rerank.model import Reranker
from gemner.rerank.scoring import aggregate, from_scratch_logprobs, shared_prefix_logprobs
from gemner.rerank.train import answer_loss, gold_queries


def one_at_a_time(model, prompt, answers, pad_id, static):
    return [from_scratch_logprobs(model, prompt, [answer], pad_id)[0] for answer in answers]


def scratch_batched(model, prompt, answers, pad_id, static):
    return from_scratch_logprobs(model, prompt, answers, pad_id)


def shared(model, prompt, answers, pad_id, static):
    return shared_prefix_logprobs(model, prompt, answers, pad_id)


def shared_static(model, prompt, answers, pad_id, static):
    return shared_prefix_logprobs(model, prompt, answers, pad_id, static)


def shared_static_bf16(model, prompt, answers, pad_id, static):
    with torch.autocast("cpu", dtype=torch.bfloat16):
        return shared_prefix_logprobs(model, prompt, answers, pad_id, static)


METHODS = {"shared prefix": shared, "scratch, K batched": scratch_batched, "scratch, one by one": one_at_a_time,
           "shared prefix + static cache (default)": shared_static,
           "shared prefix + static cache, bf16 autocast": shared_static_bf16}


def time_scoring(reranker: Reranker, queries, rounds: int) -> tuple[dict[str, list[float]], dict[str, list[float]]]:
    """Seconds per entity for each method (encoding the prompt included), per round: wall and CPU."""
    pad = reranker.tokenizer.pad_token_id
    static = static_prefix(reranker)
    print(f"  static prefix: {len(static.ids) if static else 0} tokens")
    times: dict[str, list[float]] = {name: [] for name in METHODS}
    cpu: dict[str, list[float]] = {name: [] for name in METHODS}
    choices: dict[str, list[int]] = {name: [] for name in METHODS}
    for round_index in range(rounds):
        for name, method in METHODS.items():
            start, cpu_start = time.perf_counter(), time.process_time()
            for query in queries:
                prompt = reranker.encode_prompt(query)
                answers = [reranker.answer_ids(c) for c in query.candidates]
                scores = aggregate(method(reranker.model, prompt, answers, pad, static))
                if round_index == 0:
                    choices[name].append(max(range(len(scores)), key=scores.__getitem__))
            times[name].append((time.perf_counter() - start) / len(queries))
            cpu[name].append((time.process_time() - cpu_start) / len(queries))
    reference = choices["shared prefix"]
    for name, picked in choices.items():
        agree = sum(a == b for a, b in zip(picked, reference, strict=True))
        print(f"  {name}: same choice as shared prefix on {agree}/{len(reference)} entities")
    return times, cpu


def time_training(reranker: Reranker, queries, steps: int, bf16: bool) -> list[float]:
    params = [p for p in reranker.model.parameters() if p.requires_grad]
    optimizer = torch.optim.AdamW(params, lr=1e-4)
    reranker.model.train()
    seconds, cpu = [], []
    for step in range(steps + 1):  # the first step warms up and is not counted
        batch = queries[4 * step: 4 * step + 4]
        start, cpu_start = time.perf_counter(), time.process_time()
        with torch.autocast("cpu", dtype=torch.bfloat16, enabled=bf16):
            loss = answer_loss(reranker, batch)
        loss.backward()
        optimizer.step()
        optimizer.zero_grad(set_to_none=True)
        if step:
            seconds.append(time.perf_counter() - start)
            cpu.append(time.process_time() - cpu_start)
    reranker.model.eval()
    return seconds, cpu


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default=LITE_MODEL)
    parser.add_argument("--what", choices=["scoring", "training", "all"], default="scoring")
    parser.add_argument("--n", type=int, default=36, help="FMNERG dev entities")
    parser.add_argument("--k", type=int, default=5)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--steps", type=int, default=5, help="timed training steps")
    parser.add_argument("--threads", type=int, nargs="+", default=[1, 2])
    parser.add_argument("--skip-one-by-one", action="store_true", help="leave out the slowest baseline")
    args = parser.parse_args()

    if args.skip_one_by_one:
        del METHODS["scratch, one by one"]
    dev = load_dataset("fmnerg", "dev")
    queries = gold_queries(dev.posts, dev.schema, args.k, seed=0, limit=max(args.n, 4 * (args.steps + 1)))
    reranker = Reranker.load(args.model, RerankerConfig(lora_rank=64, lora_alpha=128), device="cpu")
    lengths = [reranker.encode_prompt(q)["input_ids"].shape[1] for q in queries[: args.n]]
    print(f"model {args.model}; {args.n} FMNERG dev entities, K={args.k}; prompt tokens: mean "
          f"{statistics.mean(lengths):.0f}, max {max(lengths)}; load average {os.getloadavg()[0]:.1f}")
    if args.what in ("scoring", "all"):
        reranker.add_lora()  # scoring as after training: the adapter's extra matmuls included
        reranker.model.eval()
        for threads in args.threads:
            torch.set_num_threads(threads)
            print(f"\nscoring, {threads} thread(s), median of {args.rounds} rounds:")
            times, cpu = time_scoring(reranker, queries[: args.n], args.rounds)
            base = statistics.median(times["shared prefix + static cache (default)"])
            print("| method | s/entity (wall) | s/entity (CPU) | entities/s | time relative to the default |")
            print("| --- | ---: | ---: | ---: | ---: |")
            for name, values in times.items():
                med = statistics.median(values)
                print(f"| {name} | {med:.3f} | {statistics.median(cpu[name]):.3f} | {1 / med:.2f} | "
                      f"{med / base:.2f}x |")
            print(f"load average {os.getloadavg()[0]:.1f}")
    if args.what in ("training", "all"):
        if not hasattr(reranker.model, "peft_config"):
            reranker.add_lora()
        for threads in args.threads:
            torch.set_num_threads(threads)
            for bf16 in (False, True):
                seconds, cpu = time_training(reranker, queries, args.steps, bf16)
                med = statistics.median(seconds)
                print(f"training, {threads} thread(s), bf16={bf16}: {med:.2f} s/step wall, "
                      f"{statistics.median(cpu):.2f} s/step CPU (batch 4, LoRA rank 64), {4 / med:.2f} examples/s; "
                      f"load average {os.getloadavg()[0]:.1f}")


if __name__ == "__main__":
    main()
