"""A tiny BLIP captioner trained from scratch on a synthetic benchmark names the emblem shape of held-out
images, and the folder it writes is an ordinary captioner (ModelCaptioner, the knowledge stage's cache)."""

from __future__ import annotations

import json

import pytest

from gemner.data.drawing import SHAPES
from gemner.data.folders import load_split
from gemner.data.synthetic import EMBLEM_SHAPES, write_synthetic_benchmark
from gemner.knowledge.captioner import CaptionInput, ModelCaptioner
from gemner.knowledge.captioner_train import DONE_FILE, caption_scores, train_tiny_captioner


def shapes(caption: str) -> list[str]:
    return [word for word in caption.lower().split() if word in SHAPES]


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    bench = tmp_path_factory.mktemp("bench")
    write_synthetic_benchmark(bench, posts=400, seed=3)
    lines: list[str] = []
    folder = train_tiny_captioner(bench, tmp_path_factory.mktemp("captioner") / "out", seed=0, log=lines.append)
    return bench, folder, lines


def test_trained_captioner_names_the_emblem_shape_of_held_out_images(trained):
    bench, folder, lines = trained
    reference = {row["id"]: row["caption"] for row in map(json.loads, (bench / "knowledge.jsonl").open())}
    posts = load_split(str(bench), "test").posts
    captions = ModelCaptioner(str(folder)).caption([CaptionInput(post.id, post.image) for post in posts])
    with_emblem = [post.id for post in posts if shapes(reference[post.id])]
    assert len(with_emblem) >= 10
    right = sum(shapes(captions[i]) == shapes(reference[i]) for i in with_emblem)
    # four shapes: chance is about 1/4; the captioner trained for seconds on 280 images names most of them,
    # and nearly always one of the right coarse type's shapes (what a look-alike's caption route needs)
    assert right / len(with_emblem) >= 0.5, [(reference[i], captions[i]) for i in with_emblem]
    family = {shape: coarse for coarse, shapes_of in EMBLEM_SHAPES.items() for shape in shapes_of}
    same_family = sum([family[s] for s in shapes(captions[i])] == [family[s] for s in shapes(reference[i])]
                      for i in with_emblem)
    assert same_family / len(with_emblem) >= 0.8
    # the empty images are said to be empty and no shape is invented for a logo-only image
    plain = [post.id for post in posts if not shapes(reference[post.id])]
    assert sum(not shapes(captions[i]) for i in plain) / len(plain) >= 0.8
    summary = json.loads((folder / DONE_FILE).read_text())
    assert summary["dev"]["word_accuracy"] > 0.5 and any("captioner saved" in line for line in lines)


def test_finished_training_is_kept_and_knowledge_stage_captions_with_it(trained, tmp_path):
    from gemner.knowledge.builder import caption_posts
    from gemner.knowledge.cache import KnowledgeCache
    from gemner.knowledge.job import SourcePost

    bench, folder, _ = trained
    before = (folder / "model.safetensors").stat().st_mtime_ns
    lines: list[str] = []
    assert train_tiny_captioner(bench, folder, seed=0, log=lines.append) == folder
    assert lines == [f"captioner already trained in {folder} (same settings): kept"]
    assert (folder / "model.safetensors").stat().st_mtime_ns == before
    posts = [SourcePost(post.id, "t", " ".join(post.tokens), post.image)
             for post in load_split(str(bench), "dev").posts[:4]]
    with KnowledgeCache(tmp_path / "cache.sqlite") as cache:
        captions = caption_posts(posts, str(folder), None, cache, batch_size=2)
    assert set(captions) == {post.post_id for post in posts} and all(captions.values())
    direct = ModelCaptioner(str(folder)).caption([CaptionInput(post.post_id, post.image) for post in posts])
    assert captions == direct


def test_caption_scores():
    scores = caption_scores(["a large red circle", "a zeta logo", ""], ["a large red square", "a zeta logo", "a x"])
    assert scores.exact_match == pytest.approx(1 / 3)
    assert scores.word_accuracy == pytest.approx((3 + 3 + 0) / (4 + 3 + 2))


def test_caption_vocabulary_covers_every_reference_caption(trained):
    from gemner.data.synthetic import caption_vocabulary
    from gemner.knowledge.tiny_captioner import caption_words

    bench, _, _ = trained
    captions = [row["caption"] for row in map(json.loads, (bench / "knowledge.jsonl").open())]
    assert set(caption_words(captions)) <= set(caption_vocabulary())
    assert {"square", "logo", "picture"} <= set(caption_words(captions))
