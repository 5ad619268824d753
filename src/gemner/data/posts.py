"""Turn CoNLL records and box annotations into `Post`s with gold `Entity`s.

Label rules (each reported with file and line):

* a tag that is not BIO, or whose label the schema does not know: the post is dropped;
* an `I-x` that does not continue an `x` entity opens a new one (conlleval), reported as repaired;
* FMNERG: a coarse tag that disagrees with the fine tag's parent is replaced by it, reported.

Box rules (reported with the annotation file and post id), following data/README §3:

* an entity is groundable iff its text (tokens joined by one space) equals an object name of its
  post; its gold boxes are all objects with that name;
* a box of zero or negative area is dropped; a box reaching outside the image is clipped to it,
  and dropped if nothing is left. An entity whose every box was dropped becomes ungroundable.
"""

from __future__ import annotations

from collections import defaultdict
from pathlib import Path

from .bio import split_tag, tags_to_spans
from .conll import ConllRecord
from .issues import IssueLog
from .schema import OUTSIDE, LabelSchema
from .types import Box, Entity, Post
from .voc import ImageAnnotation


def _check_tags(record: ConllRecord, column: int, schema: LabelSchema, coarse: bool,
                path: str, log: IssueLog) -> list[str] | None:
    """The column's tags in canonical spelling, or None (post dropped) if one is invalid."""
    tags = []
    for tag, line in zip(record.columns[column], record.token_lines, strict=True):
        try:
            prefix, label = split_tag(tag)
        except ValueError:
            log.report(f"not a BIO tag: {tag!r}", "dropped post", path=path, line=line, post_id=record.id)
            return None
        if label is not None:
            known = label in schema.coarse_labels if coarse else schema.canonical(label)
            if not known:
                kind = "coarse label" if coarse else "label"
                log.report(f"unknown {kind} {label!r} (schema {schema.name})", "dropped post",
                           path=path, line=line, post_id=record.id)
                return None
            label = label if coarse else schema.canonical(label)
        tags.append(OUTSIDE if label is None else f"{prefix}-{label}")
    return tags


def record_to_post(record: ConllRecord, schema: LabelSchema, path: str, log: IssueLog) -> Post | None:
    """A post with unboxed entities, or None when its labels are unusable (reported)."""
    main = len(record.columns) - 1  # the last column holds the main (finest) label
    tags = _check_tags(record, main, schema, coarse=False, path=path, log=log)
    if tags is None:
        return None
    if schema.hierarchical and len(record.columns) > 1:
        coarse_tags = _check_tags(record, 0, schema, coarse=True, path=path, log=log)
        if coarse_tags is None:
            return None
        for tag, coarse_tag, line in zip(tags, coarse_tags, record.token_lines, strict=True):
            prefix, label = split_tag(tag)
            expected = OUTSIDE if label is None else f"{prefix}-{schema.coarse_of[label]}"
            if coarse_tag != expected:
                log.report(f"coarse tag {coarse_tag!r} disagrees with fine tag {tag!r}",
                           f"repaired to {expected!r}", path=path, line=line, post_id=record.id)

    def repaired(index: int, tag: str) -> None:
        log.report(f"{tag!r} does not continue an entity", "repaired: opens a new entity",
                   path=path, line=record.token_lines[index], post_id=record.id)

    entities = [
        Entity(start, end, " ".join(record.tokens[start:end]), label, schema.coarse_of[label])
        for start, end, label in tags_to_spans(tags, on_repair=repaired)
    ]
    return Post(record.id, list(record.tokens), entities)


def valid_box(box: Box, size: tuple[int, int] | None, where: str, post_id: str,
              log: IssueLog) -> Box | None:
    """The box clipped to the image, or None when it has no area (each change reported)."""
    if box.x2 <= box.x1 or box.y2 <= box.y1:
        log.report(f"box {box.to_list()} has zero area", "dropped box", path=where, post_id=post_id)
        return None
    if size is None:
        return box
    width, height = size
    clipped = Box(max(0.0, box.x1), max(0.0, box.y1), min(float(width), box.x2), min(float(height), box.y2))
    if clipped == box:
        return box
    if clipped.x2 <= clipped.x1 or clipped.y2 <= clipped.y1:
        log.report(f"box {box.to_list()} lies outside the {width}x{height} image", "dropped box",
                   path=where, post_id=post_id)
        return None
    log.report(f"box {box.to_list()} reaches outside the {width}x{height} image",
               f"clipped to {clipped.to_list()}", path=where, post_id=post_id)
    return clipped


def attach_boxes(post: Post, annotation: ImageAnnotation | None, log: IssueLog) -> Post:
    """Join boxes to entities by name string; set the post's image size when the annotation has one."""
    if annotation is None:
        return post
    post.image_size = annotation.size
    by_name: dict[str, list[Box]] = defaultdict(list)
    for name, box in annotation.objects:
        checked = valid_box(box, annotation.size, annotation.source or "", post.id, log)
        if checked is not None:
            by_name[name].append(checked)
    post.entities = [
        Entity(e.start, e.end, e.text, e.type, e.coarse, tuple(by_name[e.text]) if by_name[e.text] else None)
        for e in post.entities
    ]
    return post


def build_posts(
    records: list[ConllRecord],
    schema: LabelSchema,
    boxes: dict[str, ImageAnnotation],
    path: str,
    log: IssueLog,
    images_dir: str | Path | None = None,
) -> list[Post]:
    posts = []
    images = index_images(images_dir) if images_dir is not None else {}
    for record in records:
        post = record_to_post(record, schema, path, log)
        if post is None:
            continue
        attach_boxes(post, boxes.get(post.id), log)
        post.image = images.get(post.id)
        posts.append(post)
    return posts


IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png", ".webp", ".bmp", ".gif")


def index_images(images_dir: str | Path) -> dict[str, Path]:
    """Map post id -> image file for every image under `images_dir` (subfolders included, so the
    upstream `twitter2015_images/` and `twitter2017_images/` layout works as downloaded)."""
    index: dict[str, Path] = {}
    for path in sorted(Path(images_dir).rglob("*")):
        if path.suffix.lower() in IMAGE_SUFFIXES and path.is_file():
            index.setdefault(path.stem, path)
    return index
