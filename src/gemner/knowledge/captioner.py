"""Image captions for the knowledge prompt (paper: BLIP-2): a captioning model, a file, or none.

Three sources, one interface (`Captioner.caption(posts) -> {post id: caption}`):

* `ModelCaptioner`: any Hugging Face image-to-text / image-text-to-text model (BLIP, BLIP-2, ...),
  by name or local path through `gemner.hub.resolve`, batched;
* `CaptionsFile`: captions a user made elsewhere, JSONL `{"id": ..., "caption": ...}`;
* `NoCaptioner`: every caption empty.

A post without an image gets an empty caption; the run says once how many posts that was.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

from ..data.images import ImageError, load_image
from ..data.issues import DataError, IssueLog

PAPER_CAPTIONER = "Salesforce/blip2-opt-2.7b"


@dataclass(frozen=True)
class CaptionInput:
    post_id: str
    image: Path | Any | None  # a file, or an image already loaded by `gemner.data.images.load_image`


class Captioner(Protocol):
    name: str  # identifies the captions in the cache

    def caption(self, posts: Sequence[CaptionInput]) -> dict[str, str]: ...


class NoCaptioner:
    name = "none"

    def caption(self, posts: Sequence[CaptionInput]) -> dict[str, str]:
        return {post.post_id: "" for post in posts}


class CaptionsFile:
    """Captions read from a JSONL file; posts it does not mention get an empty caption."""

    def __init__(self, path: str | Path, log: IssueLog | None = None):
        self.path = Path(path)
        self.name = f"file:{self.path.name}"
        self.log = log or IssueLog()
        self.captions = self._read()

    def _read(self) -> dict[str, str]:
        if not self.path.is_file():
            raise FileNotFoundError(f"captions file not found: {self.path}")
        captions: dict[str, str] = {}
        with self.path.open(encoding="utf-8") as handle:
            for line_no, line in enumerate(handle, 1):
                if not line.strip():
                    continue
                try:
                    row = json.loads(line)
                    post_id, caption = str(row["id"]), row["caption"]
                    if not isinstance(caption, str):
                        raise TypeError("caption is not a string")
                except (json.JSONDecodeError, KeyError, TypeError) as err:
                    self.log.report(f"bad caption line ({err})", "skipped line", path=self.path, line=line_no)
                    continue
                captions[post_id] = caption.strip()
        return captions

    def caption(self, posts: Sequence[CaptionInput]) -> dict[str, str]:
        return {post.post_id: self.captions.get(post.post_id, "") for post in posts}


class ModelCaptioner:
    """Batched captions from an HF captioning model; unreadable images get "" and are reported."""

    def __init__(self, model: str, *, batch_size: int = 8, max_new_tokens: int = 30, prompt: str | None = None,
                 log: IssueLog | None = None, loaded: tuple[Any, Any] | None = None,
                 trust_remote_code: bool = False):
        self.name = model
        self.batch_size = max(1, batch_size)
        self.max_new_tokens = max_new_tokens
        self.prompt = prompt  # some captioners (BLIP-2 chat variants) want a text prompt; BLIP wants none
        self.log = log or IssueLog()
        self.processor, self.model = loaded if loaded is not None else _load(model, trust_remote_code)

    def caption(self, posts: Sequence[CaptionInput], on_batch: Callable[[dict[str, str]], None] | None = None,
                ) -> dict[str, str]:
        captions = {post.post_id: "" for post in posts if post.image is None}
        with_image = [post for post in posts if post.image is not None]
        for start in range(0, len(with_image), self.batch_size):
            batch = self._open(with_image[start:start + self.batch_size], captions)
            if batch:
                texts = self._generate([image for _, image in batch])
                done = dict(zip((post.post_id for post, _ in batch), texts, strict=True))
                captions.update(done)
                if on_batch is not None:
                    on_batch(done)
        return captions

    def _open(self, posts: Sequence[CaptionInput], captions: dict[str, str]) -> list[tuple[CaptionInput, Any]]:
        opened = []
        for post in posts:
            if hasattr(post.image, "size"):  # already loaded
                opened.append((post, post.image))
                continue
            try:
                opened.append((post, load_image(post.image)))  # type: ignore[arg-type]
            except ImageError as err:
                self.log.report(str(err), "empty caption", path=post.image, post_id=post.post_id)
                captions[post.post_id] = ""
        return opened

    def _generate(self, images: list[Any]) -> list[str]:
        import torch

        kwargs: dict[str, Any] = {"images": images, "return_tensors": "pt"}
        if self.prompt:
            kwargs["text"] = [self.prompt] * len(images)
        inputs = self.processor(**kwargs)
        with torch.inference_mode():
            output = self.model.generate(**inputs, max_new_tokens=self.max_new_tokens, do_sample=False)
        if self.prompt and "input_ids" in inputs and not self.model.config.is_encoder_decoder:
            output = output[:, inputs["input_ids"].shape[1]:]  # decoder-only models echo the prompt
        texts = self.processor.batch_decode(output, skip_special_tokens=True)
        return [" ".join(text.split()) for text in texts]


def _load(name: str, trust_remote_code: bool) -> tuple[Any, Any]:
    from transformers import AutoModelForImageTextToText, AutoProcessor

    from ..hub import resolve

    pretrained = resolve(name, trust_remote_code=trust_remote_code)
    processor = pretrained.load(AutoProcessor)
    model = pretrained.load(AutoModelForImageTextToText).eval()
    return processor, model


def describe_missing_images(n_missing: int, n_total: int) -> str | None:
    """The one line a run prints about posts whose caption is empty for lack of an image."""
    if n_missing == 0:
        return None
    if n_missing == n_total:
        return (f"no images: all {n_total} captions are empty (the prompt keeps the caption slot, "
                "empty); pass --images or --captions to caption them")
    return f"{n_missing} of {n_total} posts have no image: their captions are empty"


def check_caption_source(captioner: str | None, captions_file: str | None) -> None:
    if captioner and captions_file:
        raise DataError("give either --captioner or --captions, not both")
