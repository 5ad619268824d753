"""`gemner knowledge build | status | export`: the paper's knowledge augmentation (§3.2.1, Table 6)."""

from __future__ import annotations

import re
import shlex
import sys
import time
from pathlib import Path
from typing import Annotated, Any

import typer

from .app import TrustRemoteCodeOpt, app
from .console import err as console
from .errors import friendly_errors

knowledge_app = typer.Typer(help="Knowledge augmentation (paper §3.2.1): captions + LLM explanations.",
                            no_args_is_help=True)
app.add_typer(knowledge_app, name="knowledge")

BACKENDS = ("local", "openai")
DEFAULT_MODELS = {"local": "smollm2-135m", "openai": "gpt-3.5-turbo"}

DatasetOpt = Annotated[str | None, typer.Option(help="Benchmark: fmnerg | gmner | gmner-v2.")]
PostsOpt = Annotated[Path | None, typer.Option(help='Posts JSONL instead: {"id", "text"|"tokens", "image"?}.')]
SplitOpt = Annotated[str, typer.Option(help="train | dev | test | all (benchmarks only).")]
BackendOpt = Annotated[str, typer.Option(help="local (HF causal LM) | openai (chat-completions over HTTP).")]
ModelOpt = Annotated[str | None, typer.Option(help="LLM name or path (default: smollm2-135m | gpt-3.5-turbo).")]
CacheOpt = Annotated[Path | None, typer.Option(
    help="SQLite cache (default: runs/knowledge/<source>-<backend>-<model>.sqlite).")]


def source_name(dataset: str | None, posts: Path | None) -> str:
    from ..data.issues import DataError

    if (dataset is None) == (posts is None):
        raise DataError("give exactly one of --dataset or --posts")
    return dataset if dataset is not None else f"posts:{posts.resolve()}"  # type: ignore[union-attr]


def default_cache(source: str, backend: str, model: str) -> Path:
    stem = source if not source.startswith("posts:") else "posts-" + Path(source[6:]).stem
    slug = re.sub(r"[^A-Za-z0-9._-]+", "_", f"{stem}-{backend}-{Path(model).name}")
    return Path("runs/knowledge") / f"{slug}.sqlite"


def load_source(dataset: str | None, posts: Path | None, split: str, images: Path | None) -> list[Any]:
    from ..data import SPLITS, load_dataset
    from ..data.issues import DataError
    from ..data.userio import read_posts
    from ..knowledge.job import SourcePost

    if posts is not None:
        read, log = read_posts(posts, images_dir=images)
        if len(log):
            console.print(f"[yellow]{posts}: {log.summary()}[/] (first: {log.issues[0]})")
        return [SourcePost.from_post(post, "posts") for post in read]
    splits = list(SPLITS) if split == "all" else [split]
    if split != "all" and split not in SPLITS:
        raise DataError(f"unknown split {split!r}; choose one of {', '.join(SPLITS)} or all")
    return [SourcePost.from_post(post, name) for name in splits
            for post in load_dataset(dataset, name, images_dir=images).posts]  # type: ignore[arg-type]


def make_captions(posts: list[Any], captioner: str | None, captions: Path | None, cache: Any,
                  batch_size: int, trust_remote_code: bool = False) -> dict[str, str]:
    """Captions by post id, from a file, a captioning model (cached per image), or none."""
    from ..knowledge.captioner import (
        CaptionInput,
        CaptionsFile,
        ModelCaptioner,
        check_caption_source,
        describe_missing_images,
    )

    check_caption_source(captioner, str(captions) if captions else None)
    inputs = [CaptionInput(p.post_id, p.image) for p in posts]
    if captions is not None:
        source = CaptionsFile(captions)
        if len(source.log):
            console.print(f"[yellow]{captions}: {source.log.summary()}[/] (first: {source.log.issues[0]})")
        found = source.caption(inputs)
        empty = sum(not text for text in found.values())
        if empty:
            console.print(f"{empty} of {len(posts)} posts have no caption in {captions}: their captions are empty")
        return found
    note = describe_missing_images(sum(p.image is None for p in posts), len(posts))
    if note:
        console.print(f"[yellow]note:[/] {note}")
    if captioner is None:
        if not note:
            console.print("[yellow]note:[/] no captioner given (--captioner or --captions): captions are empty")
        return {p.post_id: "" for p in posts}
    done = cache.captions(captioner)
    todo = [c for c in inputs if c.image is not None and str(c.image) not in done]
    if todo:
        model = ModelCaptioner(captioner, batch_size=batch_size, trust_remote_code=trust_remote_code)
        by_id = {c.post_id: str(c.image) for c in todo}
        console.print(f"captioning {len(todo)} images with {captioner}")
        model.caption(todo, on_batch=lambda got: cache.put_captions(captioner, {by_id[k]: v for k, v in got.items()}))
        if len(model.log):
            console.print(f"[yellow]captioner: {model.log.summary()}[/] (first: {model.log.issues[0]})")
        done = cache.captions(captioner)
    return {p.post_id: done.get(str(p.image), "") if p.image is not None else "" for p in posts}


