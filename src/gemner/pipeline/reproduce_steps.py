"""The work of each reproduction step, done in this process with the library functions the matching
`gemner` command uses; the plan file prints that command, so any step can be rerun by hand."""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

from ..data.issues import IssueLog
from ..data.types import Post

Log = Callable[[str], None]


def train_recognizer_step(dataset: str, output: Path, *, changes: Mapping[str, Any], encoder: str | None,
                          knowledge: Path | None, epochs: int | None, max_train_posts: int | None,
                          max_dev_posts: int | None, resume: bool, log: Log) -> None:
    """`gemner train recognizer --preset lite`: the best-on-dev checkpoint in `output`, resumable state in
    `output/last`."""
    from ..data import load_dataset
    from ..recognize.config import preset
    from ..recognize.predict import read_knowledge
    from ..recognize.train import train_recognizer

    config = preset("lite", encoder=encoder, epochs=epochs, **changes)
    train = load_dataset(dataset, "train").posts[:max_train_posts]
    dev = load_dataset(dataset, "dev")
    train_recognizer(config, dev.schema, train, dev.posts[:max_dev_posts], output, knowledge=read_knowledge(knowledge),
                     resume=resume, progress=False, log=log)


def predict_step(recognizer: Path, posts: Sequence[Post], output: Path, knowledge: Path | None) -> None:
    """`gemner predict --recognizer`: the recogniser alone over `posts`, resuming a partial `output`."""
    from ..recognize.predict import predict_file

    predict_file(recognizer, posts, output, knowledge=knowledge, resume=True)


def train_reranker_step(dataset: str, output: Path, *, model: str | None, max_train: int | None, log: Log) -> None:
    """`gemner train reranker --preset lite --dev-max 0`: a LoRA adapter in `output` (resumes from its
    checkpoint)."""
    from ..rerank.config import preset, with_settings
    from ..rerank.train import train_reranker_on_dataset

    config = with_settings(preset("lite"), model=model, max_train=max_train)
    train_reranker_on_dataset(config, dataset, output, dev_max=0, device="cpu", log=log)


def rerank_step(reranker: Path, predictions: Path, output: Path, *, k: int, gamma: float | None, log: Log) -> None:
    """`gemner rerank`: every entity (`gamma` None, `--all`) or those above `gamma` reranked from the
    top `k`; resumes a partial `output`."""
    from ..rerank.apply import SampleFilter, rerank_predictions
    from ..rerank.config import RerankerConfig
    from ..rerank.model import Reranker

    given = {"k": k} if gamma is None else {"k": k, "gamma": gamma}
    model = Reranker.load(str(reranker), RerankerConfig.model_validate(given), device="cpu")
    issues = IssueLog()
    rerank_predictions(model, predictions, output, sample_filter=SampleFilter(model.config.gamma, gamma is None, k),
                       log=issues)
    _report(issues, log)


def sample_filter_step(predictions: Path, reranked: Path, output: Path, gamma: float, log: Log) -> None:
    """`gemner sample-filter`: the `rerank --gamma` output derived from a `rerank --all` run."""
    from ..rerank.apply import sample_filter_file

    issues = IssueLog()
    sample_filter_file(predictions, reranked, output, gamma, issues)
    _report(issues, log)


def calibrate_gamma_step(gold: Sequence[Post], predictions: Path, reranked: Path, output: Path, k: int,
                         log: Log) -> None:
    """`gemner calibrate-gamma --json OUTPUT --plot OUTPUT.png`: precision per entropy bin of recogniser
    and reranker on `gold`, and the gamma where they cross (Appendix E)."""
    from ..rerank.calibrate import calibrate_files, plot_calibration

    issues = IssueLog()
    result = calibrate_files(gold, predictions, reranked, log=issues)
    _report(issues, log)
    plot_calibration(result, str(output.with_suffix(".png")), k)
    output.write_text(json.dumps(result.to_dict(), indent=2, default=str))


def _report(issues: IssueLog, log: Log) -> None:
    if issues.issues:
        log(f"  {len(issues.issues)} input problems, e.g. {issues.issues[0]}")
