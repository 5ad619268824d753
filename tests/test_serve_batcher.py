"""The batcher of `gemner serve` on its own, with a stand-in pipeline that records its batches: when a batch
leaves (full, no other caller expected, or the window passed since the pipeline became free), and that a
caller on its own never waits for the window. Also the per-request work kept off the event loop's hot path
(request ids, the token check), and the load test's memory check (a leak against a warm-up)."""

from __future__ import annotations

import asyncio
import sys
import time
from concurrent.futures import ThreadPoolExecutor

import pytest

from gemner.data.types import Post
from gemner.serve import batcher as batching
from gemner.serve.batcher import Batcher, Callers, QueueFullError

WINDOW_S = 0.4  # long beside the stand-in pipeline, so a batch that waited for it is plain to see


class Recorder:
    """A pipeline that takes `seconds` per batch and remembers the post ids of each batch."""

    def __init__(self, seconds: float = 0.0):
        self.seconds = seconds
        self.batches: list[list[str]] = []

    def __call__(self, posts: list[Post], heatmaps: bool) -> list[str]:
        self.batches.append([post.id for post in posts])
        time.sleep(self.seconds)
        return [f"result of {post.id}" for post in posts]


def _post(post_id: str) -> Post:
    return Post(post_id, ["Obama", "in", "Paris"])


async def _with_batcher(pipeline: Recorder, scenario, max_batch: int = 4, window_s: float = WINDOW_S):
    with ThreadPoolExecutor(max_workers=1) as executor:
        batcher = Batcher(pipeline, max_batch=max_batch, window_s=window_s, max_queue=8, executor=executor)
        batcher.start()
        try:
            return await scenario(batcher)
        finally:
            await batcher.stop()


async def _ask(batcher: Batcher, post_id: str, caller) -> tuple[str, float]:
    began = time.perf_counter()
    [future] = batcher.submit([_post(post_id)], caller=caller)
    return await future, time.perf_counter() - began


def test_a_caller_on_its_own_does_not_wait_for_the_window():
    pipeline = Recorder()

    async def scenario(batcher):
        timings = [await _ask(batcher, f"p{i}", ("127.0.0.1", 5000)) for i in range(4)]
        return timings

    timings = asyncio.run(_with_batcher(pipeline, scenario))
    assert [result for result, _ in timings] == [f"result of p{i}" for i in range(4)]
    assert pipeline.batches == [["p0"], ["p1"], ["p2"], ["p3"]]
    assert max(seconds for _, seconds in timings) < WINDOW_S / 2  # the window would have cost 0.4 s each


def test_callers_answered_together_are_waited_for_and_go_together():
    """Three kept-alive callers share a batch; the next round goes as soon as the last of them is back,
    even when the first came back a long while before (no batch of two, then one of one)."""
    pipeline = Recorder()
    callers = [("127.0.0.1", 6000 + i) for i in range(3)]

    async def scenario(batcher):
        await asyncio.gather(*(_ask(batcher, f"a{i}", c) for i, c in enumerate(callers)))

        async def later(i: int, caller) -> tuple[str, float]:
            await asyncio.sleep(0.05 * i)  # the slowest is back 0.1 s after the first
            return await _ask(batcher, f"b{i}", caller)

        began = time.perf_counter()
        await asyncio.gather(*(later(i, c) for i, c in enumerate(callers)))
        return time.perf_counter() - began

    seconds = asyncio.run(_with_batcher(pipeline, scenario))
    assert [sorted(batch) for batch in pipeline.batches[-1:]] == [["b0", "b1", "b2"]]
    assert sum(len(batch) for batch in pipeline.batches) == 6
    assert seconds < WINDOW_S  # it left when the third came, not when the window ran out


def test_a_caller_that_does_not_come_back_is_waited_for_at_most_the_window():
    pipeline = Recorder()

    async def scenario(batcher):
        await asyncio.gather(_ask(batcher, "a0", ("127.0.0.1", 7000)), _ask(batcher, "a1", ("127.0.0.1", 7001)))
        return await _ask(batcher, "b0", ("127.0.0.1", 7000))  # 7001 has gone quiet

    result, seconds = asyncio.run(_with_batcher(pipeline, scenario))
    assert result == "result of b0" and pipeline.batches[-1] == ["b0"]
    assert WINDOW_S * 0.8 < seconds < WINDOW_S * 3


def test_posts_that_waited_through_a_batch_still_wait_for_the_callers_it_answers():
    """A post that arrives while a batch runs does not leave alone the moment the pipeline is free: the
    callers of that batch are expected back, so it waits (at most the window) and goes with them."""
    pipeline = Recorder(seconds=0.2)
    first = [("127.0.0.1", 8000 + i) for i in range(3)]
    late = ("127.0.0.1", 8100)

    async def scenario(batcher):
        async def round_trip(i: int, caller) -> None:
            await _ask(batcher, f"a{i}", caller)
            await asyncio.sleep(0.02)  # the caller reads its answer and posts again
            await _ask(batcher, f"b{i}", caller)

        async def straggler() -> None:
            await asyncio.sleep(0.1)  # arrives while the first batch runs
            await _ask(batcher, "s", late)

        await asyncio.gather(*(round_trip(i, c) for i, c in enumerate(first)), straggler())

    asyncio.run(_with_batcher(pipeline, scenario))
    assert [sorted(batch) for batch in pipeline.batches] == [["a0", "a1", "a2"], ["b0", "b1", "b2", "s"]]


