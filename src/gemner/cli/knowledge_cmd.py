"""`gemner knowledge build | status | export`: the paper's knowledge augmentation (§3.2.1, Table 6)."""

from __future__ import annotations

import shlex
import sys
import time
from pathlib import Path
from typing import Annotated, Any

import typer

from ..data.limits import KNOWLEDGE_TWEET_CHARS
from ..knowledge.builder import LLMSettings
from .app import TrustRemoteCodeOpt, app
from .console import err as console
from .console import error, note
from .errors import friendly_errors

knowledge_app = typer.Typer(help="Knowledge augmentation (paper §3.2.1): captions + LLM explanations.",
                            no_args_is_help=True)
app.add_typer(knowledge_app, name="knowledge")

_LLM = {name: field.default for name, field in LLMSettings.model_fields.items()}  # one place for defaults
DatasetOpt = Annotated[str | None, typer.Option(help="Benchmark: fmnerg | gmner | gmner-v2.")]
PostsOpt = Annotated[Path | None, typer.Option(help='Posts JSONL instead: {"id", "text"|"tokens", "image"?}.')]
SplitOpt = Annotated[str, typer.Option(help="train | dev | test | all (benchmarks only).")]
BackendOpt = Annotated[str, typer.Option(help="local (HF causal LM) | openai (chat-completions over HTTP).")]
ModelOpt = Annotated[str | None, typer.Option(help="LLM name or path (default: smollm2-135m | gpt-3.5-turbo).")]
CacheOpt = Annotated[Path | None, typer.Option(
    help="SQLite answer cache (default: $GEMNER_KNOWLEDGE_CACHE or ~/.cache/gemner/knowledge.sqlite).")]


def _note(message: str) -> None:
    note(message)


def _source(dataset: str | None, posts: Path | None) -> str | None:
    from ..knowledge.builder import source_name

    return source_name(dataset, posts) if (dataset or posts) else None


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
    batch_size: Annotated[int, typer.Option(help="Local LM (and captioner) batch size.")] = _LLM["batch_size"],
    threads: Annotated[int | None, typer.Option(
        help="local: torch CPU threads; openai: requests in flight (8).")] = None,
    max_new_tokens: Annotated[int | None, typer.Option(help="Answer length limit (local 48, openai 256).")] = None,
    dtype: Annotated[str, typer.Option(help="Local LM weights: float32 | bfloat16 | float16.")] = _LLM["dtype"],
    prefix_cache: Annotated[bool, typer.Option(
        help="Compute the shared few-shot prefix once (local).")] = _LLM["prefix_cache"],
    repetition_penalty: Annotated[float, typer.Option(
        help="Local greedy decoding penalty (1.0 = off).")] = _LLM["repetition_penalty"],
    shots: Annotated[int, typer.Option(help="Table 6 few-shot examples (paper: 3).")] = 3,
    base_url: Annotated[str, typer.Option(help="openai: server base URL.")] = _LLM["base_url"],
    api_key_env: Annotated[str, typer.Option(
        help="openai: NAME of the env variable holding the API key.")] = _LLM["api_key_env"],
    timeout: Annotated[float | None, typer.Option(
        help="openai: seconds per attempt, connect to last byte (60).")] = None,
    retries: Annotated[int | None, typer.Option(help="openai: retries after the first attempt (5).")] = None,
    log_every: Annotated[float, typer.Option(help="Seconds between progress lines when not on a terminal.")] = 60.0,
    trust_remote_code: TrustRemoteCodeOpt = False,
) -> None:
    """Ask the LLM for every post's explanation; resumable (rerun the same command), Ctrl-C safe."""
    from ..knowledge.builder import KnowledgeBuild, build_knowledge, load_source, source_name
    from ..knowledge.job import graceful_interrupts

    given = {"model": model, "max_new_tokens": max_new_tokens, "threads": threads, "timeout": timeout,
             "retries": retries}
    llm = LLMSettings.model_validate({
        "backend": backend, "batch_size": batch_size, "dtype": dtype, "prefix_cache": prefix_cache,
        "repetition_penalty": repetition_penalty, "base_url": base_url, "api_key_env": api_key_env,
        **{key: value for key, value in given.items() if value is not None}})
    source = source_name(dataset, posts)
    job = KnowledgeBuild(source, load_source(dataset, posts, split, images, _note), llm, captioner, captions, cache,
                         shots, limit, trust_remote_code)

    def first_interrupt() -> None:
        console.print("[yellow]interrupted:[/] finishing the work in flight (Ctrl-C again to abandon it) ...")

    with graceful_interrupts(first_interrupt) as stop, ProgressView(log_every) as view:
        report = build_knowledge(job, _note, stop=stop, on_progress=view)
    print_report(report, job.cache_file)
    if report.interrupted:
        raise typer.Exit(130)  # the shell's code for "stopped by Ctrl-C"
    if report.failed:  # an unreachable server fails every post: never a quiet success
        error(f"{report.failed} of {report.total_posts} posts failed")
        raise typer.Exit(1)


def print_report(report: Any, cache_path: Path) -> None:
    rate = report.answered / report.seconds if report.seconds else 0.0
    console.print(f"{report.total_posts} posts, {report.unique_prompts} distinct prompts: "
                  f"{report.already_done} were cached, {report.answered} answered now ({rate:.3f}/s), "
                  f"{report.failed} failed, {max(report.remaining - report.failed, 0)} not attempted")
    if report.answered:
        console.print(f"{report.parse_failures} answers had no parsable JSON (kept as raw text), "
                      f"{report.truncated} hit the token limit")
    if report.long_posts:
        note(f"{len(report.long_posts)} posts are longer than {KNOWLEDGE_TWEET_CHARS} characters: their prompts "
             f"hold the first {KNOWLEDGE_TWEET_CHARS} (first: {report.long_posts[0]})")
    for reason, ids in sorted(report.failures.items(), key=lambda kv: -len(kv[1])):
        shown = ", ".join(ids[:5]) + (" ..." if len(ids) > 5 else "")
        console.print(f"[red]failed[/] {len(ids)} posts: {reason} (posts {shown})")
    if report.interrupted or report.remaining > 0:
        why = "interrupted" if report.interrupted else "not finished"
        console.print(f"[yellow]{why}:[/] everything answered so far is saved in {cache_path}; "
                      f"resume with:\n  {resume_command()}")
    else:
        console.print("[green]done:[/] every prompt is answered; export with `gemner knowledge export ...`")


@knowledge_app.command("status")
@friendly_errors
def status(cache: CacheOpt = None, dataset: DatasetOpt = None, posts: PostsOpt = None,
           backend: Annotated[str | None, typer.Option(help="local | openai.")] = None, model: ModelOpt = None) -> None:
    """How far a knowledge job is: answered / total per split, parse failures, failures."""
    from ..knowledge.export import knowledge_status

    (source, backend, model), state = knowledge_status(cache, _source(dataset, posts), backend, model)
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
    from ..knowledge.export import export_knowledge

    summary = export_knowledge(output, cache, _source(dataset, posts), backend, model, split, partial)
    console.print(f"wrote {summary.written} posts to {output} ({summary.parse_failures} with unparsed raw text"
                  f"{f', {summary.missing} without an answer left out' if summary.missing else ''})")
