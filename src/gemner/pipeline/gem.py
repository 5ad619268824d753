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
        self.notify = notify or (lambda message: None)
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
