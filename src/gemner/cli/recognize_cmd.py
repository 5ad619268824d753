"""`gemner train recognizer`: the knowledge-aware multi-granularity recogniser (paper §3.2)."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from .app import TrustRemoteCodeOpt, app, train_app
from .console import err as console
from .console import progress_line
from .errors import friendly_errors
from .export_cmd import show_issues
from .options import AccumulateOpt, ProcessesOpt

HEADS = ("crf", "softmax")


@train_app.command("recognizer")
@friendly_errors
def train_recognizer_cmd(
    dataset: Annotated[str, typer.Option("--dataset", "-d", help="fmnerg | gmner | gmner-v2")] = "fmnerg",
    train_file: Annotated[Path | None, typer.Option(
        "--train", help="Your own training file (CoNLL, gold JSONL or Label Studio .json); needs --dev.")] = None,
    dev_file: Annotated[Path | None, typer.Option("--dev", help="Your own dev file (same formats).")] = None,
    labels: Annotated[str | None, typer.Option(help="With --train: coarse | fine | FILE (default: the "
                                               "label set of your files, two levels when they have two).")] = None,
    preset: Annotated[str, typer.Option(help="paper | lite | base (lite: MiniLM on CPU; base: all-mpnet-base-v2 "
                                              "on CPU, `gemner download base`)")] = "lite",
    knowledge: Annotated[Path | None, typer.Option(help="Knowledge JSONL {id, knowledge} (absent: none).")] = None,
    output: Annotated[Path | None, typer.Option(help="Output folder (default: runs/recognizer/...).")] = None,
    encoder: Annotated[str | None, typer.Option(help="Encoder name or path (overrides the preset).")] = None,
    no_mgp: Annotated[bool, typer.Option("--no-mgp", help="Ablation: fine path alone (no coarse path, no M).")] = False,
    no_mga: Annotated[bool, typer.Option("--no-mga", help="Ablation: both paths, no M (eq. 9 off).")] = False,
    head: Annotated[str | None, typer.Option(help="crf (paper) | softmax (per-word cross-entropy).")] = None,
    epochs: Annotated[int | None, typer.Option(min=1, help="Epochs (default: preset).")] = None,
    lr: Annotated[float | None, typer.Option(min=0.0, help="Encoder learning rate (default: preset).")] = None,
    head_lr: Annotated[float | None, typer.Option(
        min=0.0, help="Learning rate of heads, CRFs and M (default: preset).")] = None,
    batch_size: Annotated[int | None, typer.Option(
        min=1, help="Effective batch of one step, shared by --processes and --accumulate (default: preset).")] = None,
    accumulate: AccumulateOpt = None,
    warmup_ratio: Annotated[float | None, typer.Option(
        min=0.0, max=1.0, help="Warm-up share of steps (default: preset).")] = None,
    lora_rank: Annotated[int | None, typer.Option(
        min=0, help="LoRA rank on the encoder (0: full fine-tuning).")] = None,
    alpha: Annotated[float | None, typer.Option(min=0.0, help="Eq. 8 coarse-loss weight (default: 0.1).")] = None,
    beta: Annotated[float | None, typer.Option(min=0.0, help="Eq. 9 MGA weight (default: 0.1).")] = None,
    word_shape_dim: Annotated[int | None, typer.Option(
        help="Word-shape embedding size (0: off, the paper; default: preset).")] = None,
    bf16: Annotated[bool | None, typer.Option("--bf16/--no-bf16", help="bf16 autocast (default: preset).")] = None,
    length_buckets: Annotated[bool | None, typer.Option("--length-buckets/--no-length-buckets",
                                                        help="Length-bucketed batches (default: preset).")] = None,
    seed: Annotated[int | None, typer.Option(help="Random seed (default: 42).")] = None,
    teacher: Annotated[list[str] | None, typer.Option(
        help="Distillation: a trained recogniser (repeat for several, e.g. other seeds) whose fine-tag "
             "distributions the model also learns.")] = None,
    distill_weight: Annotated[float | None, typer.Option(
        min=0.0, max=1.0, help="With --teacher: their weight against the gold tags (default: 0.5).")] = None,
    resume: Annotated[bool, typer.Option(help="Continue from <output>/last (its stored settings).")] = False,
    max_train_posts: Annotated[int | None, typer.Option(
        min=1, help="Use only the first N train posts (smoke runs).")] = None,
    max_dev_posts: Annotated[int | None, typer.Option(
        min=1, help="Use only the first N dev posts (smoke runs).")] = None,
    threads: Annotated[int | None, typer.Option(min=1, help="torch CPU threads.")] = None,
    device: Annotated[str, typer.Option(help="torch device (cpu, cuda).")] = "cpu",
    progress: Annotated[bool, typer.Option(help="Show progress bars.")] = True,
    trust_remote_code: TrustRemoteCodeOpt = False,
    processes: ProcessesOpt = 1,
) -> None:
    """Train the recogniser; the best-on-dev checkpoint goes to OUTPUT, the resumable state to OUTPUT/last."""
    import torch

    from ..data.interchange import training_data
    from ..distributed import run_processes
    from ..progress import silenced_progress_bars
    from ..recognize.config import PRESETS, variant_name
    from ..recognize.config import preset as make_preset
    from ..recognize.predict import read_knowledge
    from ..recognize.train import train_recognizer

    if preset not in PRESETS:
        raise typer.BadParameter(f"unknown preset {preset!r}; choose one of {', '.join(PRESETS)}")
    if head is not None and head not in HEADS:
        raise typer.BadParameter(f"unknown head {head!r}; choose one of {', '.join(HEADS)}")
    if threads:
        torch.set_num_threads(threads)
    config = make_preset(
        preset, encoder=encoder, head=head, epochs=epochs, lr=lr, head_lr=head_lr, batch_size=batch_size,
        accumulate=accumulate, warmup_ratio=warmup_ratio, lora_rank=lora_rank, alpha=alpha, beta=beta, bf16=bf16,
        word_shape_dim=word_shape_dim,
        length_buckets=length_buckets, seed=seed, mgp=False if no_mgp else None, mga=False if no_mga else None,
        teachers=teacher or None, distill_weight=distill_weight,
    )
    variant = variant_name(no_mgp=no_mgp, no_mga=no_mga, head=head, lora_rank=lora_rank)
    data = training_data(dataset, train_file, dev_file, labels, max_train=max_train_posts, max_dev=max_dev_posts)
    if train_file is not None:
        show_issues(data.issues)
    output = output or Path("runs/recognizer") / "-".join(p for p in (data.name, preset, variant) if p)
    train, dev_posts, schema = data.train, data.dev, data.schema
    console.print(f"training recogniser on {data.name} ({len(train)} train / {len(dev_posts)} dev posts, "
                  f"{len(schema.labels)} labels) -> {output}", highlight=False)
    console.print(f"[dim]{config.describe()}[/]", highlight=False)
    if not schema.hierarchical:
        console.print(f"{data.name} has one label granularity: one path + {config.head} (MGP and MGA off)")
    with silenced_progress_bars(not progress):  # transformers' loading bars too
        result = run_processes(train_recognizer, processes, config, schema, train, dev_posts, output,
                               knowledge=read_knowledge(knowledge), resume=resume, progress=progress,
                               device=device, log=progress_line, trust_remote_code=trust_remote_code)
    console.print(f"best dev MNER F1 {result.best_dev_f1:.2f} at epoch {result.best_epoch}; "
                  f"checkpoint {result.output} ({result.seconds / 60:.1f} min)")


@app.command("compress-recognizer")
@friendly_errors
def compress(
    source: Annotated[Path, typer.Argument(help="A fully fine-tuned recogniser checkpoint.")],
    output: Annotated[Path, typer.Argument(help="Where the LoRA-form checkpoint goes.")],
    rank: Annotated[int, typer.Option(min=1, help="Rank of the weight-change factors.")] = 48,
    fp16: Annotated[bool, typer.Option("--fp16/--fp32", help="Store the factors in fp16.")] = True,
) -> None:
    """Store a full fine-tune as LoRA adapters (truncated SVD of each weight change) + heads: a few MB."""
    import torch

    from ..recognize.compress import compress_recognizer

    report = compress_recognizer(source, output, rank, torch.float16 if fp16 else torch.float32)
    console.print(f"wrote {output}: rank {report.rank} over {report.layers} layers keeps "
                  f"{100 * report.kept_energy:.1f}% of the weight change; {report.deltas} small tensors whole; "
                  f"{report.megabytes:.2f} MB")


@app.command("vote")
@friendly_errors
def vote(
    predictions: Annotated[list[Path], typer.Argument(help="Two or more predictions JSONL of the same posts "
                                                      "(recognisers of other seeds, or other models).")],
    output: Annotated[Path, typer.Option(help="The voted predictions JSONL.")],
    min_votes: Annotated[int | None, typer.Option(min=1, help="Files that must predict an entity's span and "
                                                  "type (default: a majority).")] = None,
) -> None:
    """Majority vote of several predictions files: an ensemble of recognisers, one entity list per post."""
    from ..data.issues import IssueLog
    from ..recognize.vote import vote_files

    log = IssueLog()
    counts = vote_files(predictions, output, min_votes, log)
    show_issues(log.issues)
    console.print(f"wrote {output}: {counts.summary()}", highlight=False)
