"""`gemner ground ...` and `gemner train grounder`: implicit visual grounding (paper §3.4)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated

import typer
from rich.table import Table

from .app import TrustRemoteCodeOpt, app, train_app
from .console import err as err_console
from .console import out as console
from .console import progress_line, warnings
from .errors import friendly_errors
from .options import AccumulateOpt, ProcessesOpt, RetryOpt, ThreadsOpt

ground_app = typer.Typer(
    help="Implicit visual grounding (paper §3.4): ITM relevance, eq. 11 tracing, point to box.",
    invoke_without_command=True, no_args_is_help=False,
)
app.add_typer(ground_app, name="ground")

PresetOpt = Annotated[str, typer.Option(help="paper (BLIP ITM + SAM ViT-B) | lite (SlimSAM-50) | weight-free")]
ModelOpt = Annotated[str | None, typer.Option("--model", help="ITM checkpoint: hub id or folder.")]
SegmenterOpt = Annotated[str | None, typer.Option(help="sam | region | heatmap (default: preset).")]
SamOpt = Annotated[str | None, typer.Option(help="SAM checkpoint, preset (slimsam-50) or folder.")]


def _config(preset: str, model: str | None, segmenter: str | None, sam_model: str | None,
            threshold: float | None, trace_layer: int | None, device: str, bf16: bool):
    from ..ground.config import preset as make_preset

    try:
        return make_preset(preset, itm_model=model, segmenter=segmenter, sam_model=sam_model,
                           threshold=threshold, trace_layer=trace_layer, device=device,
                           dtype="bfloat16" if bf16 else None)
    except ValueError as err:  # unknown preset or segmenter: a usage error
        raise typer.BadParameter(str(err)) from None


@ground_app.callback()
@friendly_errors
def ground(
    ctx: typer.Context,
    image: Annotated[Path | None, typer.Option(help="One image to ground entities in.")] = None,
    entity: Annotated[list[str] | None, typer.Option(help="Entity text (repeat for several).")] = None,
    category: Annotated[list[str] | None, typer.Option(help="Its category (one for all, or one per entity).")] = None,
    overlay: Annotated[Path | None, typer.Option(help="Write the heat-map overlay PNG here.")] = None,
    predictions: Annotated[Path | None, typer.Option(help="Batch mode: predictions JSONL to fill in.")] = None,
    images: Annotated[Path | None, typer.Option(help="Batch mode: folder of the posts' images.")] = None,
    output: Annotated[Path | None, typer.Option(help="Batch mode: output JSONL (resumed if present).")] = None,
    preset: PresetOpt = "paper",
    model: ModelOpt = None,
    segmenter: SegmenterOpt = None,
    sam_model: SamOpt = None,
    threshold: Annotated[float | None, typer.Option(
        min=0.0, max=1.0, help="P_T below this: no box (default 0.5 or tuned).")] = None,
    trace_layer: Annotated[int | None, typer.Option(
        min=0, help="Cross-attention layer to trace (default: middle).")] = None,
    device: Annotated[str, typer.Option(help="auto | cpu | cuda")] = "auto",
    bf16: Annotated[bool, typer.Option(help="Run the models in bfloat16.")] = False,
    threads: ThreadsOpt = None,
    retry_errors: RetryOpt = True,
    trust_remote_code: TrustRemoteCodeOpt = False,
) -> None:
    """Ground entities in one image (`--image`), or fill in the boxes of a predictions file (`--predictions`)."""
    if ctx.invoked_subcommand is not None:
        return
    if (image is None) == (predictions is None):
        raise typer.BadParameter("give either --image (one image) or --predictions (batch mode)")
    import torch

    from ..ground.grounder import Grounder

    if threads:
        torch.set_num_threads(threads)
    config = _config(preset, model, segmenter, sam_model, threshold, trace_layer, device, bf16)
    if image is not None:
        queries = _queries(entity or [], category or [])
        _ground_one(Grounder.from_config(config, trust_remote_code=trust_remote_code), image, queries, overlay)
    else:
        if output is None:
            raise typer.BadParameter("batch mode needs --output")
        _ground_file(Grounder.from_config(config, trust_remote_code=trust_remote_code), predictions, images, output,
                     retry_errors)


def _queries(entities: list[str], categories: list[str]):
    from ..ground.grounder import Query

    if not entities:
        raise typer.BadParameter("give at least one --entity")
    if len(categories) == 1:
        categories = categories * len(entities)
    if len(categories) != len(entities):
        raise typer.BadParameter("give one --category for all entities, or one per --entity")
    return [Query(e, c) for e, c in zip(entities, categories, strict=True)]


def _ground_one(grounder, image_path: Path, queries, overlay: Path | None) -> None:
    from ..data.images import load_image, original_size, to_original
    from ..ground.overlay import save_overlay

    image = load_image(image_path)  # ImageError: one line, exit status 2
    groundings = grounder.ground([image], [queries], keep_heatmaps=overlay is not None)[0]
    width, height = original_size(image)
    table = Table(title=f"{image_path.name} ({width}x{height})")
    for column in ("entity", "category", "P_T", "box", "peak"):
        table.add_column(column)
    for query, g in zip(queries, groundings, strict=True):
        box = "None" if g.box is None else "[" + ", ".join(f"{v:g}" for v in to_original(image, g.box)) + "]"
        peak = str([round(v) for v in to_original(image, g.peak)]) if g.peak else "-"
        table.add_row(query.entity, query.category, f"{g.p_true:.4f}", box, peak)
    console.print(table)
    if overlay is None:
        return
    for k, (query, g) in enumerate(zip(queries, groundings, strict=True)):
        if g.heatmap is None:
            err_console.print(f"{query.entity}: P_T below the threshold, not traced, no overlay")
            continue
        path = overlay if len(queries) == 1 else overlay.with_name(f"{overlay.stem}_{k}{overlay.suffix or '.png'}")
        save_overlay(path, image, g.heatmap, peak=g.peak, box=g.box)
        err_console.print(f"overlay: {path}")


def _ground_file(grounder, predictions: Path, images: Path | None, output: Path, retry_errors: bool) -> None:
    from ..data import IssueLog
    from ..ground.batch import ground_predictions

    if not predictions.is_file():
        raise FileNotFoundError(f"predictions file not found: {predictions}")
    log = IssueLog()
    counts, stats = ground_predictions(grounder, predictions, output, images_dir=images, log=log,
                                       retry_errors=retry_errors)
    warnings(log.issues)
    err_console.print(f"wrote {output}: {counts.summary()}; {stats.summary()}", highlight=False)


@ground_app.command("synthetic")
@friendly_errors
def synthetic(
    full: Annotated[bool, typer.Option(help="The full version (README table) instead of the small CI one.")] = False,
    save_model: Annotated[Path | None, typer.Option(help="Save the trained tiny ITM here.")] = None,
    json_out: Annotated[Path | None, typer.Option("--json", help="Write the metrics as JSON here.")] = None,
    threads: Annotated[int, typer.Option(min=1, help="torch CPU threads.")] = 1,
    seed: Annotated[int, typer.Option(help="Random seed.")] = 0,
) -> None:
    """Prove the grounding path on synthetic scenes: train a tiny BLIP ITM, ground held-out scenes, score boxes."""
    from ..ground.proof import PROOF_PRESETS, run_proof

    config = PROOF_PRESETS["full" if full else "small"].model_copy(update={"threads": threads, "seed": seed})
    err_console.print(f"training a tiny BLIP ITM on {config.train_scenes} scenes x {config.epochs} epochs ...")

    def progress(step: int, loss: float) -> None:
        if step % 100 == 0:
            err_console.print(f"  step {step}: loss {loss:.4f}")

    result = run_proof(config, save_to=save_model, on_step=progress)
    console.print(result.table())
    err_console.print("seconds: " + ", ".join(f"{k} {v:.0f}" for k, v in result.seconds.items()))
    if json_out is not None:
        json_out.write_text(json.dumps({"config": config.model_dump(), "metrics": result.metrics,
                                        "counts": result.counts, "seconds": result.seconds}, indent=2))


@train_app.command("grounder")
@friendly_errors
def train_grounder(
    images: Annotated[Path, typer.Option(help="Folder of the benchmark's images (post id = file name).")],
    output: Annotated[Path, typer.Option(help="Output folder for the fine-tuned ITM checkpoint.")],
    dataset: Annotated[str, typer.Option("--dataset", "-d", help="fmnerg | gmner | gmner-v2, or an upstream "
                                         "folder (`gemner data synthetic`)")] = "fmnerg",
    model: Annotated[str | None, typer.Option("--model", help="ITM to start from (paper: BLIP ITM base COCO).")] = None,
    lr: Annotated[float | None, typer.Option(min=0, help="Learning rate (paper: 5e-5).")] = None,
    epochs: Annotated[int | None, typer.Option(min=1, help="Epochs (paper: 1).")] = None,
    images_per_batch: Annotated[int | None, typer.Option(
        min=1, help="Effective batch: images per step, all their entities, shared by --processes and "
        "--accumulate (8).")] = None,
    accumulate: AccumulateOpt = None,
    processes: ProcessesOpt = 1,
    save_every: Annotated[int | None, typer.Option(
        min=0, help="Write the resumable OUTPUT/last state every N steps (100; 0: at the end only).")] = None,
    positive_weight: Annotated[float | None, typer.Option(min=0, help="Loss weight of 'has a box' pairs (1).")] = None,
    absent_negatives: Annotated[int | None, typer.Option(
        min=0, help="Per image, drawn entities of other images asked as 'no box' (0, the paper's pairs).")] = None,
    category_field: Annotated[str, typer.Option(help="type (fine, paper) | coarse")] = "type",
    tune: Annotated[bool, typer.Option(help="Tune the P_T threshold on the dev split afterwards.")] = True,
    max_posts: Annotated[int | None, typer.Option(min=1, help="Use only the first N train posts (smoke runs).")] = None,
    device: Annotated[str, typer.Option(help="auto | cpu | cuda")] = "auto",
    threads: ThreadsOpt = None,
    seed: Annotated[int | None, typer.Option(help="Random seed (0).")] = None,
    trust_remote_code: TrustRemoteCodeOpt = False,
) -> None:
    """Fine-tune BLIP's ITM on (entity, category, image, has-box) from the benchmark (paper §3.4.1).
    Rerunning the same command resumes from OUTPUT/last."""
    from ..data import IssueLog
    from ..distributed import run_processes
    from ..ground.checkpoint import train_grounder_checkpoint
    from ..ground.config import PAPER_ITM_MODEL, GrounderTrainConfig

    if category_field not in ("type", "coarse"):
        raise typer.BadParameter("--category-field is type or coarse")
    given = {"lr": lr, "epochs": epochs, "images_per_batch": images_per_batch, "accumulate": accumulate,
             "save_every_steps": save_every, "seed": seed, "threads": threads,
             "positive_weight": positive_weight, "absent_negatives": absent_negatives}
    config = GrounderTrainConfig(**{key: value for key, value in given.items() if value is not None})
    log = IssueLog()
    try:
        run_processes(train_grounder_checkpoint, processes, dataset, images, output,
                      base_model=model or PAPER_ITM_MODEL, config=config, category_field=category_field, tune=tune,
                      max_posts=max_posts, device=device, issues=log, trust_remote_code=trust_remote_code,
                      log=progress_line)
    finally:
        warnings(log.issues)
