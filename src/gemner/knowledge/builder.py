"""The one way knowledge (§3.2.1, Table 6) is made, for `gemner knowledge build` and the pipeline alike.

Both read the same `LLMSettings` defaults, the same answer cache (`default_cache_path()`), the same
caption policy (a captions file, else a captioning model cached per image, else empty captions) and
the same resumable job. A recogniser trained on `knowledge build` output therefore meets the same
knowledge at inference when the pipeline asks the LLM itself.

The defaults (`knowledge.backends.DEFAULT_*`) are those that made the shipped
`data/knowledge/fmnerg-smollm2-135m.jsonl.gz` for the local backend and the paper's ChatGPT for OpenAI.
"""

from __future__ import annotations

import os
import threading
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

from ..data.issues import DataError
from ..data.types import Post
from .backends import DEFAULT_LOCAL_DTYPE, DEFAULT_MAX_NEW_TOKENS, DEFAULT_MODELS
from .job import JobReport, ProgressCallback, SourcePost, run_job

Backend = Literal["local", "openai"]
Notify = Callable[[str], None]

CACHE_ENV = "GEMNER_KNOWLEDGE_CACHE"


class LLMSettings(BaseModel):
    """Which LLM explains a post, and how; `model` and `max_new_tokens` default per backend."""

    model_config = ConfigDict(extra="forbid")

    backend: Backend = "local"
    model: str = Field("", description="name or path (default: smollm2-135m | gpt-3.5-turbo)")
    max_new_tokens: int = Field(0, ge=0, description="answer length limit (default: local 48 | openai 256)")
    dtype: Literal["float32", "bfloat16", "float16"] = Field(DEFAULT_LOCAL_DTYPE, description="local weights")
    batch_size: int = Field(16, ge=1, description="local: prompts per forward pass")
    prefix_cache: bool = Field(True, description="local: compute the shared few-shot prefix once")
    repetition_penalty: float = Field(1.0, gt=0, description="local greedy decoding penalty (1.0 = off)")
    threads: int | None = Field(None, ge=1, description="local: torch CPU threads; openai: requests in flight")
    base_url: str = "https://api.openai.com/v1"
    api_key_env: str = Field("OPENAI_API_KEY", description="name of the variable holding the key (never the key)")
    timeout: float | None = Field(None, gt=0, description="openai: seconds per attempt (default: the client's)")
    retries: int | None = Field(None, ge=0, description="openai: retries after the first attempt")

    @model_validator(mode="after")
    def _backend_defaults(self) -> LLMSettings:
        if not self.model:
            self.model = DEFAULT_MODELS[self.backend]
        if not self.max_new_tokens:
            self.max_new_tokens = DEFAULT_MAX_NEW_TOKENS[self.backend]
        return self


def default_cache_path() -> Path:
    """The answer cache every knowledge run shares: $GEMNER_KNOWLEDGE_CACHE, else the user cache folder."""
    if os.environ.get(CACHE_ENV):
        return Path(os.environ[CACHE_ENV]).expanduser()
    base = Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache")
    return base / "gemner" / "knowledge.sqlite"


def cache_path(explicit: str | Path | None) -> Path:
    return Path(explicit).expanduser() if explicit else default_cache_path()


def make_backend(settings: LLMSettings, notify: Notify = lambda _m: None, *, trust_remote_code: bool = False) -> Any:
    """The LLM backend the settings describe (loads local weights; raises MissingWeightsError).
    `trust_remote_code` comes from the person running the command, never from a settings file."""
    if settings.backend == "local":
        from .local_llm import LocalLLMBackend, LocalLLMConfig

        notify(f"loading {settings.model} ...")
        return LocalLLMBackend(LocalLLMConfig(
            model=settings.model, batch_size=settings.batch_size, max_new_tokens=settings.max_new_tokens,
            prefix_cache=settings.prefix_cache, dtype=settings.dtype,
            repetition_penalty=settings.repetition_penalty, threads=settings.threads),
            trust_remote_code=trust_remote_code)
    from .openai_llm import OpenAIChatBackend, OpenAIConfig

    given = {"threads": settings.threads, "timeout": settings.timeout, "retries": settings.retries}
    client = OpenAIChatBackend(OpenAIConfig(
        model=settings.model, base_url=settings.base_url, api_key_env=settings.api_key_env,
        max_tokens=settings.max_new_tokens, **{k: v for k, v in given.items() if v is not None}))
    if client.key_missing:
        notify(f"environment variable {settings.api_key_env} is not set: sending no API key")
    return client


# ---- sources -------------------------------------------------------------------------------------
def source_name(dataset: str | None, posts: Path | None) -> str:
    """The job's name in the cache: the benchmark, or `posts:<absolute path>`."""
    if (dataset is None) == (posts is None):
        raise DataError("give exactly one of --dataset or --posts")
    return dataset if dataset is not None else f"posts:{posts.resolve()}"  # type: ignore[union-attr]


