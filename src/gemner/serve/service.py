"""The pipeline behind the HTTP routes: loaded in the background at start-up, fed by the batcher, and
answering each post with the record `gemner predict` writes (`PostResult.record()`)."""

from __future__ import annotations

import asyncio
import base64
import io
import logging
import shutil
import tempfile
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any, Protocol

import numpy as np
from PIL import Image
from starlette.requests import Request

from ..data.types import Post
from ..pipeline.config import PipelineConfig
from .batcher import Batcher, QueueFullError
from .inputs import ApiError, Submission
from .limits import ServeSettings

log = logging.getLogger("gemner.serve")
HEATMAP_SIDE = 256  # heat maps are smooth; the page scales them up to the image


class Pipeline(Protocol):
    """What the service needs of `gemner.GEM`."""

    config: PipelineConfig

    def stages(self) -> dict[str, str]: ...

    def predict_batch(self, posts: Any, batch_size: int = ..., keep_heatmaps: bool = ...) -> Any: ...


def build_gem(config: PipelineConfig, *, trust_remote_code: bool = False) -> Pipeline:
    """`GEM(config)` whose notes (a stage without its weights, ...) go to the server log."""
    from ..pipeline.gem import GEM

    return GEM(config, notify=lambda message: log.warning("note: %s", message), trust_remote_code=trust_remote_code)


def heatmap_png(heatmap: Any) -> str:
    """A traced heat map as a `data:` URL: a jet-coloured PNG whose opacity follows the heat."""
    from ..ground.overlay import jet, normalised

    heat = normalised(heatmap)
    rgba = np.dstack([jet(heat), (heat**2 * 210).astype(np.uint8)])  # the cool parts stay see-through
    picture = Image.fromarray(rgba, "RGBA")
    picture.thumbnail((HEATMAP_SIDE, HEATMAP_SIDE), Image.Resampling.BILINEAR)
    buffer = io.BytesIO()
    picture.save(buffer, format="PNG", optimize=True)
    return "data:image/png;base64," + base64.b64encode(buffer.getvalue()).decode("ascii")


def _set_threads(threads: int | None) -> None:
    """torch's thread count, set in the pipeline's own thread (OpenMP keeps it per thread)."""
    if threads:
        import torch

        torch.set_num_threads(threads)


async def _until_disconnected(request: Request) -> None:
    """Return when the caller closes the connection (the body has been read, so only that can arrive)."""
    while (await request.receive())["type"] != "http.disconnect":
        pass


def _connection(request: Request) -> tuple[str, int] | None:
    """The caller's connection (address, port): a kept-alive client is the same caller from one post to the next."""
    client = request.scope.get("client")
    return (client[0], client[1]) if client else None


