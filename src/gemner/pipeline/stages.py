"""The four stages of GEM behind one small interface, each loaded lazily and reported honestly.

A stage that is switched off says so; a stage whose weights are missing says which and how to get
them (once), and its output is marked as not computed: the recogniser's label stays (no rerank), and
the box stays None with `box_status: "not_computed"` (no grounding), never a silent None box.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

from ..data.issues import DataError, IssueLog
from ..data.types import Post, PredictedEntity
from ..data.userio import prediction_record, read_knowledge
from ..hub import MissingWeightsError, is_available, missing_message
from .config import KnowledgeStage, RecognizerStage, RerankStage

Notify = Callable[[str], None]
RerankItem = tuple[Post, list[PredictedEntity], str, Any]  # a post, its entities, its caption, its image


@dataclass
class StageState:
    """`on`, `off` (switched off) or `unavailable` (with the reason)."""

    state: str = "on"
    detail: str = ""

    def __str__(self) -> str:
        return self.state + (f": {self.detail}" if self.detail else "")


@dataclass
class PostResult:
    post: Post
    entities: list[PredictedEntity]
    error: str | None = None
    stages: dict[str, str] = field(default_factory=dict)
    heatmaps: dict[int, Any] = field(default_factory=dict)  # entity index -> traced map (visualize)
    image: Any = None  # the post's image, loaded once (`gemner.data.images`) for every stage that uses it

    def record(self) -> dict[str, Any]:
        return prediction_record(self.post, self.entities, self.error, stages=self.stages)


class KnowledgeRunner:
    """Knowledge text per post: the configured file first, else gazetteer hint + LLM explanation."""

    def __init__(self, config: KnowledgeStage, notify: Notify, *, trust_remote_code: bool = False):
        self.config = config
        self.notify = notify
        self.trust_remote_code = trust_remote_code
        has_source = bool(config.file or config.gazetteer or config.llm)
        self.state = StageState() if config.enabled and has_source else StageState(
            "off", "" if not config.enabled else "no knowledge source configured")
        self.not_run: dict[str, str] = {}  # post id -> why the LLM gave it no explanation (last batch)
        self._file: dict[str, str] | None = None
        self._gazetteer = None
        self._backend = None
        self._captioner = None

    def _file_knowledge(self) -> dict[str, str]:
        if self._file is None:
            self._file = {k: text for k, (text, _) in read_knowledge(self.config.file).items()} \
                if self.config.file else {}
        return self._file

    def _hints(self, posts: Sequence[Post]) -> dict[str, str]:
        if not self.config.gazetteer:
            return {}
        if self._gazetteer is None:
            from ..data import load_dataset
            from ..knowledge.gazetteer import Gazetteer

            self._gazetteer = Gazetteer.fit(load_dataset(self.config.gazetteer, "train").posts)
        return {p.id: self._gazetteer.hint(p.tokens) for p in posts}

    def _explanations(self, posts: Sequence[Post], captions: dict[str, str]) -> dict[str, str]:
        settings = self.config.llm
        if settings is None or self.state.state == "unavailable":
            return {}
        try:
            backend = self._load_backend()
        except MissingWeightsError as err:
            self.state = StageState("unavailable", f"LLM: {err}")
            self.notify(f"knowledge: {err}; continuing with the other knowledge sources")
            return {}
        from ..knowledge.builder import cache_path, explain_posts

        found, missing = explain_posts(cache_path(self.config.cache), backend, posts, captions)
        self.not_run.update(missing)
        return found

    def post_state(self, post_id: str) -> str:
        """The stage's state in one post's record: the run's, or why it did not run for this post."""
        reason = self.not_run.get(post_id)
        return f"not run for this post: {reason}" if reason else str(self.state)

    def _load_backend(self):
        if self._backend is None:
            from ..knowledge.builder import make_backend

            assert self.config.llm is not None
            self._backend = make_backend(self.config.llm, self.notify, trust_remote_code=self.trust_remote_code)
        return self._backend

    def _captions(self, posts: Sequence[Post], images: dict[str, Any]) -> dict[str, str]:
        with_images = [p for p in posts if p.id in images]
        if not self.config.captioner or not with_images or self._captioner is False:
            return {}
        try:
            self._load_captioner()
        except MissingWeightsError as err:
            self._captioner = False
            self.notify(f"knowledge: captioner {err}; captions are empty")
            return {}
        from ..knowledge.captioner import CaptionInput

        return self._captioner.caption([CaptionInput(p.id, images[p.id]) for p in with_images])

    def _load_captioner(self) -> None:
        if self._captioner is None:
            from ..knowledge.captioner import ModelCaptioner

            self._captioner = ModelCaptioner(self.config.captioner, trust_remote_code=self.trust_remote_code)

    @property
    def wants_images(self) -> bool:
        return self.state.state != "off" and bool(self.config.captioner) and self._captioner is not False

    def knowledge(self, posts: Sequence[Post], images: dict[str, Any] | None = None
                  ) -> tuple[dict[str, str], dict[str, str]]:
        """(knowledge text, caption) by post id. The text is the hint, then the explanation, as in
        the files the recogniser is trained on (`gemner knowledge gazetteer --merge`). `images`: the
        posts' loaded images by id (captioned)."""
        self.not_run = {}
        if self.state.state == "off":
            return {}, {}
        known = self._file_knowledge()
        missing = [p for p in posts if p.id not in known]
        captions = self._captions(missing, images or {})
        hints, explanations = self._hints(missing), self._explanations(missing, captions)
        combined = {p.id: " ".join(t for t in (hints.get(p.id, ""), explanations.get(p.id, "")) if t)
                    for p in missing}
        return {**{p.id: known[p.id] for p in posts if p.id in known}, **combined}, captions