def make_backend(backend: str, model: str, *, batch_size: int, threads: int | None, max_new_tokens: int | None,
                 dtype: str, prefix_cache: bool, repetition_penalty: float, base_url: str, api_key_env: str,
                 timeout: float, retries: int, trust_remote_code: bool = False) -> Any:
    from ..data.issues import DataError

    if backend == "local":
        from ..knowledge.local_llm import LocalLLMBackend, LocalLLMConfig

        if dtype not in ("float32", "bfloat16", "float16"):
            raise DataError(f"unknown --dtype {dtype!r}; choose float32, bfloat16 or float16")
        config = LocalLLMConfig(model=model, batch_size=batch_size, max_new_tokens=max_new_tokens or 96,
                                prefix_cache=prefix_cache, dtype=dtype, repetition_penalty=repetition_penalty,
                                threads=threads)
        console.print(f"loading {model} ...")
        return LocalLLMBackend(config, trust_remote_code=trust_remote_code)
    if backend == "openai":
        from ..knowledge.openai_llm import OpenAIChatBackend, OpenAIConfig

        config = OpenAIConfig(model=model, base_url=base_url, api_key_env=api_key_env,
                              max_tokens=max_new_tokens or 256, threads=threads or 8, timeout=timeout,
                              retries=retries)
        client = OpenAIChatBackend(config)
        if client.key_missing:
            console.print(f"[yellow]note:[/] environment variable {api_key_env} is not set: sending no API key")
        return client
    raise DataError(f"unknown --backend {backend!r}; choose {' or '.join(BACKENDS)}")


class ProgressView:
    """A rich progress bar with ETA on a terminal; a log line every `every` seconds otherwise."""

    def __init__(self, every: float):
        self.every, self.last, self.began = every, 0.0, time.monotonic()
        self.bar: Any = None
        self.task: Any = None

    def __enter__(self) -> ProgressView:
        if console.is_terminal:
            from rich.progress import (
                BarColumn,
                MofNCompleteColumn,
                Progress,
                TextColumn,
                TimeElapsedColumn,
                TimeRemainingColumn,
            )

            self.bar = Progress(TextColumn("knowledge"), BarColumn(), MofNCompleteColumn(),
                                TextColumn("{task.fields[rate]}"), TimeElapsedColumn(), TextColumn("ETA"),
                                TimeRemainingColumn(), console=console)
            self.bar.__enter__()
        return self

    def __exit__(self, *exc: object) -> None:
        if self.bar is not None:
            self.bar.__exit__(*exc)

    def __call__(self, finished: int, total: int) -> None:
        elapsed = time.monotonic() - self.began
        rate = finished / elapsed if finished and elapsed > 0 else 0.0
        if self.bar is not None:
            if self.task is None:
                self.task = self.bar.add_task("knowledge", total=total, rate="")
            self.bar.update(self.task, completed=finished, rate=f"{rate:.2f} items/s")
            return
        now = time.monotonic()
        if finished in (0, total) or now - self.last >= self.every:
            self.last = now
            eta = (total - finished) / rate if rate else float("nan")
            stamp = time.strftime("%Y-%m-%d %H:%M:%S")
            eta_text = f"{eta / 3600:.2f} h" if rate else "?"
            console.print(f"{stamp} {finished}/{total} answered, {rate:.3f} items/s, ETA {eta_text}")


def resume_command() -> str:
    return "gemner " + shlex.join(sys.argv[1:])


