"""`GEM`: the whole method behind one object, from a post (text + image) to typed triples.

    from gemner import GEM
    gem = GEM.from_pretrained("lite")            # a preset, a YAML file or a folder with gemner.yaml
    result = gem("RT @Ted_Cruz: speaking in #Texas", image="post.jpg")
    for entity in result.entities:               # text == raw[start_char:end_char]
        print(entity.text, entity.start_char, entity.end_char, entity.type, entity.score)
    for result in gem.pipe(texts, batch_size=16): # strings, dicts or Posts; streams, in input order
        ...

docs/api.md describes the inputs, the output fields and the devices.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator, Sequence
from pathlib import Path
from typing import Any

from ..data.images import ImageError, load_image
from ..data.issues import IssueLog
from ..data.types import Post, PredictedEntity
from .config import PipelineConfig, load_config, resolve_devices, with_changes, with_device
from .inputs import PostInput, to_input
from .stages import GroundRunner, KnowledgeRunner, PostResult, RecognizerRunner, RerankRunner

Triple = PredictedEntity  # (entity span and text, type, box-or-None) with its evidence in `scores`


class GEM:
    def __init__(self, config: PipelineConfig, notify: Callable[[str], None] | None = None, *,
                 trust_remote_code: bool = False):
        self.config = config = resolve_devices(config)  # a device this machine lacks: DeviceError, before loading
        self.notify = _once(notify or (lambda message: None))
        self.log = IssueLog()
        self._given_images: dict[str, Any] = {}  # post id -> image given in memory, until its batch loads it
        remote = {"trust_remote_code": trust_remote_code}  # the caller's choice; never the config file's
        self.knowledge = KnowledgeRunner(config.knowledge, self.notify, **remote)
        self.recognizer = RecognizerRunner(config.recognizer, **remote)
        self.reranker = RerankRunner(config.rerank, self.recognizer.schema, self.notify, **remote)
        self.grounder = GroundRunner(config.ground, self.notify, **remote)

    @classmethod
    def from_pretrained(cls, name_or_path: str | Path = "lite", changes: dict[str, Any] | None = None,
                        notify: Callable[[str], None] | None = None, *, device: str | None = "auto",
                        trust_remote_code: bool = False) -> GEM:
        """Load a pipeline: preset name (`lite`, `paper`), YAML file, or folder with `gemner.yaml`.
        `changes` edits the configuration, e.g. `{"rerank": {"enabled": False}}`. `device`: `cpu`,
        `cuda` or `cuda:N` puts every stage there; `auto` keeps each stage's configured device, whose
        own `auto` (the presets' setting) is CUDA when torch sees a GPU, else the CPU. A CUDA device
        that torch cannot use raises `gemner.devices.DeviceError`. `trust_remote_code` lets the
        models' own Python code run; only pass True when you mean it."""
        config = load_config(name_or_path)
        config = with_device(with_changes(config, changes) if changes else config, device)
        return cls(config, notify, trust_remote_code=trust_remote_code)

    @property
    def schema(self):
        return self.recognizer.schema

    def stages(self) -> dict[str, str]:
        return {"knowledge": str(self.knowledge.state), "recognizer": "on", "rerank": str(self.reranker.state),
                "ground": str(self.grounder.state)}

    def stage_summary(self) -> str:
        """One short line of the stages' states (`knowledge off; recognizer on; ...; ground unavailable`).
        Why a stage is unavailable is said once, in its note, not again here."""
        return (f"knowledge {self.knowledge.state.state}; recognizer on; rerank {self.reranker.state.state}; "
                f"ground {self.grounder.state.state}")

    def _stages_of(self, post_id: str, stages: dict[str, str]) -> dict[str, str]:
        return {**stages, "knowledge": self.knowledge.post_state(post_id)}

    def __call__(self, post: Any, image: Any = None, *, keep_heatmaps: bool = False) -> PostResult:
        """The result of one post: a raw string, a dict `{"id"?, "text" | "tokens", "image"?}` or a
        `Post`; `image` a path, bytes or a PIL image. A post that fails has `error` set."""
        return next(self._results([(to_input(post, 0, image), None)], 1, keep_heatmaps))[0]

    def pipe(self, posts: Iterable[Any], batch_size: int = 16, *, as_tuples: bool = False,
             keep_heatmaps: bool = False) -> Iterator[Any]:
        """Stream a `PostResult` per post, `batch_size` posts at a time, in input order (like spaCy's
        `nlp.pipe`). Each item is what `GEM(...)` takes; a string or a dict without an id gets its
        position as id. With `as_tuples`, items are `(post, context)` and `(result, context)` come out.
        An item that is no post, repeats an id, or fails gets its `error`; the others go on."""
        inputs = self._inputs(posts, as_tuples)
        for result, context in self._results(inputs, batch_size, keep_heatmaps):
            yield (result, context) if as_tuples else result

    def predict(self, text: str | Sequence[str], image: Any = None, post_id: str = "post") -> list[Triple]:
        """Triples of one post, raising ValueError if it fails. `text` is raw (tokenised like the
        benchmark tweets, offsets into it kept) or a token list."""
        post = Post.from_text(post_id, text) if isinstance(text, str) else Post(post_id, list(text))
        result = self(post, image)
        if result.error:
            raise ValueError(f"post {post_id}: {result.error}")
        return result.entities

    def predict_batch(self, posts: Iterable[Any], batch_size: int = 16, keep_heatmaps: bool = False
                      ) -> Iterator[PostResult]:
        """`pipe` under its older name."""
        return self.pipe(posts, batch_size, keep_heatmaps=keep_heatmaps)

    def _inputs(self, items: Iterable[Any], as_tuples: bool) -> Iterator[tuple[PostInput, Any]]:
        seen: set[str] = set()
        for position, entry in enumerate(items):
            item, context = entry if as_tuples else (entry, None)
            given = to_input(item, position)
            if given.error is None and given.post.id in seen:  # results, images and knowledge go by id
                given.error = f"duplicate id {given.post.id!r} in the same stream; give each post its own id"
            seen.add(given.post.id)
            yield given, context

    def _results(self, inputs: Iterable[tuple[PostInput, Any]], batch_size: int, keep_heatmaps: bool
                 ) -> Iterator[tuple[PostResult, Any]]:
        chunk: list[tuple[PostInput, Any]] = []
        for entry in inputs:
            chunk.append(entry)
            if len(chunk) == batch_size:
                yield from self._run_inputs(chunk, keep_heatmaps)
                chunk = []
        if chunk:
            yield from self._run_inputs(chunk, keep_heatmaps)

    def _run_inputs(self, chunk: list[tuple[PostInput, Any]], keep_heatmaps: bool) -> Iterator[tuple[PostResult, Any]]:
        """Run the chunk's posts; results come back in input order, each entity located in its post's
        raw text (`Post.locate`: `start_char`, `end_char`, and `text` their slice)."""
        runnable = [given for given, _ in chunk if given.error is None]
        self._given_images.update({given.post.id: given.image for given in runnable if given.image is not None})
        try:
            results = iter(self._run([given.post for given in runnable], keep_heatmaps) if runnable else [])
        finally:
            self._given_images.clear()
        for given, context in chunk:
            if given.error is not None:
                yield PostResult(given.post, [], error=given.error), context
                continue
            result = next(results)
            result.entities = [result.post.locate(entity) for entity in result.entities]
            yield result, context

    def _load_images(self, posts: list[Post], visualize: bool) -> tuple[dict[str, Any], dict[str, str]]:
        """Each post's image decoded once, within the limits of `gemner.data.images`, for the stages
        that use it (captioner, vision reranker, grounder, pictures); (images, errors) by post id."""
        wanted = visualize or self.grounder.grounder is not None or self.reranker.wants_images \
            or self.knowledge.wants_images
        images: dict[str, Any] = {}
        errors: dict[str, str] = {}
        for post in posts:
            source = self._given_images.get(post.id, post.image)
            if not wanted or source is None:
                continue
            try:
                images[post.id] = load_image(source)
            except ImageError as err:
                errors[post.id] = f"{err}; the image is not used"
        return images, errors

    def _run(self, posts: list[Post], keep_heatmaps: bool) -> list[PostResult]:
        images, image_errors = self._load_images(posts, keep_heatmaps)
        knowledge, captions = self.knowledge.knowledge(posts, images)
        stages = self.stages()  # after the knowledge stage: loading its LLM may have failed
        recognised = [(post, entities, captions.get(post.id, ""), images.get(post.id))
                      for post, entities in self.recognizer.recognise(posts, knowledge, self.log)]
        ok = [row for row, item in enumerate(recognised) if not isinstance(item[1], str)]
        try:  # the hard entities of the whole batch in one go
            reranked = dict(zip(ok, self.reranker.rerank_many([recognised[row] for row in ok], self.log),
                                strict=True))
        except Exception:  # redo post by post below: one post's failure must not stop the others
            reranked = {}
        results = []
        for row, (post, entities, caption, image) in enumerate(recognised):
            error = entities if isinstance(entities, str) else None
            if error is None and row not in reranked:
                try:
                    entities = self.reranker.rerank(post, entities, caption, image, self.log)
                except Exception as err:
                    error = f"rerank failed: {type(err).__name__}: {err}"
            entities = [] if isinstance(entities, str) else reranked.get(row, entities)
            results.append(PostResult(post, entities, error=error or image_errors.get(post.id),
                                      stages=self._stages_of(post.id, stages), image=None if error else image))
        self.grounder.ground(results, keep_heatmaps)
        return results


def _once(notify: Callable[[str], None]) -> Callable[[str], None]:
    """`notify` that passes each distinct message on only the first time (a stage that fails to load
    says so once per pipeline, however many batches or posts follow)."""
    told: set[str] = set()

    def tell(message: str) -> None:
        if message not in told:
            told.add(message)
            notify(message)

    return tell
