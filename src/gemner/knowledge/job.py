"""The resumable knowledge job: posts -> captions -> Table 6 prompts -> LLM answers in the cache.

`run_job` records every post's prompt in the cache first, then asks the backend only for prompts
without an answer, storing each answer as it arrives. Killing the process loses at most the answers
being generated; running the same job again picks up where it stopped. Identical prompts (the same
tweet and caption) are asked once.
"""

from __future__ import annotations

import signal
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

from ..data.limits import KNOWLEDGE_TWEET_CHARS
from ..data.types import Post
from .backends import Completion, Failure, LLMBackend, Request, Result
from .cache import Answer, Item, KnowledgeCache
from .prompt import build_messages, parse_answer, prompt_hash


@dataclass(frozen=True)
class SourcePost:
    """A post to explain: its id, which split it came from, its text, and its image (if any)."""

    post_id: str
    split: str
    text: str
    image: Path | None = None

    @classmethod
    def from_post(cls, post: Post, split: str) -> SourcePost:
        return cls(post.id, split, " ".join(post.tokens), post.image)


@dataclass
class JobReport:
    total_posts: int = 0
    unique_prompts: int = 0
    already_done: int = 0
    answered: int = 0
    parse_failures: int = 0  # answers kept as raw text: no JSON explanation found
    truncated: int = 0
    long_posts: list[str] = field(default_factory=list)  # ids of posts whose text the prompt cut
    failures: dict[str, list[str]] = field(default_factory=dict)  # error -> post ids
    interrupted: bool = False
    seconds: float = 0.0

    @property
    def failed(self) -> int:
        return sum(len(ids) for ids in self.failures.values())

    @property
    def remaining(self) -> int:
        return self.unique_prompts - self.already_done - self.answered


ProgressCallback = Callable[[int, int], None]  # (prompts finished this run, prompts to do this run)


def plan_items(posts: Sequence[SourcePost], captions: dict[str, str], backend: LLMBackend,
               shots: int = 3) -> tuple[list[Item], dict[str, Request]]:
    """Each post's prompt (and its hash), and one request per distinct prompt."""
    items, requests = [], {}
    settings = backend.settings()
    for post in posts:
        caption = captions.get(post.post_id, "")
        messages = build_messages(post.text, caption, shots=shots)
        key = prompt_hash(messages, settings)
        items.append(Item(post.post_id, post.split, key, caption))
        requests.setdefault(key, Request(key, messages))
    return items, requests


def run_job(cache: KnowledgeCache, backend: LLMBackend, source: str, posts: Sequence[SourcePost],
            captions: dict[str, str], *, shots: int = 3, limit: int | None = None,
            stop: threading.Event | None = None, on_progress: ProgressCallback | None = None) -> JobReport:
    """Answer every post's prompt that the cache lacks; at most `limit` new answers when given."""
    began = time.perf_counter()
    stop = stop or threading.Event()
    items, requests = plan_items(posts, captions, backend, shots)
    cache.set_items(source, backend.name, backend.model, items)
    done = cache.done_hashes(backend.name, backend.model)
    todo = [request for key, request in requests.items() if key not in done]
    if limit is not None:
        todo = todo[: max(0, limit)]
    report = JobReport(len(posts), len(requests), sum(key in done for key in requests))
    report.long_posts = [post.post_id for post in posts if len(post.text.strip()) > KNOWLEDGE_TWEET_CHARS]
    posts_of: dict[str, list[str]] = {}
    for item in items:
        posts_of.setdefault(item.prompt_hash, []).append(item.post_id)
    finished = 0
    if on_progress is not None:
        on_progress(0, len(todo))

    def store(request: Request, result: Result) -> None:
        nonlocal finished
        finished += 1
        if isinstance(result, Completion):
            parsed = parse_answer(result.text)
            answer = Answer(result.text, parsed.explanation, parsed.parsed, result.truncated, result.seconds)
            cache.put_answer(backend.name, backend.model, request.key, answer)
            report.answered += 1
            report.parse_failures += not parsed.parsed
            report.truncated += result.truncated
        elif isinstance(result, Failure):
            cache.put_failure(backend.name, backend.model, request.key, result.error, result.attempts)
            report.failures.setdefault(result.error, []).extend(posts_of[request.key])
        if on_progress is not None:
            on_progress(finished, len(todo))

    backend.run(todo, store, stop)
    report.interrupted = stop.is_set()
    report.seconds = time.perf_counter() - began
    return report


@dataclass(frozen=True)
class CacheStatus:
    posts: int
    answered: int
    parse_failures: int
    truncated: int
    failed: int
    by_split: dict[str, tuple[int, int]]  # split -> (answered, posts)


def job_status(cache: KnowledgeCache, source: str, backend: str, model: str) -> CacheStatus:
    failures = cache.failures(backend, model)
    posts = answered = parse_failures = truncated = failed = 0
    by_split: Counter[tuple[str, bool]] = Counter()
    hashes = dict(cache.conn.execute(
        "SELECT post_id, prompt_hash FROM items WHERE source = ? AND backend = ? AND model = ?",
        (source, backend, model)).fetchall())
    for row in cache.export_rows(source, backend, model):
        posts += 1
        by_split[(row.split, row.answer is not None)] += 1
        if row.answer is None:
            failed += hashes.get(row.post_id) in failures
            continue
        answered += 1
        parse_failures += not row.answer.parsed
        truncated += row.answer.truncated
    splits = sorted({split for split, _ in by_split})
    summary = {s: (by_split[(s, True)], by_split[(s, True)] + by_split[(s, False)]) for s in splits}
    return CacheStatus(posts, answered, parse_failures, truncated, failed, summary)


@contextmanager
def graceful_interrupts(on_first: Callable[[], None]) -> Iterator[threading.Event]:
    """SIGINT/SIGTERM set the returned event (the job stops after the work in flight); a second
    Ctrl-C raises KeyboardInterrupt as usual. Handlers are restored on exit."""
    stop = threading.Event()
    if threading.current_thread() is not threading.main_thread():
        yield stop
        return

    def handle(signum: int, frame: object) -> None:
        if stop.is_set() and signum == signal.SIGINT:
            raise KeyboardInterrupt
        stop.set()
        on_first()

    previous = {sig: signal.signal(sig, handle) for sig in (signal.SIGINT, signal.SIGTERM)}
    try:
        yield stop
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)