@knowledge_app.command("build")
@friendly_errors
def build(
    dataset: DatasetOpt = None,
    posts: PostsOpt = None,
    split: SplitOpt = "all",
    images: Annotated[Path | None, typer.Option(
        help="Images folder (benchmark images or relative post paths).")] = None,
    backend: BackendOpt = "local",
    model: ModelOpt = None,
    captions: Annotated[Path | None, typer.Option(
        help='Captions JSONL {"id", "caption"} (instead of a captioner).')] = None,
    captioner: Annotated[str | None, typer.Option(
        help="Captioning model name/path (paper: BLIP-2, Salesforce/blip2-opt-2.7b).")] = None,
    cache: CacheOpt = None,
    limit: Annotated[int | None, typer.Option(help="Answer at most N more prompts, then stop.")] = None,
    batch_size: Annotated[int, typer.Option(help="Local LM (and captioner) batch size.")] = 16,
    threads: Annotated[int | None, typer.Option(
        help="local: torch CPU threads; openai: requests in flight (8).")] = None,
    max_new_tokens: Annotated[int | None, typer.Option(help="Answer length limit (local 96, openai 256).")] = None,
    dtype: Annotated[str, typer.Option(help="Local LM weights: float32 | bfloat16 | float16.")] = "float32",
    prefix_cache: Annotated[bool, typer.Option(help="Compute the shared few-shot prefix once (local).")] = True,
    repetition_penalty: Annotated[float, typer.Option(help="Local greedy decoding penalty (1.0 = off).")] = 1.0,
    shots: Annotated[int, typer.Option(help="Table 6 few-shot examples (paper: 3).")] = 3,
    base_url: Annotated[str, typer.Option(help="openai: server base URL.")] = "https://api.openai.com/v1",
    api_key_env: Annotated[str, typer.Option(
        help="openai: NAME of the env variable holding the API key.")] = "OPENAI_API_KEY",
    timeout: Annotated[float, typer.Option(help="openai: seconds per attempt, connect to last byte.")] = 60.0,
    retries: Annotated[int, typer.Option(help="openai: retries after the first attempt.")] = 5,
    log_every: Annotated[float, typer.Option(help="Seconds between progress lines when not on a terminal.")] = 60.0,
    trust_remote_code: TrustRemoteCodeOpt = False,
) -> None:
    """Ask the LLM for every post's explanation; resumable (rerun the same command), Ctrl-C safe."""
    from ..knowledge.cache import KnowledgeCache
    from ..knowledge.job import graceful_interrupts, run_job

    source = source_name(dataset, posts)
    model = model or DEFAULT_MODELS.get(backend, "")
    cache_path = cache or default_cache(source, backend, model)
    items = load_source(dataset, posts, split, images)
    with KnowledgeCache(cache_path) as store:
        caption_of = make_captions(items, captioner, captions, store, batch_size, trust_remote_code)
        llm = make_backend(backend, model, batch_size=batch_size, threads=threads, max_new_tokens=max_new_tokens,
                           dtype=dtype, prefix_cache=prefix_cache, repetition_penalty=repetition_penalty,
                           base_url=base_url, api_key_env=api_key_env, timeout=timeout, retries=retries,
                           trust_remote_code=trust_remote_code)
        console.print(f"{len(items)} posts from {source} ({split}); cache {cache_path}")

        def first_interrupt() -> None:
            console.print("[yellow]interrupted:[/] finishing the work in flight (Ctrl-C again to abandon it) ...")

        with graceful_interrupts(first_interrupt) as stop, ProgressView(log_every) as view:
            report = run_job(store, llm, source, items, caption_of, shots=shots, limit=limit, stop=stop,
                             on_progress=view)
    print_report(report, cache_path)
    if report.interrupted:
        raise typer.Exit(130)  # the shell's code for "stopped by Ctrl-C"
    if report.failed:  # an unreachable server fails every post: never a quiet success
        console.print(f"[bold red]error:[/] {report.failed} of {report.total_posts} posts failed", highlight=False)
        raise typer.Exit(1)


def print_report(report: Any, cache_path: Path) -> None:
    rate = report.answered / report.seconds if report.seconds else 0.0
    console.print(f"{report.total_posts} posts, {report.unique_prompts} distinct prompts: "
                  f"{report.already_done} were cached, {report.answered} answered now ({rate:.3f}/s), "
                  f"{report.failed} failed, {max(report.remaining - report.failed, 0)} not attempted")
    if report.answered:
        console.print(f"{report.parse_failures} answers had no parsable JSON (kept as raw text), "
                      f"{report.truncated} hit the token limit")
    for error, ids in sorted(report.failures.items(), key=lambda kv: -len(kv[1])):
        shown = ", ".join(ids[:5]) + (" ..." if len(ids) > 5 else "")
        console.print(f"[red]failed[/] {len(ids)} posts: {error} (posts {shown})")
    if report.interrupted or report.remaining > 0:
        why = "interrupted" if report.interrupted else "not finished"
        console.print(f"[yellow]{why}:[/] everything answered so far is saved in {cache_path}; "
                      f"resume with:\n  {resume_command()}")
    else:
        console.print("[green]done:[/] every prompt is answered; export with `gemner knowledge export ...`")


