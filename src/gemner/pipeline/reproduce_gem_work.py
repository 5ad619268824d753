"""The work of each `reproduce --config paper-tiny | paper` step, done with the library call of the matching
`gemner` command (`reproduce_gem.plan_steps` names the command)."""

from __future__ import annotations

import json
import shutil
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from ..data.files import atomic_output
from ..data.folders import is_folder_source, load_split, upstream_folder
from ..data.issues import DataError
from ..data.types import Post
from .reproduce_gem_profiles import REFERENCE_CAPTIONS, GemProfile

Log = Callable[[str], None]
SPLITS = ("train", "dev", "test")


@dataclass
class Inputs:
    """The benchmark and the run's settings, each split read once."""

    dataset: str
    images: Path | None
    profile: GemProfile
    device: str
    threads: int
    log: Log
    _splits: dict[str, list[Post]] = field(default_factory=dict, repr=False)

    def posts(self, split: str) -> list[Post]:
        if split not in self._splits:
            self._splits[split] = load_split(self.dataset, split, images_dir=self.images).posts[
                :self.profile.limits.get(split)]
        return self._splits[split]

    def test_posts(self) -> list[Post]:
        return self.posts("test")

    def image_folder(self) -> Path:
        if self.images is not None:
            return self.images
        found = upstream_folder(self.dataset).images if is_folder_source(self.dataset) else None
        if found is None:
            raise DataError(f"{self.dataset}: no images; give --images DIR (the posts' images, named by post id)")
        return found


def caption_source(inputs: Inputs) -> Path | None:
    """Where paper-tiny's captions come from: the benchmark's reference captions (None: a captioning model,
    `profile.captioner`). The one line to change when a captioner trained on the benchmark replaces them."""
    if inputs.profile.captioner is not None:
        return None
    if not is_folder_source(inputs.dataset) or not (Path(inputs.dataset) / REFERENCE_CAPTIONS).is_file():
        raise DataError(f"{inputs.dataset}: no {REFERENCE_CAPTIONS} with reference captions (a `gemner data "
                        "synthetic` folder has one); --config paper captions with a model")
    return Path(inputs.dataset) / REFERENCE_CAPTIONS


def write_captions(inputs: Inputs, output: Path) -> None:
    """`{"id", "caption"}` per post of every split, through the knowledge builder's caption policy."""
    from ..knowledge.builder import cache_path, caption_posts
    from ..knowledge.cache import KnowledgeCache
    from ..knowledge.job import SourcePost

    posts = [SourcePost.from_post(post, split) for split in SPLITS for post in inputs.posts(split)]
    reference = caption_source(inputs)
    if reference is not None:  # a captions file: no model, no cache
        captions = caption_posts(posts, None, reference, None, notify=inputs.log)
    else:
        with KnowledgeCache(cache_path(None)) as cache:
            captions = caption_posts(posts, inputs.profile.captioner, None, cache, notify=inputs.log)
    _write_jsonl(output, [{"id": post_id, "caption": text} for post_id, text in captions.items()])


def write_knowledge(inputs: Inputs, captions: Path, output: Path) -> None:
    """The knowledge file the recogniser is trained with: the caption itself, or the LLM's explanation."""
    rows = [json.loads(line) for line in captions.read_text(encoding="utf-8").splitlines() if line.strip()]
    if not inputs.profile.llm:
        _write_jsonl(output, [{"id": row["id"], "knowledge": f"The image shows {row['caption']}." if row["caption"]
                               else "", "caption": row["caption"]} for row in rows])
        return
    from ..knowledge.builder import KnowledgeBuild, LLMSettings, build_knowledge
    from ..knowledge.export import export_knowledge
    from ..knowledge.job import SourcePost

    source = f"reproduce:{inputs.dataset}"
    posts = [SourcePost.from_post(post, split) for split in SPLITS for post in inputs.posts(split)]
    build_knowledge(KnowledgeBuild(source, posts, LLMSettings(), captions_file=captions), inputs.log)
    export_knowledge(output, None, source)


def train_recogniser(inputs: Inputs, output: Path, changes: dict[str, Any], knowledge: Path | None) -> None:
    """`gemner train recognizer`: the best-on-dev checkpoint in `output` (resumes its `last/` state)."""
    from ..recognize.config import preset
    from ..recognize.predict import read_knowledge
    from ..recognize.train import train_recognizer

    profile = inputs.profile
    config = preset(profile.recognizer_preset, encoder=profile.encoder, epochs=profile.recognizer_epochs, **changes)
    schema = load_split(inputs.dataset, "dev").schema
    resume = (output / "last").exists()
    train_recognizer(config, schema, inputs.posts("train"), inputs.posts("dev"), output,
                     knowledge=read_knowledge(knowledge), resume=resume, progress=False, log=inputs.log,
                     device=_device(inputs.device))


def build_tiny_bases(inputs: Inputs, llava: Path, itm: Path) -> None:
    """The tiny models trained from scratch: a LLaVA (random init, LM head on a trained scale) and a BLIP
    ITM whose word-level vocabulary is the benchmark's words and labels."""
    from ..ground.tiny import build_tiny_itm, save_tiny_itm
    from ..rerank.tiny import build_tiny_llava

    build_tiny_llava(llava, init_std=0.1)
    schema = load_split(inputs.dataset, "dev").schema
    words = {word for split in SPLITS for post in inputs.posts(split) for word in post.tokens}
    labels = set(schema.labels) | set(getattr(schema, "coarse_labels", ()) or ())
    save_tiny_itm(*build_tiny_itm(sorted(words | labels), inputs.profile.itm_spec), itm)


