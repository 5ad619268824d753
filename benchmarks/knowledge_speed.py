"""Knowledge-augmentation throughput, as ratios against a baseline run in the same process.

1. Local LM backend (default: the offline SmolLM2-135M): items/s one prompt at a time vs batched,
   and batched without the shared-prefix KV cache, on FMNERG dev posts.
2. OpenAI-compatible HTTP backend against a local test server that waits `--latency` seconds per
   request: items/s at 1 request in flight vs `--concurrency`.

    python benchmarks/knowledge_speed.py [--model smollm2-135m] [--n 16] [--batch-size 16] [--threads 1]
"""

from __future__ import annotations

import argparse
import sys
import threading
import time
from pathlib import Path


def local_speed(args: argparse.Namespace) -> None:
    import torch

    from gemner.data import load_dataset
    from gemner.knowledge.local_llm import LocalLLMBackend, LocalLLMConfig
    from gemner.knowledge.prompt import build_messages

    torch.set_num_threads(args.threads)
    posts = load_dataset("fmnerg", "dev").posts[: args.n]
    conversations = [build_messages(" ".join(p.tokens), "") for p in posts]
    backend = LocalLLMBackend(LocalLLMConfig(model=args.model, max_new_tokens=args.max_new_tokens, dtype=args.dtype))
    backend.generate(conversations[:1])  # warm-up; computes the shared prefix once

    def rate(batch_size: int, prefix_cache: bool) -> tuple[float, list[str]]:
        backend.config = LocalLLMConfig(model=args.model, batch_size=batch_size, max_new_tokens=args.max_new_tokens,
                                        prefix_cache=prefix_cache, dtype=args.dtype)
        began, texts = time.perf_counter(), []
        for start in range(0, len(conversations), batch_size):
            texts += [text for text, _ in backend.generate(conversations[start:start + batch_size])]
        return len(conversations) / (time.perf_counter() - began), texts

    one, one_texts = rate(1, True)
    batched, batched_texts = rate(args.batch_size, True)
    no_prefix, no_prefix_texts = rate(args.batch_size, False)
    same = sum(a == b for a, b in zip(one_texts, batched_texts, strict=True))
    same_np = sum(a == b for a, b in zip(batched_texts, no_prefix_texts, strict=True))
    print(f"local {args.model} ({args.dtype}, {args.threads} thread(s), {args.n} FMNERG dev posts, "
          f"max_new_tokens {args.max_new_tokens}, torch {torch.__version__})")
    print(f"  one at a time (prefix cache)   {one:7.3f} items/s   1.00x")
    print(f"  batched x{args.batch_size:<3} (prefix cache)  {batched:7.3f} items/s   {batched / one:.2f}x")
    print(f"  batched x{args.batch_size:<3} no prefix cache {no_prefix:7.3f} items/s   {no_prefix / one:.2f}x"
          f"   (prefix cache gain {batched / no_prefix:.2f}x)")
    print(f"  identical answers: batched vs one at a time {same}/{args.n}, prefix vs no prefix {same_np}/{args.n}")


def http_speed(args: argparse.Namespace) -> None:
    sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))
    from gemner.knowledge.backends import Request
    from gemner.knowledge.openai_llm import OpenAIChatBackend, OpenAIConfig
    from gemner.knowledge.prompt import build_messages
    from test_knowledge_support import ChatServer

    requests = [Request(f"k{i}", build_messages(f"benchmark tweet {i}", "")) for i in range(args.http_n)]
    rates = {}
    with ChatServer(delay=args.latency) as server:
        for threads in (1, args.concurrency):
            backend = OpenAIChatBackend(OpenAIConfig(model="bench", base_url=server.base_url, threads=threads,
                                                     api_key_env="GEMNER_BENCH_NO_KEY"))
            done: list[str] = []
            began = time.perf_counter()
            backend.run(requests, lambda r, res, done=done: done.append(r.key), threading.Event())
            assert len(done) == len(requests)
            rates[threads] = len(requests) / (time.perf_counter() - began)
    print(f"http backend vs local server, {args.latency * 1000:.0f} ms per request, {args.http_n} requests")
    print(f"  concurrency 1  {rates[1]:7.2f} items/s   1.00x")
    print(f"  concurrency {args.concurrency}  {rates[args.concurrency]:7.2f} items/s   "
          f"{rates[args.concurrency] / rates[1]:.2f}x")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default="smollm2-135m")
    parser.add_argument("--n", type=int, default=16, help="posts for the local backend")
    parser.add_argument("--batch-size", type=int, default=16)
    parser.add_argument("--max-new-tokens", type=int, default=32)
    parser.add_argument("--dtype", default="float32")
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--latency", type=float, default=0.1, help="seconds the test server waits per request")
    parser.add_argument("--http-n", type=int, default=48)
    parser.add_argument("--concurrency", type=int, default=8)
    parser.add_argument("--skip-local", action="store_true")
    args = parser.parse_args()
    http_speed(args)
    if not args.skip_local:
        local_speed(args)


if __name__ == "__main__":
    main()
