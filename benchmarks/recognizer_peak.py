"""The shipped recogniser's prediction speed against the matmuls it cannot avoid, in one process.

    python benchmarks/recognizer_peak.py --threads 2 --posts 512 --rounds 3

For the shipped FMNERG recogniser on the first `--posts` FMNERG test posts, `predict_posts` (tokenising,
encoder, CRF, entity scores: everything the recogniser stage does) is timed in five set-ups:

* `as loaded`: the checkpoint as `Recognizer.from_pretrained` returns it (peft LoRA layers, bf16
  autocast from its training config), batches in input order: the inference path before
  `recognize.inference` existed;
* `float32` and `bfloat16` after `prepare_for_inference` (adapters folded in, one dtype), each with
  batches in input order and length-bucketed (`predict_posts(length_buckets=True)`).

The work: FLOPs from the encoder's shapes on the bucketed batches (the tokens the posts really have):
2 x (multiply-adds of every linear layer) x tokens + 2 x 2 x tokens x length x hidden for attention
scores and values. The ceiling: plain `torch.matmul`s of exactly those shapes (every linear layer and
both attention products of every batch, random operands, the same dtype), timed in the same rounds.
`% of peak` = matmul time / recogniser time. The set-ups and the matmuls alternate over `--rounds`
rounds and each keeps its best round, so the ratios hold on a loaded machine.
"""

from __future__ import annotations

import argparse
import os
import time
from collections.abc import Callable

import torch

from gemner.recognize.encoding import encode_post
from gemner.recognize.inference import native_bf16, prepare_for_inference
from gemner.recognize.predict import BUCKET_WINDOW, input_limit, predict_posts

Shapes = list[tuple[int, int]]  # (posts, subwords) of each encoder batch


def bucketed_shapes(model, posts, batch_size: int) -> Shapes:
    """The (batch, length) of every batch `predict_posts` runs with length buckets on."""
    limit = input_limit(model)
    lengths = [len(encode_post(model.tokenizer, p.tokens, None, limit).input_ids) for p in posts if p.tokens]
    shapes = []
    window = batch_size * BUCKET_WINDOW
    for start in range(0, len(lengths), window):
        ordered = sorted(lengths[start:start + window])
        shapes += [(len(ordered[s:s + batch_size]), max(ordered[s:s + batch_size]))
                   for s in range(0, len(ordered), batch_size)]
    return shapes


def linear_shapes(encoder) -> list[tuple[int, int]]:
    """(in, out) of every linear layer of one encoder layer (BERT family: q, k, v, out, up, down)."""
    hidden, inner = encoder.config.hidden_size, encoder.config.intermediate_size
    return [(hidden, hidden)] * 4 + [(hidden, inner), (inner, hidden)]


def encoder_flops(encoder, shapes: Shapes) -> int:
    """Multiply-add FLOPs of the encoder's matmuls over the batches `shapes`."""
    per_token = 2 * sum(i * o for i, o in linear_shapes(encoder))
    hidden = encoder.config.hidden_size
    return encoder.config.num_hidden_layers * sum(
        b * s * per_token + 2 * 2 * b * s * s * hidden for b, s in shapes)