def _select_job(store: Any, source: str | None, backend: str | None, model: str | None) -> tuple[str, str, str]:
    from ..data.issues import DataError

    jobs = [j for j in store.jobs() if (source is None or j[0] == source) and (backend is None or j[1] == backend)
            and (model is None or j[2] == model)]
    if len(jobs) != 1:
        listed = "; ".join(f"{s} / {b} / {m} ({n} posts)" for s, b, m, n in store.jobs()) or "none"
        raise DataError(f"{'no' if not jobs else 'several'} matching jobs in {store.path}: choose with "
                        f"--dataset/--posts, --backend, --model. Jobs: {listed}")
    return jobs[0][0], jobs[0][1], jobs[0][2]


def _open_cache(cache: Path | None, dataset: str | None, posts: Path | None, backend: str | None,
                model: str | None) -> tuple[Any, str | None]:
    from ..knowledge.cache import KnowledgeCache

    source = source_name(dataset, posts) if (dataset or posts) else None
    if cache is None:
        if source is None:
            raise FileNotFoundError("give --cache, or the build's --dataset/--posts (and --backend/--model)")
        backend = backend or "local"
        cache = default_cache(source, backend, model or DEFAULT_MODELS.get(backend, ""))
    if not cache.is_file():
        raise FileNotFoundError(f"{cache}: no such knowledge cache (run `gemner knowledge build` first)")
    return KnowledgeCache(cache), source


@knowledge_app.command("status")
@friendly_errors
def status(cache: CacheOpt = None, dataset: DatasetOpt = None, posts: PostsOpt = None,
           backend: Annotated[str | None, typer.Option(help="local | openai.")] = None, model: ModelOpt = None) -> None:
    """How far a knowledge job is: answered / total per split, parse failures, failures."""
    from ..knowledge.job import job_status

    store, source = _open_cache(cache, dataset, posts, backend, model)
    with store:
        source, backend, model = _select_job(store, source, backend, model)
        state = job_status(store, source, backend, model)
    console.print(f"{source} / {backend} / {model}: {state.answered}/{state.posts} posts answered, "
                  f"{state.parse_failures} parse failures, {state.truncated} truncated, {state.failed} failed")
    for split, (answered, total) in state.by_split.items():
        console.print(f"  {split}: {answered}/{total}")


@knowledge_app.command("export")
@friendly_errors
def export(
    output: Annotated[Path, typer.Option(help="Knowledge JSONL (.jsonl or .jsonl.gz) for --knowledge.")],
    cache: CacheOpt = None,
    dataset: DatasetOpt = None,
    posts: PostsOpt = None,
    backend: Annotated[str | None, typer.Option(help="local | openai.")] = None,
    model: ModelOpt = None,
    split: Annotated[str | None, typer.Option(help="Only this split (default: all of the job's posts).")] = None,
    partial: Annotated[bool, typer.Option(help="Export even when some posts have no answer yet.")] = False,
) -> None:
    """Write `{"id", "knowledge", "caption"}` per post: the file the recogniser's --knowledge reads."""
    from ..data.issues import DataError
    from ..knowledge.export import write_knowledge
    from ..knowledge.job import job_status

    store, source = _open_cache(cache, dataset, posts, backend, model)
    with store:
        source, backend, model = _select_job(store, source, backend, model)
        state = job_status(store, source, backend, model)
        if state.answered < state.posts and not partial and split is None:
            raise DataError(f"{state.posts - state.answered} of {state.posts} posts have no answer yet: resume "
                            f"`gemner knowledge build`, or pass --partial to export what is there")
        summary = write_knowledge(store.export_rows(source, backend, model, split), output)
    console.print(f"wrote {summary.written} posts to {output} ({summary.parse_failures} with unparsed raw text"
                  f"{f', {summary.missing} without an answer left out' if summary.missing else ''})")
