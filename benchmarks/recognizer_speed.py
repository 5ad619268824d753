"""Recogniser speed on real posts: throughput, CRF share, achieved GFLOP/s vs matmul peak, CRF vs pytorch-crf.

    python benchmarks/recognizer_speed.py                  # lite encoder (MiniLM), FMNERG dev posts
    python benchmarks/recognizer_speed.py --threads 1 --json runs/bench.json

Everything is measured in this process, so the ratios (achieved / peak, ours / pytorch-crf) compare
like with like. FLOPs are counted by `torch.utils.flop_counter` on the very batches that are timed
(in a separate, untimed pass). Speed does not depend on the weights' values, so the model is the
untrained lite recogniser (heads and CRFs fresh); it runs on the CPU.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import time
from collections.abc import Callable
from pathlib import Path

import torch
from torch.utils.flop_counter import FlopCounterMode

from gemner.data import load_dataset
from gemner.recognize.config import preset
from gemner.recognize.crf import CRF
from gemner.recognize.encoding import collate, encode_posts
from gemner.recognize.model import Recognizer, training_pairs
from gemner.recognize.predict import predict_batch
from gemner.recognize.train import make_optimizer


def best_time(fn: Callable[[], object], repeats: int = 3, warmup: int = 1) -> float:
    for _ in range(warmup):
        fn()
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return min(times)


def matmul_peak(dtype: torch.dtype, n: int = 2048) -> float:
    """GFLOP/s of an n x n x n matmul (best of several): the ceiling for this machine and thread count."""
    a, b = torch.randn(n, n, dtype=dtype), torch.randn(n, n, dtype=dtype)
    seconds = best_time(lambda: torch.mm(a, b), repeats=5, warmup=2)
    return 2 * n**3 / seconds / 1e9


def count_flops(fn: Callable[[], object]) -> int:
    with FlopCounterMode(display=False) as counter:
        fn()
    return counter.get_total_flops()


def batches_of(items, size: int, pad_id: int):
    return [collate(items[s:s + size], pad_id) for s in range(0, len(items), size)]


def inference(model: Recognizer, posts, items, batch_size: int) -> tuple[float, float, float]:
    """(posts/s, achieved GFLOP/s, share of time in Viterbi) of `predict_batch` over the items."""
    chunks = [(posts[s:s + batch_size], items[s:s + batch_size]) for s in range(0, len(items), batch_size)]

    def run() -> None:
        for chunk_posts, chunk_items in chunks:
            predict_batch(model, chunk_posts, chunk_items)

    seconds = best_time(run, repeats=2)
    flops = count_flops(run)
    pad = model.tokenizer.pad_token_id or 0
    batches = batches_of(items, batch_size, pad)
    with torch.no_grad():
        emissions = [model.emissions(b)[0].fine for b in batches]
    viterbi = best_time(lambda: [model.fine_crf.decode(e, b.word_mask) for e, b in zip(emissions, batches,
                                                                                       strict=True)])
    return len(items) / seconds, flops / seconds / 1e9, viterbi / seconds


def training(model: Recognizer, items, batch_size: int) -> tuple[float, float, float]:
    """(posts/s, achieved GFLOP/s, share of time in CRF NLL forward+backward) of full train steps."""
    optimizer = make_optimizer(model, model.config)
    batches = batches_of(items, batch_size, model.tokenizer.pad_token_id or 0)
    model.train()

    def step(batch) -> None:
        model.loss(batch).backward()
        optimizer.step()
        optimizer.zero_grad(set_to_none=True)

    def run() -> None:
        for batch in batches:
            step(batch)

    seconds = best_time(run, repeats=2)
    flops = count_flops(run)
    with torch.no_grad():
        emissions = [model.emissions(b)[0] for b in batches]

    def crf_part() -> None:
        for em, b in zip(emissions, batches, strict=True):
            fine = em.fine.detach().requires_grad_()
            loss = model.fine_crf.nll(fine, b.fine_tags, b.word_mask)
            if model.coarse_crf is not None:
                coarse = em.coarse.detach().requires_grad_()
                loss = loss + model.coarse_crf.nll(coarse, b.coarse_tags, b.word_mask)
            loss.backward()

    crf_seconds = best_time(crf_part)
    model.eval()
    return len(items) / seconds, flops / seconds / 1e9, crf_seconds / seconds


def crf_vs_pytorch_crf(n_tags: int, batch: int = 32, length: int = 40, seed: int = 0) -> dict[str, float]:
    """Our CRF vs pytorch-crf on identical inputs: NLL forward+backward and Viterbi (seconds, ratio)."""
    import torchcrf

    g = torch.Generator().manual_seed(seed)
    emissions = torch.randn(batch, length, n_tags, generator=g)
    lengths = torch.randint(length // 3, length + 1, (batch,), generator=g)
    lengths[0] = length
    mask = torch.arange(length)[None] < lengths[:, None]
    tags = torch.randint(0, n_tags, (batch, length), generator=g)
    ours, theirs = CRF(n_tags), torchcrf.CRF(n_tags, batch_first=True)
    with torch.no_grad():
        ours.start.copy_(theirs.start_transitions)
        ours.end.copy_(theirs.end_transitions)
        ours.transitions.copy_(theirs.transitions)
    same = abs(ours.log_likelihood(emissions, tags, mask).sum().item()
               - theirs(emissions, tags, mask, reduction="sum").item())
    assert same < 1e-2, f"CRFs disagree by {same}"
    assert ours.decode(emissions, mask) == theirs.decode(emissions, mask)

    def nll(crf_call) -> Callable[[], None]:
        def run() -> None:
            em = emissions.clone().requires_grad_()
            crf_call(em).backward()
        return run

    ours_nll = best_time(nll(lambda em: ours.nll(em, tags, mask)), repeats=5)
    theirs_nll = best_time(nll(lambda em: -theirs(em, tags, mask, reduction="mean")), repeats=5)
    with torch.no_grad():
        ours_vit = best_time(lambda: ours.decode(emissions, mask), repeats=5)
        theirs_vit = best_time(lambda: theirs.decode(emissions, mask), repeats=5)
    return {"tags": n_tags, "batch": batch, "length": length,
            "nll_ours_ms": 1e3 * ours_nll, "nll_pytorch_crf_ms": 1e3 * theirs_nll,
            "nll_speedup": theirs_nll / ours_nll,
            "viterbi_ours_ms": 1e3 * ours_vit, "viterbi_pytorch_crf_ms": 1e3 * theirs_vit,
            "viterbi_speedup": theirs_vit / ours_vit}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--encoder", default="minilm")
    parser.add_argument("--dataset", default="fmnerg")
    parser.add_argument("--threads", type=int, default=None)
    parser.add_argument("--infer-posts", type=int, default=128)
    parser.add_argument("--train-posts", type=int, default=64)
    parser.add_argument("--json", type=Path, default=None)
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    train = load_dataset(args.dataset, "train")
    dev = load_dataset(args.dataset, "dev").posts
    results: dict[str, object] = {"threads": torch.get_num_threads(), "encoder": args.encoder,
                                  "dataset": args.dataset, "torch": torch.__version__,
                                  "load_average_at_start": os.getloadavg()[0]}
    peaks = {"fp32": matmul_peak(torch.float32), "bf16": matmul_peak(torch.bfloat16)}
    results["matmul_peak_gflops"] = peaks
    print(f"threads {torch.get_num_threads()}, load average {os.getloadavg()[0]:.1f} "
          f"({os.cpu_count()} cores); matmul peak: fp32 {peaks['fp32']:.1f} GFLOP/s, "
          f"bf16 {peaks['bf16']:.1f} GFLOP/s")
    for precision in ("fp32", "bf16"):
        config = preset("lite", encoder=args.encoder, bf16=precision == "bf16")
        model = Recognizer.build(config, train.schema, training_pairs(train.posts)).eval()
        schema = model.schema
        fine = {t: i for i, t in enumerate(schema.tags)}
        coarse = {t: i for i, t in enumerate(schema.coarse_tags)} if model.multi_granularity else None
        posts = dev[:args.infer_posts]
        items = encode_posts(model.tokenizer, posts, None, config.max_length)
        row: dict[str, float] = {}
        for batch_size in (1, 32):
            n = 32 if batch_size == 1 else len(items)  # batch 1 is slow: fewer posts
            rate, gflops, share = inference(model, posts[:n], items[:n], batch_size)
            row[f"infer_b{batch_size}_posts_s"], row[f"infer_b{batch_size}_gflops"] = rate, gflops
            row[f"infer_b{batch_size}_crf_share"] = share
            print(f"[{precision}] inference batch {batch_size:>2}: {rate:7.1f} posts/s, {gflops:6.1f} GFLOP/s "
                  f"({gflops / peaks[precision]:.0%} of matmul peak), Viterbi {share:.1%} of the time")
        train_items = encode_posts(model.tokenizer, train.posts[:args.train_posts], None, config.max_length,
                                   fine, coarse)
        rate, gflops, share = training(model, train_items, config.batch_size)
        row.update({"train_posts_s": rate, "train_gflops": gflops, "train_crf_share": share,
                    "train_epoch_minutes": len(train.posts) / rate / 60})
        print(f"[{precision}] training batch {config.batch_size}: {rate:7.1f} posts/s, {gflops:6.1f} GFLOP/s "
              f"({gflops / peaks[precision]:.0%} of matmul peak), CRF NLL fwd+bwd {share:.1%} of the time; "
              f"one {args.dataset} epoch ({len(train.posts)} posts) ~ {row['train_epoch_minutes']:.1f} min")
        results[precision] = row
    crf = {}
    for name, n_tags in (("fine", len(train.schema.tags)), ("coarse", len(train.schema.coarse_tags))):
        crf[name] = crf_vs_pytorch_crf(n_tags)
        c = crf[name]
        print(f"CRF vs pytorch-crf ({n_tags} tags, batch {c['batch']}, length {c['length']}): "
              f"NLL fwd+bwd {c['nll_ours_ms']:.2f} vs {c['nll_pytorch_crf_ms']:.2f} ms ({c['nll_speedup']:.1f}x), "
              f"Viterbi {c['viterbi_ours_ms']:.2f} vs {c['viterbi_pytorch_crf_ms']:.2f} ms "
              f"({c['viterbi_speedup']:.1f}x)")
    results["crf_vs_pytorch_crf"] = crf
    results["median_dev_words"] = statistics.median(len(p.tokens) for p in dev[:args.infer_posts])
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps(results, indent=2))


if __name__ == "__main__":
    main()
