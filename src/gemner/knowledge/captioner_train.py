"""Training a tiny BLIP captioner from scratch on a benchmark's images and reference captions.

The paper captions images with a pretrained BLIP-2; at tiny sizes ("paper-tiny") no pretrained
captioner exists, so one of the same class family (`knowledge.tiny_captioner`) is trained here on the
train split's images against the captions in `knowledge.jsonl` (the synthetic benchmark's reference
captions, docs/synthetic.md), and the epoch with the best dev word accuracy is kept. The folder it writes
is an ordinary captioner: `ModelCaptioner(path)` and the knowledge stage's `--captioner PATH` load it.

A finished folder holds `captioner_train.json` (settings and dev scores); asked again with the same
settings, training is skipped, so a reproduction run resumes past it.
"""

from __future__ import annotations

import copy
import json
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import torch

from ..data.folders import load_split
from ..data.images import load_image
from ..data.issues import DataError
from ..ground.tiny import TinyItmSpec
from .captioner import CaptionsFile
from .tiny_captioner import CAPTIONER_SPEC, build_tiny_captioner, caption_words, save_tiny_captioner

DONE_FILE = "captioner_train.json"
IGNORE_INDEX = -100  # label positions the loss skips (padding)


@dataclass(frozen=True)
class CaptionerTrainConfig:
    spec: TinyItmSpec = CAPTIONER_SPEC
    epochs: int = 24
    batch_size: int = 16
    lr: float = 2e-3
    weight_decay: float = 0.01
    eval_every: int = 4  # epochs between dev evaluations (greedy captions of every dev image)
    max_new_tokens: int = 20


@dataclass(frozen=True)
class CaptionScores:
    exact_match: float  # share of captions equal to the reference, word for word
    word_accuracy: float  # share of reference word positions predicted right (over the longer caption)


@dataclass
class _Split:
    ids: list[str]
    pixels: torch.Tensor
    captions: list[str]


def caption_scores(predicted: Sequence[str], reference: Sequence[str]) -> CaptionScores:
    exact = right = total = 0
    for guess, gold in zip(predicted, reference, strict=True):
        guess_words, gold_words = guess.lower().split(), gold.lower().split()
        exact += guess_words == gold_words
        right += sum(a == b for a, b in zip(guess_words, gold_words, strict=False))
        total += max(len(guess_words), len(gold_words), 1)
    n = max(len(reference), 1)
    return CaptionScores(exact / n, right / max(total, 1))


def _load_split(benchmark_dir: Path, split: str, captions: dict[str, str], processor: Any) -> _Split:
    posts = [post for post in load_split(str(benchmark_dir), split) if post.id in captions]
    if not posts:
        raise DataError(f"{benchmark_dir}: no {split} post has a caption in knowledge.jsonl")
    images = [load_image(benchmark_dir / "images" / f"{post.id}.jpg") for post in posts]
    pixels = processor.image_processor(images=images, return_tensors="pt")["pixel_values"]
    return _Split([post.id for post in posts], pixels, [captions[post.id] for post in posts])


def _targets(processor: Any, captions: list[str], max_length: int) -> tuple[torch.Tensor, torch.Tensor]:
    encoded = processor.tokenizer(captions, padding="longest", truncation=True, max_length=max_length,
                                  return_tensors="pt")
    labels = encoded["input_ids"].masked_fill(encoded["attention_mask"] == 0, IGNORE_INDEX)
    return encoded["input_ids"], labels


def generate_captions(model: Any, processor: Any, pixels: torch.Tensor, max_new_tokens: int,
                      batch_size: int = 64) -> list[str]:
    texts: list[str] = []
    model.eval()
    with torch.inference_mode():
        for start in range(0, len(pixels), batch_size):
            output = model.generate(pixel_values=pixels[start:start + batch_size], max_new_tokens=max_new_tokens,
                                    do_sample=False)
            texts += [" ".join(text.split()) for text in processor.batch_decode(output, skip_special_tokens=True)]
    return texts


def _settings(benchmark_dir: Path, seed: int, config: CaptionerTrainConfig) -> dict[str, Any]:
    return {"benchmark": str(benchmark_dir.resolve()), "seed": seed, "config": asdict(config)}