class RecognizerRunner:
    def __init__(self, config: RecognizerStage, *, trust_remote_code: bool = False):
        from ..recognize import Recognizer
        from ..recognize.inference import prepare_for_inference

        self.config = config
        self.model = prepare_for_inference(
            Recognizer.from_pretrained(config.model, device=config.device, trust_remote_code=trust_remote_code),
            config.dtype)
        self.schema = self.model.schema

    def recognise(self, posts: Sequence[Post], knowledge: dict[str, str], log: IssueLog
                  ) -> list[tuple[Post, list[PredictedEntity] | str]]:
        from ..recognize.predict import predict_posts

        return list(predict_posts(self.model, posts, knowledge, self.config.batch_size, log))


class RerankRunner:
    """The reranker, checked at start (its files are there) and loaded on the first hard entity."""

    def __init__(self, config: RerankStage, schema, notify: Notify, *, trust_remote_code: bool = False):
        self.config = config
        self.schema = schema
        self.notify = notify
        self.trust_remote_code = trust_remote_code
        self.state = StageState() if config.enabled else StageState("off")
        self.run = None  # a LazyEntityReranker: the EntityReranker is built on first need
        if self.state.state != "on":
            return
        if not config.model:
            self.state = StageState("unavailable", "no reranker model configured (`gemner train reranker`)")
        else:
            from ..rerank import lazy
            from ..rerank.filter import SampleFilter

            try:
                lazy.check(config.model)
                sample_filter = SampleFilter(config.gamma, rerank_all=not config.sample_filter, k=config.k)
                self.run = lazy.LazyEntityReranker(self._load, sample_filter, lazy.model_kind(config.model))
            except (MissingWeightsError, ValueError, OSError) as err:
                self.state = StageState("unavailable", str(err))
        if self.state.state == "unavailable":
            notify(f"rerank: {self.state.detail}; the recogniser's labels are kept")

    def _load(self):
        """The EntityReranker; when the weights fail to load after all, the stage becomes unavailable
        and the labels are kept."""
        from ..rerank.apply import EntityReranker
        from ..rerank.model import Reranker

        assert self.run is not None
        try:
            reranker = Reranker.load(self.config.model, device=self.config.device,
                                     trust_remote_code=self.trust_remote_code)
            return EntityReranker.build(reranker, self.run.sample_filter, self.schema, self.config.mode)
        except (MissingWeightsError, FileNotFoundError, OSError, DataError) as err:
            self.state = StageState("unavailable", str(err))
            self.notify(f"rerank: {err}; the recogniser's labels are kept")
            return _KeepLabels()

    @property
    def wants_images(self) -> bool:
        return self.run is not None and self.run.kind == "vision"

    def rerank(self, post: Post, entities: list[PredictedEntity], caption: str, image: Any, log: IssueLog
               ) -> list[PredictedEntity]:
        if self.run is None or not entities:
            return entities
        from ..rerank.apply import PostContext

        return self.run.rerank_entities(entities, PostContext(post.id, post.tokens, image, caption), log)

    def rerank_many(self, items: Sequence[RerankItem], log: IssueLog) -> list[list[PredictedEntity]]:
        """`rerank` of many posts, their hard entities scored together; raises when any fails (the
        caller then goes post by post, so one bad post never costs the others their labels)."""
        if self.run is None:
            return [entities for _, entities, _, _ in items]
        from ..rerank.apply import PostContext

        return self.run.rerank_posts([(entities, PostContext(post.id, post.tokens, image, caption))
                                      for post, entities, caption, image in items], log)