def predict_train_split(inputs: Inputs, recogniser: Path, knowledge: Path, output: Path) -> None:
    """`gemner predict --recognizer R --knowledge K --no-rerank --no-ground --split train`: the entropies the
    sample filter reads, for training the reranker on what it sends."""
    from .config import load_config, with_changes, with_device
    from .gem import GEM
    from .predict import predict_to_file

    config = with_changes(load_config("lite"), {"recognizer": {"model": str(recogniser)},
                                                "knowledge": {"enabled": True, "file": str(knowledge)},
                                                "rerank": {"enabled": False}, "ground": {"enabled": False}})
    output.parent.mkdir(parents=True, exist_ok=True)
    predict_to_file(GEM(with_device(config, inputs.device), notify=inputs.log), inputs.posts("train"), output)


def train_reranker(inputs: Inputs, base: str, output: Path, sent_by: Path | None = None) -> None:
    """`gemner train reranker --dataset D --model BASE [--hard-from P --gamma G]`: LoRA on (image, Table 7
    prompt, candidates), for every gold entity or (`sent_by`) those the sample filter sends."""
    from ..rerank.config import RerankerConfig
    from ..rerank.train import train_reranker_on_dataset

    profile = inputs.profile
    config = RerankerConfig(model=base, **profile.reranker, max_train=profile.reranker_limit)
    result = train_reranker_on_dataset(config, inputs.dataset, output, images=inputs.images, dev_max=0,
                                       device=_device(inputs.device), log=inputs.log, hard_from=sent_by,
                                       gamma=profile.gamma)
    if result.get("train_with_images", 0) == 0:
        raise DataError("the reranker saw no image in training: give --images DIR")


def train_grounder(inputs: Inputs, base: str, output: Path) -> None:
    """`gemner train grounder`: the ITM fine-tuned on (entity, category, image, has-box), threshold on dev."""
    from ..ground.checkpoint import train_grounder_checkpoint

    train_grounder_checkpoint(inputs.dataset, inputs.image_folder(), output, base_model=base,
                              config=inputs.profile.grounder, max_posts=inputs.profile.limits.get("train"),
                              device=inputs.device, log=inputs.log)


def write_pipeline_folder(folder: Path, recogniser: Path, reranker: Path, grounder: Path, knowledge: Path,
                          profile: GemProfile) -> None:
    """`folder/gemner.yaml` and the checkpoints it names by paths relative to it: the folder can be moved
    and loads with `GEM.from_pretrained(folder)` or `gemner predict -c folder`. The yaml is written last."""
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "gemner.yaml").unlink(missing_ok=True)
    _copy(recogniser, folder / "recognizer", skip=("last",))
    _copy(reranker, folder / "reranker", skip=("checkpoint", "train_log.jsonl"))
    settings = json.loads((reranker / "reranker.json").read_text())
    base = Path(settings["model"])
    if base.is_dir():  # a base built by the run travels inside the folder, named relative to it
        _copy(base, folder / "reranker" / "base")
        (folder / "reranker" / "reranker.json").write_text(json.dumps({**settings, "model": "base"}, indent=2))
    _copy(grounder, folder / "grounder")
    shutil.copyfile(knowledge, folder / "knowledge.jsonl")
    config = {"name": f"gem-{profile.name}",
              "knowledge": {"file": "knowledge.jsonl"},
              "recognizer": {"model": "recognizer"},
              "rerank": {"model": "reranker", "gamma": profile.gamma},
              "ground": {"itm_model": "grounder", "segmenter": profile.segmenter}}
    text = (f"# GEM trained by `gemner reproduce --config {profile.name}`; paths are relative to this file.\n"
            "# knowledge.jsonl holds the knowledge of the benchmark's posts (by id).\n")
    (folder / "gemner.yaml").write_text(text + yaml.safe_dump(config, sort_keys=False))


def predict_row(inputs: Inputs, pipeline: Path, changes: dict[str, Any], recogniser: Path | None,
                output: Path) -> None:
    """`gemner predict --config PIPELINE --dataset D --split test`, with the row's configuration edits."""
    from .config import load_config, with_changes, with_device
    from .gem import GEM
    from .predict import predict_to_file

    edits = {**changes, **({"recognizer": {"model": str(recogniser)}} if recogniser else {})}
    config = with_device(with_changes(load_config(pipeline), edits), inputs.device)
    gem = GEM(config, notify=inputs.log)
    output.parent.mkdir(parents=True, exist_ok=True)
    predict_to_file(gem, inputs.test_posts(), output)


def _device(device: str) -> str:
    from ..devices import resolve_device

    return resolve_device(device)


def _copy(source: Path, target: Path, skip: tuple[str, ...] = ()) -> None:
    shutil.rmtree(target, ignore_errors=True)
    shutil.copytree(source, target, ignore=lambda _d, names: [n for n in names if n in skip])


def _write_jsonl(path: Path, rows: list[dict[str, Any]]) -> None:
    with atomic_output(path) as handle:
        handle.writelines(json.dumps(row) + "\n" for row in rows)
