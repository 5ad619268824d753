"""Posts from concurrent callers gathered into pipeline batches, so that a loaded server runs at the
pipeline's batch throughput rather than one post at a time.

When the pipeline is free and posts wait, a batch leaves as soon as it holds `max_batch` posts, or when
no other caller is expected, or when the pipeline has waited `window_s` for company. A caller is expected
when it was answered within the last `EXPECTED_FOR_S` and has no post waiting or running: a client on a
kept-alive connection that posts again once answered. So one caller on its own never waits for a window,
and N callers that all wait for the same batch go together as soon as the last is back, instead of the
batch leaving without the slowest and the two groups staying out of step (one full batch and one of a
single post, each paying the pipeline's fixed cost per call). A caller that opens a new connection per
request is a new caller each time, and those answered within `EXPECTED_FOR_S` count as expected, so busy
callers of that kind wait the window, as with a fixed window; so does a post whose caller is unknown.

The pipeline runs in one thread, one batch at a time: the models are not shared between threads, and torch
uses its own threads within a batch. The queue is bounded: `submit` refuses posts beyond `max_queue` (the
caller answers 429), and a post whose caller gave up (timeout, disconnect) is dropped before it reaches the
pipeline.
"""

from __future__ import annotations

import asyncio
import math
import time
from collections import deque
from collections.abc import Callable, Hashable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any

from ..data.types import Post

Predict = Callable[[list[Post], bool], Sequence[Any]]  # (posts, keep_heatmaps) -> one result per post
Caller = Hashable  # who sent a post: its connection (client address and port); None when unknown
EXPECTED_FOR_S = 1.0  # a caller answered this recently, with nothing left in the server, may post again


class QueueFullError(Exception):
    """No room for the posts of a request; `retry_after` is an estimate in whole seconds."""

    def __init__(self, retry_after: int):
        super().__init__(f"the queue is full; retry in {retry_after} s")
        self.retry_after = retry_after


@dataclass(eq=False)
class Job:
    post: Post
    heatmaps: bool
    future: asyncio.Future
    arrived: float
    caller: Caller = None
    cleanup: Callable[[], None] = field(default=lambda: None)


class Callers:
    """Which callers have posts in the server, and which were answered recently (and may post again)."""

    def __init__(self) -> None:
        self._inside: dict[Caller, int] = {}  # caller -> posts waiting or running
        self._answered: dict[Caller, float] = {}  # caller -> when its last post left, if none is inside

    def enter(self, caller: Caller, posts: int) -> None:
        if caller is not None:
            self._inside[caller] = self._inside.get(caller, 0) + posts
            self._answered.pop(caller, None)

    def leave(self, caller: Caller, now: float) -> None:
        if caller is None or caller not in self._inside:
            return
        self._inside[caller] -= 1
        if not self._inside[caller]:
            del self._inside[caller]
            self._answered[caller] = now

    def expected(self, now: float) -> int:
        """Callers answered within `EXPECTED_FOR_S` with nothing inside (the older ones are forgotten)."""
        for caller in [c for c, when in self._answered.items() if now - when > EXPECTED_FOR_S]:
            del self._answered[caller]
        return len(self._answered)


@dataclass
class BatchStats:
    batches: int = 0
    posts: int = 0
    largest: int = 0
    dropped: int = 0  # posts whose caller had gone before their batch
    seconds_per_batch: float = 0.0  # moving average, for Retry-After

    def add(self, size: int, seconds: float) -> None:
        self.batches += 1
        self.posts += size
        self.largest = max(self.largest, size)
        weight = 0.2 if self.batches > 1 else 1.0
        self.seconds_per_batch += weight * (seconds - self.seconds_per_batch)


