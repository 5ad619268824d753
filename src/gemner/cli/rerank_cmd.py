"""`gemner rerank`, `gemner train reranker`, `gemner calibrate-gamma` (paper §3.3, Appendix E)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated

import typer

from ..rerank.config import PAPER_GAMMA, PAPER_K
from .app import TrustRemoteCodeOpt, app, train_app
from .console import err as console
from .console import out as out_console
from .console import progress_line, warnings
from .errors import friendly_errors
from .options import AccumulateOpt, ProcessesOpt, RetryOpt

ModelOpt = Annotated[str, typer.Option("--model", "-m", help="Trained reranker folder, or a base model name/path.")]
KOpt = Annotated[int | None, typer.Option("--k", min=1, help=f"Candidates per entity (paper: {PAPER_K}).")]
ThreadsOpt = Annotated[int | None, typer.Option("--threads", min=1, help="torch CPU threads (default: torch's).")]
DeviceOpt = Annotated[str | None, typer.Option("--device", help="cpu | cuda | cuda:N (default: cuda if present).")]
DATASET_HELP = "fmnerg | gmner | gmner-v2, or an upstream folder (txt/, xml/, images/; `gemner data synthetic`)"
ImagesOpt = Annotated[Path | None, typer.Option(
    help="Folder of the posts' images (<id>.jpg); an upstream folder's own images/ by default. "
         "Image-text-to-text models train on them; text-only models use --knowledge captions.")]
FewShotOpt = Annotated[int | None, typer.Option("--few-shot", min=0, max=3,
                                                help="Paper Table 7 examples as few-shot turns (0-3).")]


def _threads(threads: int | None) -> None:
    import torch

    if threads:
        torch.set_num_threads(threads)


def read_captions(path: Path | None) -> dict[str, str]:
    """Captions by post id from a knowledge JSONL(.gz) (`{"id", "knowledge", "caption"}`)."""
    from ..data.userio import read_knowledge

    return {} if path is None else {post_id: caption for post_id, (_, caption) in read_knowledge(path).items()}


@app.command("rerank")
@friendly_errors
def rerank(
    model: ModelOpt,
    predictions: Annotated[Path, typer.Option(help="Recogniser predictions JSONL (scores.entropy, scores.topk).")],
    output: Annotated[Path, typer.Option(help="Reranked predictions JSONL (resumes if it exists).")],
    gamma: Annotated[float | None, typer.Option(
        min=0.0, help=f"Sample-filter threshold on eq. 10 entropy (default: the reranker's; paper {PAPER_GAMMA}).")
    ] = None,
    rerank_all: Annotated[bool, typer.Option("--all", help="Rerank every entity (no sample filter).")] = False,
    k: KOpt = None,
    mode: Annotated[str | None, typer.Option(help="score (constrained, default) | generate (free, mapped).")] = None,
    length_norm: Annotated[str | None, typer.Option(help="sum (default) | mean of candidate token log-probs.")] = None,
    knowledge: Annotated[Path | None, typer.Option(help="Knowledge JSONL with captions (text-only models).")] = None,
    dataset: Annotated[str | None, typer.Option(help="Schema for coarse types (default: the reranker's).")] = None,
    bf16: Annotated[bool | None, typer.Option("--bf16/--no-bf16", help="bf16 autocast for scoring.")] = None,
    few_shot: FewShotOpt = None,
    threads: ThreadsOpt = None,
    device: DeviceOpt = None,
    retry_errors: RetryOpt = True,
    progress: Annotated[bool, typer.Option(help="Show a progress bar.")] = True,
    trust_remote_code: TrustRemoteCodeOpt = False,
) -> None:
    """Rerank the hard entities (H > gamma) of a predictions file with a reranker."""
    _threads(threads)
    from ..data import SCHEMAS
    from ..data.issues import DataError, IssueLog
    from ..progress import silenced_progress_bars
    from ..rerank.apply import rerank_predictions
    from ..rerank.config import overrides
    from ..rerank.filter import SampleFilter
    from ..rerank.model import Reranker

    if not predictions.is_file():
        raise FileNotFoundError(f"{predictions}: no such predictions file")
    if dataset is not None and dataset not in SCHEMAS:
        raise DataError(f"unknown schema {dataset!r}; choose one of {', '.join(SCHEMAS)}")
    given = overrides(gamma=gamma, k=k, mode=mode, length_norm=length_norm, bf16_inference=bf16, few_shot=few_shot)
    log = IssueLog()
    with silenced_progress_bars(not progress):  # transformers' loading bars too
        reranker = Reranker.load(model, given, device=device, trust_remote_code=trust_remote_code)
        cfg = reranker.config
        counts, stats = rerank_predictions(
            reranker, predictions, output, sample_filter=SampleFilter(cfg.gamma, rerank_all, cfg.k),
            schema=SCHEMAS[dataset] if dataset else None, captions=read_captions(knowledge), mode=cfg.mode,
            log=log, retry_errors=retry_errors, progress=progress)
    warnings(log.issues)
    console.print(f"wrote {output}: {counts.summary()}; {stats.summary()}", highlight=False)


@app.command("sample-filter")
@friendly_errors
def sample_filter(
    predictions: Annotated[Path, typer.Option(help="Recogniser predictions JSONL.")],
    reranked: Annotated[Path, typer.Option(help="The same file reranked with --all.")],
    output: Annotated[Path, typer.Option(help="Predictions with only the entities H > gamma reranked.")],
    gamma: Annotated[float, typer.Option(min=0.0, help="Sample-filter threshold on eq. 10 entropy.")] = PAPER_GAMMA,
) -> None:
    """Apply the sample filter after the fact: same output as `rerank --gamma`, without the model."""
    from ..data.issues import IssueLog
    from ..rerank.apply import sample_filter_file

    log = IssueLog()
    count = sample_filter_file(predictions, reranked, output, gamma, log)
    warnings(log.issues)
    console.print(f"wrote {output}: {count} posts, gamma {gamma}", highlight=False)


@train_app.command("reranker")
@friendly_errors
def train_reranker_cmd(
    dataset: Annotated[str, typer.Option("--dataset", "-d", help=DATASET_HELP)] = "fmnerg",
    images: ImagesOpt = None,
    model: Annotated[str | None, typer.Option("--model", "-m", help="Base model name or path.")] = None,
    output: Annotated[Path, typer.Option(help="Folder for the adapter (resumes from its checkpoint).")] = Path(
        "runs/reranker"),
    preset: Annotated[str, typer.Option(help="paper (LLaVA-1.5-7B) | lite (SmolLM2-135M, CPU budget)")] = "paper",
    epochs: Annotated[float | None, typer.Option(help="Paper: 3.")] = None,
    lr: Annotated[float | None, typer.Option(help="Paper: 5e-6.")] = None,
    lora_rank: Annotated[int | None, typer.Option(min=1, help="Paper: 64.")] = None,
    k: KOpt = None,
    max_train: Annotated[int | None, typer.Option(min=1, help="Seeded subset of training entities.")] = None,
    candidate_pool: Annotated[str | None, typer.Option(
        help="Other candidates drawn from: schema (every label; paper) | train (the labels of the train split's "
             "entities).")] = None,
    batch_size: Annotated[int | None, typer.Option(
        min=1, help="Effective batch of one step, shared by --processes and --accumulate (default: 4).")] = None,
    accumulate: AccumulateOpt = None,
    processes: ProcessesOpt = 1,
    seed: Annotated[int | None, typer.Option()] = None,
    bf16: Annotated[bool | None, typer.Option("--bf16/--no-bf16", help="bf16 autocast.")] = None,
    knowledge: Annotated[Path | None, typer.Option(help="Knowledge JSONL with captions (text-only models).")] = None,
    hard_from: Annotated[Path | None, typer.Option(
        help="The recogniser's predictions of the train split (`gemner predict --no-rerank`): train only on the "
             "gold entities the sample filter sends at --gamma (paper: every gold entity).")] = None,
    gamma: Annotated[float, typer.Option(min=0.0, help="Sample-filter threshold for --hard-from.")] = PAPER_GAMMA,
    dev_max: Annotated[int, typer.Option(min=0, help="Dev entities for candidate accuracy (0: skip).")] = 300,
    eval_before: Annotated[bool, typer.Option(help="Also measure dev accuracy before training.")] = False,
    save_every: Annotated[int, typer.Option(min=1, help="Checkpoint every N steps.")] = 200,
    few_shot: FewShotOpt = None,
    threads: ThreadsOpt = None,
    device: DeviceOpt = None,
    trust_remote_code: TrustRemoteCodeOpt = False,
) -> None:
    """LoRA-tune a reranker on gold entities with training-style candidate sets (paper §3.3.2)."""
    _threads(threads)
    from ..distributed import run_processes
    from ..rerank.config import preset as get_preset
    from ..rerank.config import with_settings
    from ..rerank.train import train_reranker_on_dataset

    try:
        base = get_preset(preset)
    except ValueError as err:
        raise typer.BadParameter(str(err)) from None
    config = with_settings(base, model=model, epochs=epochs, lr=lr, lora_rank=lora_rank, k=k, max_train=max_train,
                           candidate_pool=candidate_pool, batch_size=batch_size, accumulate=accumulate, seed=seed,
                           bf16=bf16, few_shot=few_shot)
    run_processes(train_reranker_on_dataset, processes, config, dataset, output, images=images,
                  captions=read_captions(knowledge), dev_max=dev_max, eval_before=eval_before, save_every=save_every,
                  device=device, trust_remote_code=trust_remote_code, hard_from=hard_from, gamma=gamma,
                  log=progress_line)
    console.print(f"saved reranker to {output}")


@app.command("eval-reranker")
@friendly_errors
def eval_reranker(
    model: ModelOpt,
    dataset: Annotated[str, typer.Option("--dataset", "-d", help=DATASET_HELP)] = "fmnerg",
    images: ImagesOpt = None,
    split: Annotated[str, typer.Option(help="Gold split.")] = "dev",
    max_entities: Annotated[int, typer.Option("--max", min=0, help="Seeded subset of gold entities (0: all).")] = 300,
    k: Annotated[int, typer.Option("--k", min=1, help="Candidates per entity.")] = PAPER_K,
    seed: Annotated[int, typer.Option(help="Seed of the training run (the same dev subset it measured).")] = 0,
    generate: Annotated[bool, typer.Option(help="Also free generation mapped onto the candidates.")] = False,
    few_shot: FewShotOpt = None,
    threads: ThreadsOpt = None,
    device: DeviceOpt = None,
    trust_remote_code: TrustRemoteCodeOpt = False,
) -> None:
    """Accuracy of picking the gold label among training-style candidates, per scoring rule."""
    _threads(threads)
    from ..data.folders import load_split
    from ..rerank.config import overrides
    from ..rerank.infer import accuracy_by_scoring_rule, chance_accuracy, generation_accuracy
    from ..rerank.model import Reranker
    from ..rerank.train import split_queries

    gold = load_split(dataset, split, images_dir=images)
    queries = split_queries(gold.posts, gold.schema, split, k, seed, max_entities or None)
    reranker = Reranker.load(model, overrides(few_shot=few_shot), device=device,
                             trust_remote_code=trust_remote_code)
    accuracy = accuracy_by_scoring_rule(reranker, queries)
    chance = 100 * chance_accuracy(queries)
    out_console.print(f"{dataset} {split}, {len(queries)} entities, K={k}: chance {chance:.1f}%; "
                      + "; ".join(f"{rule} {100 * value:.1f}%" for rule, value in accuracy.items()), highlight=False)
    if generate:
        value, rules = generation_accuracy(reranker, queries)
        mapped = ", ".join(f"{rule} {n}" for rule, n in rules.items())
        out_console.print(f"free generation, mapped onto the candidates: {100 * value:.1f}% (mapped by: {mapped})",
                        highlight=False)


@app.command("calibrate-gamma")
@friendly_errors
def calibrate_gamma(
    predictions: Annotated[Path, typer.Option(help="Recogniser dev predictions JSONL.")],
    reranked: Annotated[Path, typer.Option(help="The same file reranked with --all.")],
    dataset: Annotated[str, typer.Option("--dataset", "-d", help=DATASET_HELP)] = "fmnerg",
    split: Annotated[str, typer.Option(help="Gold split the predictions are for.")] = "dev",
    bins: Annotated[int, typer.Option(min=1, help="Equal-count entropy bins.")] = 10,
    edges: Annotated[str | None, typer.Option(help="Explicit bin edges, comma-separated (overrides --bins).")] = None,
    plot: Annotated[Path, typer.Option(help="PNG of the precision curves.")] = Path("gamma_calibration.png"),
    json_out: Annotated[Path | None, typer.Option("--json", help="Write the bins and gammas as JSON.")] = None,
    k: Annotated[int, typer.Option("--k", min=1, help="K used for the candidates (plot legend).")] = PAPER_K,
) -> None:
    """Appendix E: precision of recogniser and reranker per uncertainty bin; gamma where they cross."""
    from rich.table import Table

    from ..data.folders import load_split
    from ..data.issues import DataError, IssueLog
    from ..rerank.calibrate import calibrate_files, plot_calibration

    try:
        edge_list = [float(x) for x in edges.split(",")] if edges else None
    except ValueError:
        raise DataError(f"--edges must be comma-separated numbers, got {edges!r}") from None
    log = IssueLog()
    result = calibrate_files(load_split(dataset, split).posts, predictions, reranked, bins, edge_list, log)
    warnings(log.issues)
    table = Table(title=f"{dataset} {split}: precision per entropy bin")
    for column in ("H from", "H to", "entities", "recogniser %", "reranker %", f"gold in top-{k} %"):
        table.add_column(column, justify="right")
    for b in result.bins:
        table.add_row(f"{b.low:.3f}", f"{b.high:.3f}", str(b.n), f"{b.base_precision:.1f}",
                      f"{b.rerank_precision:.1f}", f"{b.topk_hit:.1f}")
    out_console.print(table)
    crossing = "none" if result.crossing is None else f"{result.crossing:.3f}"
    out_console.print(f"crossing gamma: {crossing}; best-threshold gamma: {result.best:.3f}; "
                    f"chosen gamma: {result.chosen:.3f}", highlight=False)
    if result.missing_rerank:
        console.print(f"[yellow]warning:[/] {result.missing_rerank} entities had no reranker choice "
                      "(rerank with --all)")
    plot_calibration(result, str(plot), k)
    out_console.print(f"plot: {plot}")
    if json_out is not None:
        json_out.write_text(json.dumps(result.to_dict(), indent=2, default=str))


@app.command("compress-reranker")
@friendly_errors
def compress_reranker_command(
    source: Annotated[Path, typer.Argument(help="A trained reranker folder (`gemner train reranker`).")],
    output: Annotated[Path, typer.Argument(help="Where the smaller reranker folder goes.")],
    rank: Annotated[int, typer.Option(min=1, help="Rank the LoRA updates are cut to.")] = 16,
    fp16: Annotated[bool, typer.Option("--fp16/--fp32", help="Store the factors in fp16.")] = True,
) -> None:
    """Cut a reranker's LoRA adapter to a lower rank (truncated SVD of each layer's update), e.g. to ship it."""
    import torch

    from ..rerank.compress import compress_reranker

    report = compress_reranker(source, output, rank, torch.float16 if fp16 else torch.float32)
    console.print(f"wrote {output}: rank {report.rank} over {report.layers} layers keeps "
                  f"{100 * report.kept_energy:.1f}% of the update; {report.megabytes:.2f} MB")
