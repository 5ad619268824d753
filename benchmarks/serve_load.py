"""Load test of `gemner serve` on this machine (127.0.0.1 only; every loop is bounded in count and time).

Starts two servers of the same pipeline: one batching concurrent callers (`--max-batch 16`) and one
answering one post at a time (`--max-batch 1`), then, with FMNERG test posts:

1. N concurrent clients for T seconds against each server, N in `--clients` (default 1 4 16), the two
   servers measured in turn at each N: requests/s, p50/p95/p99 latency, 4xx/5xx, and the batched /
   one-at-a-time throughput ratio;
2. callers that disconnect mid-request (raw sockets closed 10-300 ms after sending) mixed with normal ones;
3. a burst of `--burst` simultaneous requests, beyond the batched server's queue (`--max-queue`): 429s with
   Retry-After, no 5xx, and the server still answers after;
4. the batched server's RSS after warm-up, after each of 1-3, and after N, 2N, 4N more requests (`memory_phases`);
5. with `--reference`, the pipeline's own posts/s at 1 and 16 posts per call; the load average at both ends.

    python benchmarks/serve_load.py -c lite --seconds 30 --output load.json
"""

from __future__ import annotations

import argparse
import itertools
import json
import os
import random
import signal
import socket
import subprocess
import sys
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field

import httpx
import psutil

HOST = "127.0.0.1"


@dataclass
class Load:
    seconds: float = 0.0
    latencies: list[float] = field(default_factory=list)
    statuses: dict[int, int] = field(default_factory=dict)
    transport_errors: int = 0

    def add(self, status: int, latency: float) -> None:
        self.statuses[status] = self.statuses.get(status, 0) + 1
        if status == 200:
            self.latencies.append(latency)

    def summary(self) -> dict:
        lat = sorted(self.latencies)

        def pct(q: float) -> float | None:
            return round(1000 * lat[min(len(lat) - 1, int(q * len(lat)))], 1) if lat else None

        return {"ok": len(lat), "rps": round(len(lat) / self.seconds, 2) if self.seconds else 0.0,
                "p50_ms": pct(0.50), "p95_ms": pct(0.95), "p99_ms": pct(0.99),
                "4xx": sum(n for s, n in self.statuses.items() if 400 <= s < 500),
                "5xx": sum(n for s, n in self.statuses.items() if s >= 500),
                "transport_errors": self.transport_errors, "statuses": dict(sorted(self.statuses.items()))}


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind((HOST, 0))
        return sock.getsockname()[1]


class Server:
    """`gemner serve` in a child process on a free loopback port."""

    def __init__(self, config: str, max_batch: int, threads: int, max_queue: int, timeout: float, log_path: str):
        self.port = free_port()
        self.url = f"http://{HOST}:{self.port}"
        self.log = open(log_path, "w")  # noqa: SIM115  (closed in stop)
        command = [sys.executable, "-m", "gemner", "serve", "-c", config, "--host", HOST, "--port", str(self.port),
                   "--max-batch", str(max_batch), "--threads", str(threads), "--max-queue", str(max_queue),
                   "--timeout", str(timeout)]
        env = {k: v for k, v in os.environ.items() if k != "GEMNER_SERVE_TOKEN"}
        self.process = subprocess.Popen(command, stdout=self.log, stderr=subprocess.STDOUT, env=env)

    def wait_ready(self, timeout: float) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise SystemExit(f"the server on port {self.port} exited; see {self.log.name}")
            try:
                if httpx.get(f"{self.url}/readyz", timeout=5).status_code == 200:
                    return
            except httpx.TransportError:
                pass
            time.sleep(1)
        raise SystemExit(f"the server on port {self.port} was not ready within {timeout:.0f} s")

    def rss_mb(self) -> float:
        return round(psutil.Process(self.process.pid).memory_info().rss / 2**20, 1)

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGINT)
            try:
                self.process.wait(timeout=30)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(timeout=10)
        self.log.close()