class Batcher:
    def __init__(self, predict: Predict, *, max_batch: int, window_s: float, max_queue: int,
                 executor: ThreadPoolExecutor):
        self._predict = predict
        self.max_batch = max_batch
        self.window_s = window_s
        self.max_queue = max_queue
        self._executor = executor
        self._jobs: deque[Job] = deque()
        self._arrived = asyncio.Event()
        self._callers = Callers()
        self._free_since = 0.0  # when the pipeline last finished a batch (loop time)
        self._task: asyncio.Task | None = None
        self.stats = BatchStats()

    def start(self) -> None:
        self._task = asyncio.get_running_loop().create_task(self._run(), name="gemner-batcher")

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            await asyncio.gather(self._task, return_exceptions=True)
        while self._jobs:
            job = self._jobs.popleft()
            job.future.cancel()
            self._release(job)

    @property
    def waiting(self) -> int:
        self._drop_abandoned()
        return len(self._jobs)

    def submit(self, posts: Sequence[Post], heatmaps: bool = False,
               cleanups: Sequence[Callable[[], None]] | None = None, caller: Caller = None) -> list[asyncio.Future]:
        """Queue the posts of one request (all or none); their futures resolve to their results.
        `QueueFullError` when they do not fit."""
        if self.waiting + len(posts) > self.max_queue:
            raise QueueFullError(self.retry_after())
        loop = asyncio.get_running_loop()
        now = loop.time()
        jobs = [Job(post, heatmaps, loop.create_future(), now, caller, *([cleanups[i]] if cleanups else []))
                for i, post in enumerate(posts)]
        self._callers.enter(caller, len(jobs))
        self._jobs.extend(jobs)
        self._arrived.set()
        return [job.future for job in jobs]

    def retry_after(self) -> int:
        batches_ahead = math.ceil((len(self._jobs) + 1) / self.max_batch) + 1  # +1: the one running now
        return max(1, math.ceil(batches_ahead * self.stats.seconds_per_batch))

    def _release(self, job: Job) -> None:
        """A post leaves the server (answered, failed, dropped): its file goes, its caller may come back."""
        job.cleanup()
        self._callers.leave(job.caller, asyncio.get_running_loop().time())

    def _drop_abandoned(self) -> None:
        kept = deque()
        for job in self._jobs:
            if job.future.done():  # cancelled by its caller
                self.stats.dropped += 1
                self._release(job)
            else:
                kept.append(job)
        self._jobs = kept

    def _company_possible(self, now: float) -> bool:
        return bool(self._callers.expected(now)) or any(job.caller is None for job in self._jobs)

    async def _gather(self) -> None:
        """Return when a batch should leave: `max_batch` posts wait, or no other caller is expected, or
        `window_s` has passed since the first post arrived or the pipeline became free (the later)."""
        loop = asyncio.get_running_loop()
        while not self.waiting:
            self._arrived.clear()
            await self._arrived.wait()
        while self.waiting < self.max_batch and self._company_possible(loop.time()):
            remaining = max(self._jobs[0].arrived, self._free_since) + self.window_s - loop.time()
            if remaining <= 0:
                return
            self._arrived.clear()
            try:
                await asyncio.wait_for(self._arrived.wait(), remaining)
            except asyncio.TimeoutError:
                return

    def _take(self) -> list[Job]:
        batch = []
        while self._jobs and len(batch) < self.max_batch:
            batch.append(self._jobs.popleft())
        return batch

    async def _run(self) -> None:
        loop = asyncio.get_running_loop()
        while True:
            await self._gather()
            batch = self._take()
            if not batch:
                continue
            started = time.perf_counter()
            try:
                results = await loop.run_in_executor(self._executor, self._predict, [job.post for job in batch],
                                                     any(job.heatmaps for job in batch))
            except Exception as err:  # the callers answer 500 with their request id; the server goes on
                for job in batch:
                    if not job.future.done():
                        job.future.set_exception(err)
            else:
                for job, result in zip(batch, results, strict=True):
                    if not job.future.done():
                        job.future.set_result(result)
            finally:
                for job in batch:
                    self._release(job)
                self._free_since = loop.time()
            self.stats.add(len(batch), time.perf_counter() - started)
