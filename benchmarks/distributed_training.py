"""Data-parallel reranker training: step time of 2 processes against 1 process on the same cores.

Trains the shipped `lite` reranker recipe (SmolLM2-135M-Instruct + LoRA rank 64, bf16 autocast, the
effective batch of 4 entities) on `--entities` FMNERG train entities, one epoch, three ways, one after
the other in this script:

* 1 process, `--threads` torch threads (the CPU's cores to itself);
* 2 processes (`gemner.distributed.run_processes`, gloo), `--threads` / 2 threads each, 2 entities each;
* 1 process, 1 thread (what one of the two processes would do alone).

Each run's step time is read from its `train_log.jsonl` (seconds between the first and the last step,
per step; model loading and process start are outside). It prints the step times, the ratios and how
far apart the adapters of the 1- and 2-process runs end (relative to how far training moved them:
bf16 autocast rounds the two runs' sums differently, and Adam's first steps, nearly lr x sign(gradient),
turn that noise in near-zero gradients into whole steps) and how far their batch losses differ. The
machine's load average is printed before and after: on a shared machine read the ratios of one run, not
the absolute times.

    python benchmarks/distributed_training.py --threads 2 --entities 24
"""

from __future__ import annotations

import argparse
import json
import os
import tempfile
import time
from pathlib import Path

import torch
from safetensors.torch import load_file

from gemner.distributed import run_processes
from gemner.rerank.config import preset, with_settings
from gemner.rerank.train import train_reranker_on_dataset


def quiet(_line: str) -> None:
    pass


def logged(output: Path, field: str) -> list[float]:
    return [json.loads(line)[field] for line in (output / "train_log.jsonl").read_text().splitlines()]


def step_seconds(output: Path) -> float:
    seconds = logged(output, "seconds")
    return (seconds[-1] - seconds[0]) / (len(seconds) - 1)


def train(processes: int, threads: int, entities: int, dataset: str, output: Path) -> float:
    torch.set_num_threads(threads)  # run_processes gives each process threads // processes
    config = with_settings(preset("lite"), max_train=entities, epochs=1)
    started = time.perf_counter()
    run_processes(train_reranker_on_dataset, processes, config, dataset, output, dev_max=0, device="cpu",
                  log=quiet, save_every=10**6)
    print(f"  {processes} process(es), {threads} thread(s) in all: {time.perf_counter() - started:.1f} s wall "
          f"(with loading), {step_seconds(output):.3f} s a step", flush=True)
    return step_seconds(output)


def adapter_distance(a: Path, b: Path) -> float:
    """|b - a| / |a| over the adapters' B matrices (they start at zero: |a| is how far training moved them)."""
    x, y = load_file(a / "adapter_model.safetensors"), load_file(b / "adapter_model.safetensors")
    keys = [k for k in x if "lora_B" in k]
    apart = sum(float(((y[k] - x[k]).double() ** 2).sum()) for k in keys)
    moved = sum(float((x[k].double() ** 2).sum()) for k in keys)
    return (apart / moved) ** 0.5


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--threads", type=int, default=2, help="torch threads in all (the cores to use)")
    parser.add_argument("--entities", type=int, default=24, help="training entities (4 a step)")
    parser.add_argument("--dataset", default="fmnerg")
    args = parser.parse_args()
    print(f"load average before: {os.getloadavg()[0]:.1f}; {os.cpu_count()} CPUs", flush=True)
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        one = train(1, args.threads, args.entities, args.dataset, root / "one")
        two = train(2, args.threads, args.entities, args.dataset, root / "two")
        single = train(1, 1, args.entities, args.dataset, root / "single")
        distance = adapter_distance(root / "one", root / "two")
        losses = list(zip(logged(root / "one", "loss"), logged(root / "two", "loss"), strict=True))
    print(f"load average after: {os.getloadavg()[0]:.1f}")
    print("| run | s a step | ratio to 1 process |")
    print("| --- | ---: | ---: |")
    print(f"| 1 process x {args.threads} threads | {one:.3f} | 1.00 |")
    print(f"| 2 processes x {max(1, args.threads // 2)} thread(s) | {two:.3f} | {two / one:.2f} |")
    print(f"| 1 process x 1 thread | {single:.3f} | {single / one:.2f} |")
    print(f"adapters of the 1- and 2-process runs: {distance:.4f} of the training's own change apart")
    print(f"their batch losses differ by at most {max(abs(a - b) / a for a, b in losses):.2%} a step "
          f"(first step: {losses[0][0]:.4f} vs {losses[0][1]:.4f})")


if __name__ == "__main__":
    main()