class _KeepLabels:
    """Stands in for a reranker that failed to load: every entity keeps the recogniser's label."""

    def rerank_entities(self, entities, post, log) -> list[PredictedEntity]:
        return list(entities)

    def rerank_posts(self, posts, log) -> list[list[PredictedEntity]]:
        return [list(entities) for entities, _ in posts]


def _grounder_models(config) -> list[str]:
    """The model names the grounder will load (the SAM checkpoint only with the `sam` segmenter)."""
    return [config.itm_model, *([config.sam_model] if config.segmenter == "sam" else [])]


class _LazyGrounder:
    """A `Grounder` loaded on first use."""

    def __init__(self, load: Callable[[], Any]) -> None:
        self._load = load
        self.loaded: Any = None

    def load(self) -> Any:
        if self.loaded is None:
            self.loaded = self._load()
        return self.loaded

    def ground(self, *args: Any, **kwargs: Any) -> Any:
        return self.load().ground(*args, **kwargs)


class GroundRunner:
    """The grounder, checked at start (its weights are there) and loaded for the first post with an image."""

    def __init__(self, config, notify: Notify, *, trust_remote_code: bool = False):
        self.config = config
        self.notify = notify
        self.trust_remote_code = trust_remote_code
        self.state = StageState() if config.enabled else StageState("off")
        self.grounder = None  # a _LazyGrounder while the stage is on
        if self.state.state != "on":
            return
        missing = [name for name in _grounder_models(config) if not is_available(name)]
        if missing:
            self._unavailable(missing_message(missing[0]))
        else:
            self.grounder = _LazyGrounder(self._load)

    def _load(self):
        from ..ground.grounder import Grounder

        return Grounder.from_config(self.config, trust_remote_code=self.trust_remote_code)  # a GrounderConfig

    def _unavailable(self, reason: str) -> None:
        self.state = StageState("unavailable", reason)
        self.grounder = None
        self.notify(f"ground: {reason.rstrip('.')}; boxes are marked not computed")

    def ground(self, results: Sequence[PostResult], keep_heatmaps: bool) -> None:
        """Fill in box, box_status, scores.itm and scores.peak for the posts whose image is loaded."""
        if self.grounder is None:
            return
        from ..ground.batch import apply_grounding
        from ..ground.grounder import Query

        batch = []
        for result in results:
            if result.error or not result.entities:
                continue
            if result.image is None:
                result.stages["ground"] = "not computed: the post has no image"
                continue
            batch.append(result)
        if not batch:
            return
        try:
            self.grounder.load()
        except (MissingWeightsError, FileNotFoundError, OSError, ValueError) as err:
            self._unavailable(str(err))
            for result in batch:
                result.stages["ground"] = str(self.state)
            return
        category = self.config.category_field
        queries = [[Query(e.text, getattr(e, category)) for e in r.entities] for r in batch]
        groundings = self.grounder.ground([r.image for r in batch], queries, keep_heatmaps=keep_heatmaps)
        for result, found in zip(batch, groundings, strict=True):
            for index, (entity, grounding) in enumerate(zip(result.entities, found, strict=True)):
                apply_grounding(entity, grounding, result.image)
                if keep_heatmaps and grounding.heatmap is not None:
                    result.heatmaps[index] = grounding.heatmap.float().cpu().numpy()
