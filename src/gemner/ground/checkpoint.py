"""A fine-tuned grounder checkpoint (paper §3.4.1) and the run that makes one.

The folder holds the ITM in Hugging Face layout (`model.safetensors`, `config.json`), its tokenizer and
image processor, and `grounder.json` (`SETTINGS_FILE`): the base model, dataset, category field, the
training settings and the P_T threshold tuned on dev. `Grounder.from_config` reads the threshold (and a
trace layer) from there unless the user sets them.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any, Literal

from ..data.issues import DataError, IssueLog
from .config import SETTINGS_FILE, GrounderConfig, GrounderTrainConfig

DEFAULT_THRESHOLD: float = GrounderConfig.model_fields["threshold"].default  # when not tuned on dev
CategoryField = Literal["type", "coarse"]


def save_grounder_checkpoint(matcher: Any, output: str | Path, settings: dict[str, Any]) -> Path:
    """Write the ITM (safetensors), its tokenizer and image processor, and `grounder.json`."""
    output = Path(output)
    output.mkdir(parents=True, exist_ok=True)
    matcher.model.save_pretrained(output, safe_serialization=True)
    matcher.tokenizer.save_pretrained(output)
    matcher.image_processor.save_pretrained(output)
    (output / SETTINGS_FILE).write_text(json.dumps(settings, indent=2))
    return output


def read_grounder_settings(folder: str | Path) -> dict[str, Any]:
    """`grounder.json` of a checkpoint folder; empty for a plain ITM checkpoint."""
    path = Path(folder) / SETTINGS_FILE
    return json.loads(path.read_text()) if path.is_file() else {}


def train_grounder_checkpoint(dataset: str | Path, images: str | Path, output: str | Path, *, base_model: str,
                              config: GrounderTrainConfig, category_field: CategoryField = "type",
                              tune: bool = True, max_posts: int | None = None, device: str = "auto",
                              log: Callable[[str], None] = print, issues: IssueLog | None = None,
                              trust_remote_code: bool = False, on_step: Callable[[int, float], None] | None = None
                              ) -> dict[str, Any] | None:
    """Fine-tune the ITM on the dataset's (entity, category, image, has-box) examples, tune the P_T
    threshold on dev when asked, and save the checkpoint; returns its `grounder.json` settings.
    Unreadable images are reported to `issues` and skipped. The run resumes from `<output>/last/` when
    that holds one (rerun the same command). Run as several processes (`gemner.distributed`), training is
    data-parallel; the main process alone tunes the threshold and writes (the others return None).
    `on_step(step, loss)` runs after every step; an exception raised there stops the run like a kill."""
    from ..data.folders import load_split
    from ..devices import resolve_device
    from ..distributed import DataParallel
    from .itm import EntityImageMatcher
    from .train import examples_from_posts, match_probabilities, train_matcher, tune_threshold, with_absent_negatives
    from .train_state import STATE_DIR

    if category_field not in ("type", "coarse"):
        raise DataError(f"category field is type or coarse, not {category_field!r}")
    parallel = DataParallel.from_env(resolve_device(device))
    log = parallel.main_only(log)
    issues = issues if issues is not None else IssueLog()
    train_items = examples_from_posts(load_split(dataset, "train", images_dir=images).posts[:max_posts],
                                      category_field, issues)
    train_items = with_absent_negatives(train_items, config.absent_negatives, config.seed)
    if not train_items:
        raise DataError(f"no train post of {dataset} has a readable image under {images}")
    matcher = EntityImageMatcher.from_pretrained(base_model, device=parallel.place(resolve_device(device)),
                                                 trust_remote_code=trust_remote_code)
    log(f"fine-tuning {base_model} on {len(train_items)} images ...")

    def progress(step: int, loss: float) -> None:
        if step % 50 == 0:
            log(f"  step {step}: loss {loss:.4f}")
        if on_step is not None:
            on_step(step, loss)

    report = train_matcher(matcher, train_items, config, on_step=progress, state_dir=Path(output) / STATE_DIR,
                           log=log)
    if not parallel.is_main:
        return None
    if parallel.world > 1:  # the caller's `issues` is not the one this spawned process filled: say them here
        for issue in issues.issues:
            log(f"warning: {issue}")
    settings: dict[str, Any] = {"base_model": base_model, "dataset": str(dataset), "category_field": category_field,
                                "lr": config.lr, "epochs": config.epochs, "steps": report.steps,
                                "absent_negatives": config.absent_negatives,
                                "threshold": DEFAULT_THRESHOLD, "skipped": report.skipped}
    if tune:
        dev_items = examples_from_posts(load_split(dataset, "dev", images_dir=images).posts, category_field, issues)
        threshold, accuracy = tune_threshold(*match_probabilities(matcher, dev_items))
        settings.update(threshold=threshold, dev_accuracy=accuracy)
        log(f"dev: threshold {threshold:.4f}, accuracy {accuracy:.2%}")
    save_grounder_checkpoint(matcher, output, settings)
    log(f"wrote {output} ({report.steps} steps, {report.seconds:.0f} s)")
    return settings