def test_posts_of_unknown_callers_wait_for_the_window_and_a_full_batch_leaves_at_once():
    pipeline = Recorder()

    async def scenario(batcher):
        one = await _ask(batcher, "x", None)
        began = time.perf_counter()
        futures = batcher.submit([_post(f"f{i}") for i in range(4)])
        await asyncio.gather(*futures)
        return one[1], time.perf_counter() - began

    alone, full = asyncio.run(_with_batcher(pipeline, scenario))
    assert alone >= WINDOW_S * 0.8  # nobody to expect by name: the fixed window
    assert full < WINDOW_S / 2 and pipeline.batches[-1] == [f"f{i}" for i in range(4)]


def test_the_queue_is_bounded_and_dropped_posts_free_their_caller():
    pipeline = Recorder(seconds=0.3)

    async def scenario(batcher):
        running = batcher.submit([_post("r")], caller="c0")
        await asyncio.sleep(0.05)  # "r" is in the pipeline now
        waiting = batcher.submit([_post(f"w{i}") for i in range(8)], caller="c1")
        with pytest.raises(QueueFullError):
            batcher.submit([_post("over")], caller="c2")
        for future in waiting:
            future.cancel()  # the caller hung up
        assert batcher.waiting == 0 and batcher.stats.dropped == 8
        await asyncio.gather(*running)

    asyncio.run(_with_batcher(pipeline, scenario, max_batch=16))
    assert pipeline.batches == [["r"]]


def test_callers_are_forgotten_after_a_while(monkeypatch):
    monkeypatch.setattr(batching, "EXPECTED_FOR_S", 0.5)
    callers = Callers()
    callers.enter("a", 2)
    callers.enter("b", 1)
    assert callers.expected(0.0) == 0  # both have posts inside
    callers.leave("a", 1.0)
    assert callers.expected(1.0) == 0  # "a" still has one inside
    callers.leave("a", 1.0)
    callers.leave("b", 1.2)
    assert callers.expected(1.3) == 2
    assert callers.expected(1.6) == 1  # "a" was answered 0.6 s ago
    callers.enter("b", 1)
    assert callers.expected(1.6) == 0
    callers.leave(None, 2.0)  # unknown callers are never counted
    assert callers.expected(2.0) == 0


def test_request_ids_are_unique_and_cheap_and_the_token_check_stays_on_the_event_loop():
    import inspect

    from gemner.serve.app import _bearer
    from gemner.serve.guard import Guard
    from gemner.serve.limits import ServeSettings

    guard = Guard(None, 1)
    ids = [guard.next_id() for _ in range(10_000)]
    assert len(set(ids)) == len(ids) and all(len(i) == 16 and int(i, 16) >= 0 for i in ids)
    # FastAPI runs a plain `def` dependency in a worker thread: a thread hop per request
    assert inspect.iscoroutinefunction(_bearer(ServeSettings(token="secret")))


@pytest.mark.parametrize(("per_request_mb", "bounded"), [
    (lambda done: 0.1, False),  # a leak: the same growth per request, 60 MB over the last 2N
    (lambda done: 0.1 if done < 150 else 0.0, True),  # a warm-up that levels off
    (lambda done: 0.1 * 100 / (100 + done), True),  # a warm-up that slows
])
def test_the_load_tests_memory_check_tells_a_leak_from_a_warm_up(monkeypatch, per_request_mb, bounded):
    import importlib.util
    from pathlib import Path

    path = Path(__file__).parent.parent / "benchmarks" / "serve_load.py"
    spec = importlib.util.spec_from_file_location("serve_load", path)
    serve_load = importlib.util.module_from_spec(spec)
    monkeypatch.setitem(sys.modules, "serve_load", serve_load)  # its dataclasses look their module up
    spec.loader.exec_module(serve_load)

    class Server:  # its RSS grows as requests are answered
        url, rss, done = "http://127.0.0.1:1", 500.0, 0

        def rss_mb(self) -> float:
            return round(self.rss, 1)

    server = Server()

    def run_clients(url, texts, clients, seconds, max_requests):
        for _ in range(max_requests):
            server.rss += per_request_mb(server.done)
            server.done += 1
        load = serve_load.Load(seconds=1.0)
        for _ in range(max_requests):
            load.add(200, 0.01)
        return load

    monkeypatch.setattr(serve_load, "run_clients", run_clients)
    memory = serve_load.memory_phases(server, ["a post"], 16, 150, tolerance_mb=8)
    assert memory["answered"] == 600 and memory["requests"] == [0, 150, 300, 600]
    assert memory["bounded"] is bounded