def run_clients(url: str, texts: list[str], clients: int, seconds: float, max_requests: int) -> Load:
    """`clients` threads, each with its own keep-alive connection, posting until `seconds` pass."""
    load, lock = Load(), threading.Lock()
    issued = iter(range(max_requests))
    start = time.monotonic()
    stop_at = start + seconds

    def client(seed: int) -> None:
        rng = random.Random(seed)
        with httpx.Client(timeout=120) as http:
            while time.monotonic() < stop_at and next(issued, None) is not None:
                began = time.monotonic()
                try:
                    status = http.post(f"{url}/v1/entities", json={"text": rng.choice(texts)}).status_code
                except httpx.TransportError:
                    with lock:
                        load.transport_errors += 1
                    continue
                with lock:
                    load.add(status, time.monotonic() - began)

    with ThreadPoolExecutor(clients) as pool:
        list(pool.map(client, range(clients)))
    load.seconds = time.monotonic() - start
    return load


def disconnecting(url: str, texts: list[str], clients: int, seconds: float) -> dict:
    """Half the callers send a request and hang up 10-300 ms later; the other half wait for answers."""
    port = int(url.rsplit(":", 1)[1])
    hung_up = 0
    stop_at = time.monotonic() + seconds

    def leaver(seed: int) -> int:
        rng, count = random.Random(seed), 0
        while time.monotonic() < stop_at and count < 10_000:
            body = json.dumps({"text": rng.choice(texts)}).encode()
            with socket.create_connection((HOST, port), timeout=5) as sock:
                sock.sendall(b"POST /v1/entities HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
                             b"Content-Length: %d\r\n\r\n%s" % (len(body), body))
                time.sleep(rng.uniform(0.01, 0.3))
            count += 1
        return count

    with ThreadPoolExecutor(clients) as pool:
        leavers = [pool.submit(leaver, seed) for seed in range(clients // 2)]
        staying = run_clients(url, texts, clients - clients // 2, seconds, 100_000)
        hung_up = sum(f.result() for f in leavers)
    return {"hung_up": hung_up, **staying.summary()}


def burst(url: str, texts: list[str], size: int) -> dict:
    """`size` requests at once, each on its own connection."""
    load, lock, gate = Load(), threading.Lock(), threading.Barrier(size)
    retry_after: list[int] = []

    def one(i: int) -> None:
        gate.wait(timeout=60)
        began = time.monotonic()
        try:
            answer = httpx.post(f"{url}/v1/entities", json={"text": texts[i % len(texts)]}, timeout=300)
        except httpx.TransportError:
            with lock:
                load.transport_errors += 1
            return
        with lock:
            load.add(answer.status_code, time.monotonic() - began)
            if answer.status_code == 429:
                retry_after.append(int(answer.headers["retry-after"]))

    start = time.monotonic()
    with ThreadPoolExecutor(size) as pool:
        list(pool.map(one, range(size)))
    load.seconds = time.monotonic() - start
    return {**load.summary(), "retry_after_s": sorted(set(retry_after))}


def memory_phases(server: Server, texts: list[str], clients: int, requests: int, tolerance_mb: float) -> dict:
    """RSS of `server` after N, 2N and 4N requests (N = `requests`, `clients` at a time). A leak grows it by
    the same amount per request, so by about twice as much over the last 2N as over the N before; caches
    and the allocator's pools grow to the shapes seen and level off. `bounded`: the last 2N requests grew
    it by at most `tolerance_mb`, or per request by at most 3/4 of what the N before did."""
    rss, done = [server.rss_mb()], 0
    for total in (requests, 2 * requests, 4 * requests):
        load = run_clients(server.url, texts, clients, 600, total - done)
        done += load.summary()["ok"] + sum(n for s, n in load.statuses.items() if s != 200)
        rss.append(server.rss_mb())
    growth = [round(b - a, 1) for a, b in itertools.pairwise(rss)]
    per_request_kb = [round(1024 * g / n, 1) for g, n in zip(growth, (requests, requests, 2 * requests), strict=True)]
    bounded = growth[-1] <= tolerance_mb or per_request_kb[-1] <= 0.75 * per_request_kb[-2]
    return {"requests": [0, requests, 2 * requests, 4 * requests], "answered": done, "rss_mb": rss,
            "growth_mb": growth, "growth_kb_per_request": per_request_kb, "tolerance_mb": tolerance_mb,
            "bounded": bounded}


def pipeline_reference(config: str, texts: list[str], threads: int, seconds: float) -> dict:
    """The pipeline's own posts/s in this process, one post per call and 16 per call (`GEM.predict_batch`,
    no HTTP): the most the batched server can gain over the one-at-a-time server."""
    import torch

    from gemner.data.types import Post
    from gemner.pipeline import GEM, load_config

    torch.set_num_threads(threads)
    gem, rates, count = GEM(load_config(config)), {}, 0
    list(gem.predict_batch([Post.from_text("warm", texts[0])], batch_size=1))
    for size in (1, 16, 1, 16):  # twice each, interleaved: the machine's load drifts
        start, done = time.monotonic(), 0
        while time.monotonic() - start < seconds / 4:
            posts = [Post.from_text(f"p{count + i}", texts[(count + i) % len(texts)]) for i in range(size)]
            done, count = done + len(list(gem.predict_batch(posts, batch_size=size))), count + size
        rates.setdefault(size, []).append(done / (time.monotonic() - start))
    posts_per_s = {size: round(sum(r) / len(r), 2) for size, r in rates.items()}
    return {"posts_per_s": posts_per_s, "ratio": round(posts_per_s[16] / posts_per_s[1], 2)}


def without_reranker(config: str) -> str:
    """A YAML copy of `config` with the rerank stage off, in the temporary folder."""
    import tempfile

    from gemner.pipeline.config import load_config, with_changes

    path = os.path.join(tempfile.mkdtemp(prefix="serve-load-"), "gemner.yaml")
    with open(path, "w") as handle:
        handle.write(with_changes(load_config(config), {"rerank": {"enabled": False}}).to_yaml())
    return path


def table(results: dict) -> str:
    lines = ["| server | clients | requests/s | p50 ms | p95 ms | p99 ms | 4xx | 5xx |",
             "| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: |"]
    for row in results["load"]:
        s = row["summary"]
        lines.append(f"| {row['server']} | {row['clients']} | {s['rps']} | {s['p50_ms']} | {s['p95_ms']} | "
                     f"{s['p99_ms']} | {s['4xx']} | {s['5xx'] + s['transport_errors']} |")
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("-c", "--config", default="lite")
    parser.add_argument("--clients", type=int, nargs="+", default=[1, 4, 16])
    parser.add_argument("--seconds", type=float, default=30.0, help="Per measurement (at most 300).")
    parser.add_argument("--max-requests", type=int, default=20_000, help="Per measurement.")
    parser.add_argument("--threads", type=int, default=1, help="torch threads per server.")
    parser.add_argument("--max-queue", type=int, default=32, help="The batched server's queue (burst target).")
    parser.add_argument("--burst", type=int, default=96)
    parser.add_argument("--posts", type=int, default=200, help="FMNERG test posts to draw from.")
    parser.add_argument("--start-timeout", type=float, default=900.0)
    parser.add_argument("--timeout", type=float, default=600.0, help="The servers' per-request timeout.")
    parser.add_argument("--no-rerank", action="store_true",
                        help="Serve the configuration with its reranker off (what batching does for the recogniser).")
    parser.add_argument("--leak-requests", type=int, default=500,
                        help="N of the memory check: RSS after N, 2N and 4N requests at the most clients.")
    parser.add_argument("--rss-tolerance-mb", type=float, default=32.0,
                        help="The memory check passes when the last 2N requests grow RSS by at most this (or by "
                             "at most 3/4 as much per request as the N before).")
    parser.add_argument("--reference", action="store_true",
                        help="After the servers, time the pipeline itself at 1 and 16 posts per call (2 x --seconds).")
    parser.add_argument("--output", default=None, help="Also write the results as JSON here.")
    args = parser.parse_args()
    args.seconds = min(args.seconds, 300.0)
    if args.no_rerank:
        args.config = without_reranker(args.config)
    from gemner.data import load_dataset

    texts = [" ".join(p.tokens) for p in load_dataset("fmnerg", "test").posts[: args.posts]]
    results: dict = {"config": args.config, "no_rerank": args.no_rerank, "cpus": os.cpu_count(),
                     "loadavg_start": os.getloadavg(), "threads": args.threads, "seconds": args.seconds, "load": []}
    servers = {"batched": Server(args.config, 16, args.threads, args.max_queue, args.timeout,
                                 "/tmp/serve_load_batched.log"),
               "one-at-a-time": Server(args.config, 1, args.threads, 256, args.timeout, "/tmp/serve_load_single.log")}
    try:
        for server in servers.values():
            server.wait_ready(args.start_timeout)
        batched = servers["batched"]
        for server in servers.values():
            run_clients(server.url, texts, 2, 5, 10)  # warm-up
        results["rss_mb_before"] = batched.rss_mb()
        for clients in args.clients:
            for name, server in servers.items():
                load = run_clients(server.url, texts, clients, args.seconds, args.max_requests)
                results["load"].append({"server": name, "clients": clients, "summary": load.summary(),
                                        "batched_rss_mb": batched.rss_mb()})
                print(f"{name:>14} {clients:>3} clients: {load.summary()}", flush=True)
        rows = {(r["server"], r["clients"]): r["summary"]["rps"] for r in results["load"]}
        results["ratio"] = {c: round(rows["batched", c] / rows["one-at-a-time", c], 2)
                            for c in args.clients if rows.get(("one-at-a-time", c))}
        results["disconnects"] = disconnecting(batched.url, texts, 16, args.seconds)
        print(f"disconnecting callers: {results['disconnects']}", flush=True)
        results["rss_mb_after_disconnects"] = batched.rss_mb()
        results["burst"] = burst(batched.url, texts, args.burst)
        print(f"burst of {args.burst}: {results['burst']}", flush=True)
        results["rss_mb_after_burst"] = batched.rss_mb()
        # N, 2N, 4N more requests: a leak keeps growing in proportion, a warmed-up allocator stays put
        results["memory"] = memory_phases(batched, texts, max(args.clients), args.leak_requests, args.rss_tolerance_mb)
        print(f"batched server RSS after N, 2N, 4N requests: {results['memory']}", flush=True)
        time.sleep(2)
        results["batching"] = httpx.get(f"{batched.url}/v1/config").json()["batching"]
        results["healthy_after"] = httpx.get(f"{batched.url}/readyz").status_code == 200
        results["rss_mb_after"] = batched.rss_mb()
    finally:
        for server in servers.values():
            server.stop()
    if args.reference:
        results["pipeline"] = pipeline_reference(args.config, texts, args.threads, 2 * args.seconds)
        print(f"the pipeline itself, in this process: {results['pipeline']}", flush=True)
    results["loadavg_end"] = os.getloadavg()
    print(table(results))
    rss = [results["rss_mb_before"], *(r["batched_rss_mb"] for r in results["load"]),
           results["rss_mb_after_disconnects"], results["rss_mb_after_burst"]]
    memory = results["memory"]
    print(f"batched / one-at-a-time requests/s: {results['ratio']}; batched server RSS (MB) after warm-up, each row, "
          f"the disconnects and the burst: {rss}; then after {memory['requests'][1:]} more requests: "
          f"{memory['rss_mb'][1:]} (growth {memory['growth_mb']} MB, {memory['growth_kb_per_request']} KB per request; "
          f"bounded: {memory['bounded']}); load average {results['loadavg_start']} -> {results['loadavg_end']}")
    if args.output:
        with open(args.output, "w") as handle:
            json.dump(results, handle, indent=2)


if __name__ == "__main__":
    main()
