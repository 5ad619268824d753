"""Label Studio JSON export -> annotated posts (training data).

Reads the JSON export (a list of tasks; the JSON-MIN export too). Per task: the text is `data.text`,
the post id `data.post_id` (written by `gemner export --to label-studio`), else the task's `id`; the
image `data.image`; the tokens `data.tokens` when they tile the text, else `tokenize_tweet(text)`; each
label's coarse label from `data.coarse_of` (else the label itself). The annotation used is the one
marked ground truth, else the last one not cancelled; with `use_predictions`, a task without one falls
back on its first prediction. Every problem is reported with the file and task number, and the rest goes on:

* a `labels` span whose `start`/`end` do not select its `text` (Label Studio versions that counted
  emoji as two characters) is moved to the nearest place where that text is, or left out;
* spans become whole tokens; a span that cuts a token is widened to it;
* a `rectanglelabels` box (percent of `original_width` x `original_height`, else of the image file's
  size) belongs to the span linked to it by a `relation`, else to the one span of the same label; a
  box that belongs to no single span is left out.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from ..images import ImageError, check_image
from ..issues import DataError, IssueLog
from ..tokenize import tokenize_tweet
from .conll_out import non_overlapping
from .spans import token_offsets, tokens_in_chars


def read_tasks(path: str | Path) -> list[Any]:
    path = Path(path)
    if not path.is_file():
        raise DataError(f"{path}: no such file")
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (UnicodeDecodeError, ValueError, RecursionError) as err:
        raise DataError(f"{path}: not a Label Studio JSON export ({err})") from None
    tasks = data if isinstance(data, list) else [data]
    return tasks


def from_min_json(task: Mapping[str, Any]) -> dict[str, Any]:
    """A task of Label Studio's JSON-MIN export (`{"id", "text", "label": [{"start", "end", "text",
    "labels"}], ...}`) in the full export's shape."""
    spans = task.get("label") if isinstance(task.get("label"), list) else []
    result = [{"id": f"s{i}", "type": "labels", "value": span}
              for i, span in enumerate(spans) if isinstance(span, dict)]
    data = {k: v for k, v in task.items() if k != "label"}
    return {"id": task.get("id"), "data": data, "annotations": [{"result": result}]}


def chosen_result(task: Mapping[str, Any], use_predictions: bool) -> list[Any] | None:
    annotations = [a for a in task.get("annotations") or [] if isinstance(a, dict) and not a.get("was_cancelled")]
    chosen = next((a for a in annotations if a.get("ground_truth")), annotations[-1] if annotations else None)
    if chosen is None and use_predictions:
        chosen = next((p for p in task.get("predictions") or [] if isinstance(p, dict)), None)
    result = chosen.get("result") if chosen is not None else None
    return result if isinstance(result, list) else None


def _number(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)


def span_chars(value: Mapping[str, Any], text: str) -> tuple[int, int] | None:
    """The span's characters in `text`, repaired from its `text` when the offsets miss it; else None."""
    start, end, quoted = value.get("start"), value.get("end"), value.get("text")
    if not (isinstance(start, int) and isinstance(end, int) and 0 <= start < end <= len(text)):
        start = end = None
    if not isinstance(quoted, str) or not quoted:
        return (start, end) if start is not None else None
    if start is not None and text[start:end] == quoted:
        return start, end
    found = [i for i in range(len(text)) if text.startswith(quoted, i)]
    if not found:
        return None
    best = min(found, key=lambda i: abs(i - (start or 0)))
    return best, best + len(quoted)


def pixel_box(result: Mapping[str, Any], image: str | None) -> list[float] | str:
    """[x1, y1, x2, y2] in pixels of a `rectanglelabels` result, or why there is none."""
    value = result.get("value") or {}
    if not all(_number(value.get(k)) for k in ("x", "y", "width", "height")):
        return "box without numeric x, y, width, height"
    width, height = result.get("original_width"), result.get("original_height")
    if not (_number(width) and _number(height) and width > 0 and height > 0):
        try:
            width, height = check_image(image) if image else (None, None)
        except ImageError:
            width = height = None
        if width is None:
            return "box without original_width/original_height and no readable image"
    x, y = value["x"] * width / 100, value["y"] * height / 100
    box = [x, y, x + value["width"] * width / 100, y + value["height"] * height / 100]
    return box if box[0] < box[2] and box[1] < box[3] else f"box {box} has no area"


def _label(value: Mapping[str, Any], key: str) -> str | None:
    labels = value.get(key)
    return labels[0] if isinstance(labels, list) and labels and isinstance(labels[0], str) else None


def task_tokens(data: Mapping[str, Any], text: str) -> tuple[list[str], list[tuple[int, int]]]:
    """The task's own `tokens` when they tile its text, else `tokenize_tweet(text)`; with their offsets."""
    tokens = data.get("tokens")
    if isinstance(tokens, list) and tokens and all(isinstance(t, str) and t.strip() for t in tokens):
        offsets = token_offsets(tokens, text)
        if offsets is not None:
            return list(tokens), offsets
    tokens = tokenize_tweet(text)
    return tokens, token_offsets(tokens, text) or []


def task_record(task: Any, number: int, *, path: str, log: IssueLog, use_predictions: bool
                ) -> dict[str, Any] | None:
    """The gold JSONL record of one task, or None (reported) when it has no usable text or annotation."""
    where = f"{path} task #{number}"
    if isinstance(task, dict) and "data" not in task and "text" in task:
        task = from_min_json(task)
    data = task.get("data") if isinstance(task, dict) else None
    text = data.get("text") if isinstance(data, dict) else None
    post_id = (data or {}).get("post_id") or (task.get("id") if isinstance(task, dict) else None) or f"task{number}"
    post_id = str(post_id)
    if not isinstance(text, str) or not text.strip():
        log.report('task has no "data.text"', "skipped task", path=where, post_id=post_id)
        return None
    result = chosen_result(task, use_predictions)
    if result is None:
        log.report("task has no annotation", "skipped task", path=where, post_id=post_id)
        return None
    image = data.get("image") if isinstance(data.get("image"), str) else None
    tokens, offsets = task_tokens(data, text)
    coarse_of = data.get("coarse_of") if isinstance(data.get("coarse_of"), dict) else {}
    spans: dict[str, dict[str, Any]] = {}
    boxes: dict[str, tuple[str | None, list[float]]] = {}
    links: list[tuple[Any, Any]] = []
    for index, item in enumerate(r for r in result if isinstance(r, dict)):
        value, kind = item.get("value") or {}, item.get("type")
        key = str(item.get("id", f"#{index}"))
        if kind == "relation":
            links.append((item.get("from_id"), item.get("to_id")))
        elif kind == "labels":
            label, chars = _label(value, "labels"), span_chars(value, text)
            if label is None or chars is None:
                log.report(f"span {key} has no label or its text is not in the post", "left out entity",
                           path=where, post_id=post_id)
                continue
            if chars != (value.get("start"), value.get("end")):
                log.report(f"span {key} offsets do not select its text", f"moved to {list(chars)}", path=where,
                           post_id=post_id)
            first_last = tokens_in_chars(offsets, *chars)
            if first_last is None:
                log.report(f"span {key} covers no token", "left out entity", path=where, post_id=post_id)
                continue
            start, end = first_last
            if (offsets[start][0], offsets[end - 1][1]) != chars:
                log.report(f"span {key} cuts a token", "widened to whole tokens", path=where, post_id=post_id)
            spans[key] = {"start": start, "end": end, "text": " ".join(tokens[start:end]), "type": label,
                          "coarse": str(coarse_of.get(label, label)), "boxes": None}
        elif kind == "rectanglelabels":
            box = pixel_box(item, image)
            if isinstance(box, str):
                log.report(f"{box} ({key})", "left out box", path=where, post_id=post_id)
            else:
                boxes[key] = (_label(value, "rectanglelabels"), box)
    attach_boxes(spans, boxes, links, where=where, post_id=post_id, log=log)
    entities = non_overlapping(list(spans.values()), len(tokens), where=where, post_id=post_id, log=log)
    return {"id": post_id, "tokens": tokens, "text": text, "image": image, "entities": entities}


def attach_boxes(spans: dict[str, dict[str, Any]], boxes: Mapping[str, tuple[str | None, list[float]]],
                 links: list[tuple[Any, Any]], *, where: str, post_id: str, log: IssueLog) -> None:
    linked: dict[str, str] = {}
    for a, b in links:
        for span_key, box_key in ((a, b), (b, a)):
            if str(span_key) in spans and str(box_key) in boxes:
                linked[str(box_key)] = str(span_key)
    for box_key, (label, box) in boxes.items():
        owner = linked.get(box_key)
        if owner is None:
            same = [k for k, span in spans.items() if span["type"] == label]
            owner = same[0] if len(same) == 1 else None
        if owner is None:
            log.report(f"box {box_key} is linked to no single span", "left out box", path=where, post_id=post_id)
            continue
        spans[owner]["boxes"] = [*(spans[owner]["boxes"] or []), [round(v, 2) for v in box]]