class Service:
    def __init__(self, config: PipelineConfig, settings: ServeSettings, build: Callable[[PipelineConfig], Pipeline]):
        self.config = config
        self.settings = settings
        self._build = build
        self.pipeline: Pipeline | None = None
        self.load_error: str | None = None
        self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="gemner-pipeline",
                                            initializer=_set_threads, initargs=(settings.threads,))
        self._images = Path(tempfile.mkdtemp(prefix="gemner-serve-"))
        self.batcher: Batcher | None = None
        self._loading: asyncio.Future | None = None

    @property
    def ready(self) -> bool:
        return self.pipeline is not None

    async def start(self) -> None:
        self.batcher = Batcher(self._predict, max_batch=self.settings.max_batch,
                               window_s=self.settings.batch_window_ms / 1000, max_queue=self.settings.max_queue,
                               executor=self._executor)
        self.batcher.start()
        self._loading = asyncio.get_running_loop().run_in_executor(self._executor, self._load)

    async def stop(self) -> None:
        if self.batcher is not None:
            await self.batcher.stop()
        self._executor.shutdown(wait=False, cancel_futures=True)
        shutil.rmtree(self._images, ignore_errors=True)

    def _load(self) -> None:
        """Build the pipeline and run one post through it, so that lazily loaded models are in memory
        before `/readyz` says so."""
        try:
            pipeline = self._build(self.config)
            list(pipeline.predict_batch([Post("warm-up", ["Warm", "up", "in", "Paris"])], batch_size=1))
        except Exception as err:  # reported by /readyz; the traceback goes to the log only
            log.exception("loading the pipeline failed")
            self.load_error = f"{type(err).__name__}: {err}"
            return
        self.pipeline = pipeline
        log.info("pipeline %s ready: %s", self.config.name, pipeline.stages())

    def _predict(self, posts: list[Post], heatmaps: bool) -> list[Any]:
        assert self.pipeline is not None
        results = list(self.pipeline.predict_batch(posts, batch_size=len(posts), keep_heatmaps=heatmaps))
        self._log_notes()
        return results

    def _log_notes(self) -> None:
        """The pipeline's notes on this batch's posts (inputs cut, ...) go to the server log and are let go:
        a pipeline keeps them for the summary at the end of a run, which a server has none of, so they would
        pile up for as long as it runs."""
        notes = getattr(self.pipeline, "log", None)
        if notes is not None and notes.issues:
            log.info("notes on the last batch: %s (first: %s)", notes.summary(), notes.issues[0])
            notes.issues.clear()

    def describe(self) -> dict[str, Any]:
        """`/v1/config`: the pipeline, its models, which stages run, the limits and batching so far."""
        c = self.config
        models = {"recognizer": c.recognizer.model, "reranker": c.rerank.model if c.rerank.enabled else None,
                  "itm": c.ground.itm_model if c.ground.enabled else None,
                  "segmenter": c.ground.sam_model if c.ground.enabled and c.ground.segmenter == "sam" else None}
        stats = self.batcher.stats if self.batcher else None
        return {
            "preset": c.name, "models": {k: str(v) if v is not None else None for k, v in models.items()},
            "ready": self.ready, "stages": self.pipeline.stages() if self.pipeline else None,
            "limits": self.settings.public(),
            "batching": None if stats is None else {"batches": stats.batches, "posts": stats.posts,
                                                    "largest": stats.largest, "dropped": stats.dropped,
                                                    "waiting": self.batcher.waiting},
        }

    def _post(self, post_id: str, submission: Submission) -> tuple[Post, Callable[[], None]]:
        """A pipeline post from a checked submission; an image is kept in a file until its batch is done."""
        image = None
        if submission.image is not None:
            image = self._images / f"{post_id}.img"
            image.write_bytes(submission.image)
        post = Post.from_text(post_id, submission.text, image=image)  # entities get character offsets
        return post, (lambda: image.unlink(missing_ok=True)) if image is not None else (lambda: None)

    def _record(self, result: Any, submission: Submission, post_id: str) -> dict[str, Any]:
        record = result.record()
        record["id"] = submission.id if submission.id is not None else post_id
        record["image"] = submission.image_name  # the caller's file name, not where the server kept it
        if submission.heatmaps and result.heatmaps and len(record["entities"]) == len(result.entities):
            record["heatmaps"] = {str(index): heatmap_png(heat) for index, heat in sorted(result.heatmaps.items())}
        return record

    async def predict(self, submissions: list[Submission], request_id: str, request: Request) -> list[dict]:
        """The records of a request's posts, through the batcher; 503 while loading, 429 when the queue is
        full, 504 past the timeout. When the caller disconnects, its posts leave the queue."""
        if self.batcher is None or not self.ready:
            message = "the pipeline failed to load" if self.load_error else "the models are loading"
            raise ApiError(503, message, headers={"Retry-After": "5"})
        ids = [request_id if len(submissions) == 1 else f"{request_id}-{i}" for i in range(len(submissions))]
        made = [self._post(post_id, s) for post_id, s in zip(ids, submissions, strict=True)]
        try:
            futures = self.batcher.submit([post for post, _ in made], any(s.heatmaps for s in submissions),
                                          [cleanup for _, cleanup in made], caller=_connection(request))
        except QueueFullError as err:
            for _, cleanup in made:
                cleanup()
            raise ApiError(429, str(err), headers={"Retry-After": str(err.retry_after)}) from None
        results = await self._wait(asyncio.gather(*futures), request, request_id)
        return [self._record(r, s, i) for r, s, i in zip(results, submissions, ids, strict=True)]

    async def _wait(self, results: asyncio.Future, request: Request, request_id: str) -> list[Any]:
        gone = asyncio.ensure_future(_until_disconnected(request))
        try:
            done, _ = await asyncio.wait({results, gone}, timeout=self.settings.timeout_s,
                                         return_when=asyncio.FIRST_COMPLETED)
        finally:
            gone.cancel()
        if results in done:
            return results.result()
        results.cancel()  # cancels each post's future: the batcher drops those not yet running
        results.add_done_callback(lambda f: f.cancelled() or f.exception())  # read, so asyncio does not warn
        if gone in done:
            log.info("request %s: the caller disconnected", request_id)
            raise ApiError(499, "the caller closed the connection")
        log.warning("request %s: no answer within %s s", request_id, self.settings.timeout_s)
        raise ApiError(504, f"no answer within {self.settings.timeout_s:g} s; the server is busy",
                       headers={"Retry-After": str(self.batcher.retry_after() if self.batcher else 1)})