def matmul_reference(encoder, shapes: Shapes, dtype: torch.dtype) -> Callable[[], None]:
    """Plain matmuls of exactly the encoder's shapes (per batch: each linear layer, QK^T and AV)."""
    heads = encoder.config.num_attention_heads
    hidden = encoder.config.hidden_size
    weights = [torch.randn(i, o, dtype=dtype) for i, o in linear_shapes(encoder)]
    inputs = {(b, s): torch.randn(b * s, max(i for i, _ in linear_shapes(encoder)), dtype=dtype) for b, s in shapes}
    layers = encoder.config.num_hidden_layers

    def run() -> None:
        for b, s in shapes:
            x = inputs[(b, s)]
            q = torch.randn(b, heads, s, hidden // heads, dtype=dtype)
            for _ in range(layers):
                for w in weights:
                    torch.matmul(x[:, :w.shape[0]], w)
                torch.matmul(torch.matmul(q, q.transpose(-1, -2)), q)

    return run


def timed(fn: Callable[[], object]) -> float:
    start = time.perf_counter()
    fn()
    return time.perf_counter() - start


def main() -> None:
    from gemner.data.benchmarks import load_dataset
    from gemner.paths import models_dir
    from gemner.recognize import Recognizer

    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--posts", type=int, default=512)
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--threads", type=int, default=None)
    parser.add_argument("--model", default=str(models_dir() / "fmnerg-recognizer-lite"))
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)  # once, for the whole run
    posts = load_dataset("fmnerg", "test").posts[:args.posts]
    loaded = Recognizer.from_pretrained(args.model).eval()
    models = {"float32": prepare_for_inference(Recognizer.from_pretrained(args.model), "float32"),
              "bfloat16": prepare_for_inference(Recognizer.from_pretrained(args.model), "bfloat16")}
    setups: dict[str, Callable[[], object]] = {
        "as loaded (LoRA layers, bf16 autocast), input order": lambda: list(
            predict_posts(loaded, posts, batch_size=args.batch_size, length_buckets=False))}
    for dtype, model in models.items():
        for buckets in (False, True):
            name = f"{dtype}, adapters merged, {'length-bucketed' if buckets else 'input order'}"
            setups[name] = lambda m=model, b=buckets: list(
                predict_posts(m, posts, batch_size=args.batch_size, length_buckets=b))
    encoder = models["float32"].encoder
    shapes = bucketed_shapes(models["float32"], posts, args.batch_size)
    flops = encoder_flops(encoder, shapes)
    for dtype in ("float32", "bfloat16"):
        setups[f"plain matmuls of the same shapes, {dtype}"] = matmul_reference(encoder, shapes, getattr(torch, dtype))

    for fn in setups.values():  # warm-up: first-call costs, oneDNN kernel choice
        fn()
    best = {name: float("inf") for name in setups}
    for _ in range(args.rounds):
        for name, fn in setups.items():
            best[name] = min(best[name], timed(fn))
    report(best, flops, len(posts), shapes, args)


def report(best: dict[str, float], flops: int, n_posts: int, shapes: Shapes, args) -> None:
    tokens = sum(b * s for b, s in shapes)
    load = os.getloadavg()[0] if hasattr(os, "getloadavg") else float("nan")
    print(f"{n_posts} FMNERG test posts, {tokens} subwords in {len(shapes)} bucketed batches of <= {args.batch_size}; "
          f"{torch.get_num_threads()} threads; native bf16: {native_bf16()}; load average {load:.1f}; "
          f"best of {args.rounds} rounds")
    print(f"encoder work: {flops / 1e9:.2f} GFLOP ({flops / n_posts / 1e6:.1f} MFLOP per post)\n")
    print("| set-up | seconds | posts/s | GFLOP/s | % of matmul peak (same dtype) | x as loaded |")
    print("| --- | ---: | ---: | ---: | ---: | ---: |")
    base = best["as loaded (LoRA layers, bf16 autocast), input order"]
    for name, seconds in best.items():
        if name.startswith("plain"):
            continue
        dtype = "bfloat16" if name.startswith(("bfloat16", "as loaded")) else "float32"
        peak = best[f"plain matmuls of the same shapes, {dtype}"]
        print(f"| {name} | {seconds:.2f} | {n_posts / seconds:.1f} | {flops / seconds / 1e9:.1f} | "
              f"{100 * peak / seconds:.0f} % | {base / seconds:.2f}x |")
    for dtype in ("float32", "bfloat16"):
        seconds = best[f"plain matmuls of the same shapes, {dtype}"]
        print(f"| plain matmuls of the same shapes, {dtype} | {seconds:.2f} | - | {flops / seconds / 1e9:.1f} "
              f"| 100 % | - |")
    for dtype in ("float32", "bfloat16"):
        plain = best[f"{dtype}, adapters merged, input order"]
        bucketed = best[f"{dtype}, adapters merged, length-bucketed"]
        print(f"\n{dtype}: length buckets {plain / bucketed:.2f}x the posts/s of input-order batches")
    ratio = best["float32, adapters merged, length-bucketed"] / best["bfloat16, adapters merged, length-bucketed"]
    print(f"bfloat16 / float32 posts/s (both bucketed): {ratio:.2f}x")


if __name__ == "__main__":
    main()