def load_source(dataset: str | None, posts: Path | None, split: str, images: Path | None,
                notify: Notify = lambda _m: None) -> list[SourcePost]:
    """The posts to explain: a posts JSONL (bad lines reported, the rest kept) or benchmark splits."""
    from ..data import SPLITS, load_dataset
    from ..data.userio import read_posts

    if posts is not None:
        read, log = read_posts(posts, images_dir=images)
        if len(log):
            notify(f"{posts}: {log.summary()} (first: {log.issues[0]})")
        return [SourcePost.from_post(post, "posts") for post in read]
    if split != "all" and split not in SPLITS:
        raise DataError(f"unknown split {split!r}; choose one of {', '.join(SPLITS)} or all")
    splits = list(SPLITS) if split == "all" else [split]
    return [SourcePost.from_post(post, name) for name in splits
            for post in load_dataset(dataset, name, images_dir=images).posts]  # type: ignore[arg-type]


# ---- captions ------------------------------------------------------------------------------------
def caption_posts(posts: Sequence[SourcePost], captioner: str | None, captions_file: Path | None, cache: Any,
                  batch_size: int = 16, notify: Notify = lambda _m: None, model: Any = None,
                  trust_remote_code: bool = False) -> dict[str, str]:
    """Captions by post id: from a captions file, a captioning model (each image captioned once, kept in
    the cache), or empty. `model` is an already loaded `ModelCaptioner` to reuse."""
    from .captioner import CaptionInput, CaptionsFile, check_caption_source, describe_missing_images

    check_caption_source(captioner, str(captions_file) if captions_file else None)
    inputs = [CaptionInput(p.post_id, p.image) for p in posts]
    if captions_file is not None:
        source = CaptionsFile(captions_file)
        if len(source.log):
            notify(f"{captions_file}: {source.log.summary()} (first: {source.log.issues[0]})")
        found = source.caption(inputs)
        empty = sum(not text for text in found.values())
        if empty:
            notify(f"{empty} of {len(posts)} posts have no caption in {captions_file}: their captions are empty")
        return found
    missing_note = describe_missing_images(sum(p.image is None for p in posts), len(posts))
    if missing_note:
        notify(missing_note)
    if captioner is None:
        if not missing_note:
            notify("no captioner given (--captioner or --captions): captions are empty")
        return {p.post_id: "" for p in posts}
    done = cache.captions(captioner)
    todo = [c for c in inputs if c.image is not None and str(c.image) not in done]
    if todo:
        from .captioner import ModelCaptioner

        model = model or ModelCaptioner(captioner, batch_size=batch_size, trust_remote_code=trust_remote_code)
        image_of = {c.post_id: str(c.image) for c in todo}
        notify(f"captioning {len(todo)} images with {captioner}")
        model.caption(todo, on_batch=lambda got: cache.put_captions(captioner, {image_of[k]: v
                                                                              for k, v in got.items()}))
        if len(model.log):
            notify(f"captioner: {model.log.summary()} (first: {model.log.issues[0]})")
        done = cache.captions(captioner)
    return {p.post_id: done.get(str(p.image), "") if p.image is not None else "" for p in posts}


# ---- the job -------------------------------------------------------------------------------------
@dataclass
class KnowledgeBuild:
    """One `gemner knowledge build` run: which posts, which captions, which LLM, which cache."""

    source: str
    posts: list[SourcePost]
    llm: LLMSettings
    captioner: str | None = None
    captions_file: Path | None = None
    cache: Path | None = None
    shots: int = 3
    limit: int | None = None
    trust_remote_code: bool = False  # given by the person running the command only

    @property
    def cache_file(self) -> Path:
        return cache_path(self.cache)


def build_knowledge(build: KnowledgeBuild, notify: Notify = lambda _m: None, *,
                    stop: threading.Event | None = None, on_progress: ProgressCallback | None = None) -> JobReport:
    """Caption the posts, then ask the LLM for every explanation the cache lacks (resumable)."""
    from .cache import KnowledgeCache

    with KnowledgeCache(build.cache_file) as store:
        captions = caption_posts(build.posts, build.captioner, build.captions_file, store, build.llm.batch_size,
                                 notify, trust_remote_code=build.trust_remote_code)
        backend = make_backend(build.llm, notify, trust_remote_code=build.trust_remote_code)
        notify(f"{len(build.posts)} posts from {build.source}; cache {build.cache_file}")
        return run_job(store, backend, build.source, build.posts, captions, shots=build.shots, limit=build.limit,
                       stop=stop, on_progress=on_progress)


def explain_posts(cache_file: Path, backend: Any, posts: Sequence[Post], captions: dict[str, str],
                  source: str = "predict") -> tuple[dict[str, str], dict[str, str]]:
    """The pipeline's knowledge for a batch: the cached answer of each post, asking the LLM for the rest.
    Returns (explanation by post id, why there is none by post id) so a record can say the stage did not run."""
    from .cache import KnowledgeCache

    with KnowledgeCache(cache_file) as cache:
        report = run_job(cache, backend, source, [SourcePost.from_post(p, source) for p in posts], captions)
        wanted = {p.id for p in posts}
        found = {row.post_id: row.answer.explanation
                 for row in cache.export_rows(source, backend.name, backend.model)
                 if row.post_id in wanted and row.answer is not None}
    errors = {post_id: error for error, ids in report.failures.items() for post_id in ids}
    missing = {p.id: f"LLM {errors.get(p.id, 'gave no answer')}" for p in posts if p.id not in found}
    return found, missing
