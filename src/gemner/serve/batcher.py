"""Posts from concurrent callers gathered into pipeline batches, so that a loaded server runs at the
pipeline's batch throughput rather than one post at a time.

The first post to arrive waits at most `window_s` for company; a batch leaves as soon as it holds
`max_batch` posts. Posts that arrive while a batch runs wait for the next one, and go at once when it
is done (their window has passed). The pipeline runs in one thread, one batch at a time: the models
are not shared between threads, and torch uses its own threads within a batch. The queue is bounded:
`submit` refuses posts beyond `max_queue` (the caller answers 429), and a post whose caller gave up
(timeout, disconnect) is dropped before it reaches the pipeline.
"""

from __future__ import annotations

import asyncio
import math
import time
from collections import deque
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any

from ..data.types import Post

Predict = Callable[[list[Post], bool], Sequence[Any]]  # (posts, keep_heatmaps) -> one result per post


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
    cleanup: Callable[[], None] = field(default=lambda: None)


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
            job.cleanup()

    @property
    def waiting(self) -> int:
        self._drop_abandoned()
        return len(self._jobs)

    def submit(self, posts: Sequence[Post], heatmaps: bool = False,
               cleanups: Sequence[Callable[[], None]] | None = None) -> list[asyncio.Future]:
        """Queue the posts of one request (all or none); their futures resolve to their results.
        `QueueFullError` when they do not fit."""
        if self.waiting + len(posts) > self.max_queue:
            raise QueueFullError(self.retry_after())
        loop = asyncio.get_running_loop()
        now = loop.time()
        jobs = [Job(post, heatmaps, loop.create_future(), now, *([cleanups[i]] if cleanups else []))
                for i, post in enumerate(posts)]
        self._jobs.extend(jobs)
        self._arrived.set()
        return [job.future for job in jobs]

    def retry_after(self) -> int:
        batches_ahead = math.ceil((len(self._jobs) + 1) / self.max_batch) + 1  # +1: the one running now
        return max(1, math.ceil(batches_ahead * self.stats.seconds_per_batch))

    def _drop_abandoned(self) -> None:
        kept = deque()
        for job in self._jobs:
            if job.future.done():  # cancelled by its caller
                self.stats.dropped += 1
                job.cleanup()
            else:
                kept.append(job)
        self._jobs = kept

    async def _gather(self) -> None:
        """Return when a batch should leave: `max_batch` posts wait, or the oldest waited `window_s`."""
        loop = asyncio.get_running_loop()
        while not self.waiting:
            self._arrived.clear()
            await self._arrived.wait()
        while self.waiting < self.max_batch:
            remaining = self._jobs[0].arrived + self.window_s - loop.time()
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
                    job.cleanup()
            self.stats.add(len(batch), time.perf_counter() - started)