def _finished(output: Path, settings: dict[str, Any]) -> bool:
    try:
        return json.loads((output / DONE_FILE).read_text(encoding="utf-8"))["settings"] == settings
    except (OSError, ValueError, KeyError):
        return False


def train_tiny_captioner(benchmark_dir: Path, output: Path, *, seed: int = 0, log: Callable[[str], None] = print,
                         config: CaptionerTrainConfig | None = None) -> Path:
    """Train a tiny BLIP captioner on `benchmark_dir` (upstream layout with `knowledge.jsonl` captions),
    keep the best dev epoch, save it to `output` and return `output`."""
    benchmark_dir, output, config = Path(benchmark_dir), Path(output), config or CaptionerTrainConfig()
    settings = _settings(benchmark_dir, seed, config)
    if _finished(output, settings):
        log(f"captioner already trained in {output} (same settings): kept")
        return output
    captions = CaptionsFile(benchmark_dir / "knowledge.jsonl").captions
    train_ids = {post.id for post in load_split(str(benchmark_dir), "train")}
    model, processor = build_tiny_captioner(caption_words(captions[i] for i in sorted(train_ids) if i in captions),
                                            config.spec, seed=seed)
    train = _load_split(benchmark_dir, "train", captions, processor)
    dev = _load_split(benchmark_dir, "dev", captions, processor)
    input_ids, labels = _targets(processor, train.captions, config.spec.max_text_length)
    log(f"captioner: {sum(p.numel() for p in model.parameters()):,} parameters, {len(train.ids)} train / "
        f"{len(dev.ids)} dev images, vocabulary {len(processor.tokenizer.get_vocab())}")
    best, best_state = _fit(model, processor, train.pixels, input_ids, labels, dev, config, seed, log)
    model.load_state_dict(best_state)
    save_tiny_captioner(model.eval(), processor, output)
    (output / DONE_FILE).write_text(json.dumps({"settings": settings, "dev": asdict(best[1]), "epoch": best[0]},
                                               indent=2), encoding="utf-8")
    log(f"captioner saved to {output}: dev epoch {best[0]}, exact match {best[1].exact_match:.3f}, "
        f"word accuracy {best[1].word_accuracy:.3f}")
    return output


def _fit(model: Any, processor: Any, pixels: torch.Tensor, input_ids: torch.Tensor, labels: torch.Tensor,
         dev: _Split, config: CaptionerTrainConfig, seed: int, log: Callable[[str], None],
         ) -> tuple[tuple[int, CaptionScores], dict[str, torch.Tensor]]:
    """AdamW with a linear decay; the state of the epoch with the best dev word accuracy."""
    generator = torch.Generator().manual_seed(seed)
    optimiser = torch.optim.AdamW(model.parameters(), lr=config.lr, weight_decay=config.weight_decay)
    steps_per_epoch = -(-len(pixels) // config.batch_size)
    schedule = torch.optim.lr_scheduler.LambdaLR(
        optimiser, lambda step: max(0.0, 1 - step / (config.epochs * steps_per_epoch)))
    best: tuple[int, CaptionScores] = (0, CaptionScores(-1.0, -1.0))
    best_state: dict[str, torch.Tensor] = {}
    for epoch in range(1, config.epochs + 1):
        model.train()
        total = 0.0
        for batch in torch.randperm(len(pixels), generator=generator).split(config.batch_size):
            loss = model(pixel_values=pixels[batch], input_ids=input_ids[batch], labels=labels[batch]).loss
            loss.backward()
            torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
            optimiser.step()
            schedule.step()
            optimiser.zero_grad(set_to_none=True)
            total += loss.item() * len(batch)
        if epoch % config.eval_every and epoch != config.epochs:
            continue
        scores = caption_scores(generate_captions(model, processor, dev.pixels, config.max_new_tokens), dev.captions)
        log(f"epoch {epoch}: loss {total / len(pixels):.3f}, dev exact match {scores.exact_match:.3f}, "
            f"word accuracy {scores.word_accuracy:.3f}")
        if scores.word_accuracy > best[1].word_accuracy:
            best, best_state = (epoch, scores), copy.deepcopy(model.state_dict())
    return best, best_state
