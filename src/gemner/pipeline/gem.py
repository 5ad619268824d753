"""`GEM`: the whole method behind one object, from a post (text + image) to typed triples.

    from gemner import GEM
    gem = GEM.from_pretrained("lite")            # a preset, a YAML file or a folder with gemner.yaml
    triples = gem.predict("Ted Cruz speaks in #Texas", image="post.jpg")
    for result in gem.predict_batch(posts):       # streams, batch by batch
        ...
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator, Sequence
from pathlib import Path
from typing import Any

from ..data.images import ImageError, load_image
from ..data.issues import IssueLog
from ..data.tokenize import tokenize_tweet
from ..data.types import Post, PredictedEntity
from .config import PipelineConfig, load_config, with_changes
from .stages import GroundRunner, KnowledgeRunner, PostResult, RecognizerRunner, RerankRunner

Triple = PredictedEntity  # (entity span and text, type, box-or-None) with its evidence in `scores`


class GEM:
    def __init__(self, config: PipelineConfig, notify: Callable[[str], None] | None = None, *,
                 trust_remote_code: bool = False):
        self.config = config
        self.notify = _once(notify or (lambda message: None))
        self.log = IssueLog()
        remote = {"trust_remote_code": trust_remote_code}  # the caller's choice; never the config file's
        self.knowledge = KnowledgeRunner(config.knowledge, self.notify, **remote)
        self.recognizer = RecognizerRunner(config.recognizer, **remote)
        self.reranker = RerankRunner(config.rerank, self.recognizer.schema, self.notify, **remote)
        self.grounder = GroundRunner(config.ground, self.notify, **remote)

    @classmethod
    def from_pretrained(cls, name_or_path: str | Path = "lite", changes: dict[str, Any] | None = None,
                        notify: Callable[[str], None] | None = None, *, trust_remote_code: bool = False) -> GEM:
        """Load a pipeline: preset name (`lite`, `paper`), YAML file, or folder with `gemner.yaml`.
        `changes` edits the configuration, e.g. `{"rerank": {"enabled": False}}`. `trust_remote_code`
        lets the models' own Python code run; only pass True when you mean it."""
        config = load_config(name_or_path)
        return cls(with_changes(config, changes) if changes else config, notify, trust_remote_code=trust_remote_code)

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

    def predict(self, text: str | Sequence[str], image: str | Path | None = None, post_id: str = "post"
                ) -> list[Triple]:
        """Triples of one post. `text` is raw (tokenised like the benchmark tweets) or a token list."""
        tokens = tokenize_tweet(text) if isinstance(text, str) else list(text)
        result = next(self.predict_batch([Post(post_id, tokens, image=Path(image) if image else None)]))
        if result.error:
            raise ValueError(f"post {post_id}: {result.error}")
        return result.entities

    def predict_batch(self, posts: Iterable[Post], batch_size: int = 16, keep_heatmaps: bool = False
                      ) -> Iterator[PostResult]:
        """Stream results, `batch_size` posts at a time, in input order. A post that fails gets its
        `error` and the others go on."""
        chunk: list[Post] = []
        for post in posts:
            chunk.append(post)
            if len(chunk) == batch_size:
                yield from self._run(chunk, keep_heatmaps)
                chunk = []
        if chunk:
            yield from self._run(chunk, keep_heatmaps)

    def _load_images(self, posts: list[Post], visualize: bool) -> tuple[dict[str, Any], dict[str, str]]:
        """Each post's image decoded once, within the limits of `gemner.data.images`, for the stages
        that use it (captioner, vision reranker, grounder, pictures); (images, errors) by post id."""
        wanted = visualize or self.grounder.grounder is not None or self.reranker.wants_images \
            or self.knowledge.wants_images
        images: dict[str, Any] = {}
        errors: dict[str, str] = {}
        for post in posts:
            if not wanted or post.image is None:
                continue
            try:
                images[post.id] = load_image(post.image)
            except ImageError as err:
                errors[post.id] = f"{err}; the image is not used"
        return images, errors

    def _run(self, posts: list[Post], keep_heatmaps: bool) -> list[PostResult]:
        images, image_errors = self._load_images(posts, keep_heatmaps)
        knowledge, captions = self.knowledge.knowledge(posts, images)
        stages = self.stages()  # after the knowledge stage: loading its LLM may have failed
        results = []
        for post, entities in self.recognizer.recognise(posts, knowledge, self.log):
            if isinstance(entities, str):
                results.append(PostResult(post, [], error=entities, stages=self._stages_of(post.id, stages)))
                continue
            image = images.get(post.id)
            try:
                entities = self.reranker.rerank(post, entities, captions.get(post.id, ""), image, self.log)
            except Exception as err:  # one post's failure must not stop the others
                results.append(PostResult(post, entities, error=f"rerank failed: {type(err).__name__}: {err}",
                                          stages=self._stages_of(post.id, stages)))
                continue
            results.append(PostResult(post, entities, error=image_errors.get(post.id),
                                      stages=self._stages_of(post.id, stages), image=image))
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
