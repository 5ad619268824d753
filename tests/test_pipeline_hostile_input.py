"""`gemner predict` / `gemner rerank` under hostile input, as a user meets it: huge images, huge texts,
an output that is the input or is being written by another run, errors retried on resume, bad numbers,
post ids that make clashing file names. Tiny models built from configs; no download."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import yaml
from PIL import Image
from typer.testing import CliRunner

from gemner.cli.main import app
from gemner.data.limits import RERANK_CONTEXT_WORDS
from gemner.data.userio import read_prediction_records
from gemner.data.writer import PredictionWriter
from gemner.ground.itm import itm_text
from gemner.knowledge.prompt import render_query
from gemner.pipeline.gem import GEM
from gemner.pipeline.predict import predict_to_file
from gemner.pipeline.testing import tiny_pipeline_config
from gemner.recognize.testing import synthetic_posts
from gemner.rerank.prompt import query_text, windowed_query
from imagefiles import blank_png

runner = CliRunner()


@pytest.fixture(scope="module")
def config_file(tmp_path_factory, tiny_pipeline_models) -> Path:
    path = tmp_path_factory.mktemp("hostile") / "tiny.yaml"
    path.write_text(tiny_pipeline_config(tiny_pipeline_models).to_yaml())
    return path


def _image(path: Path, shade: int = 0) -> Path:
    image = Image.new("RGB", (96, 64), (shade, 120, 200))
    image.paste((250, 40, 40), (10, 10, 40, 40))
    image.save(path)
    return path


def _posts_file(tmp_path: Path, rows: list[dict]) -> Path:
    path = tmp_path / "posts.jsonl"
    path.write_text("".join(json.dumps(row) + "\n" for row in rows))
    return path


def _rows(tmp_path: Path, n: int = 3) -> list[dict]:
    posts = synthetic_posts(n, seed=7, prefix="t")
    return [{"id": p.id, "text": " ".join(p.tokens), "image": _image(tmp_path / f"{p.id}.png", 40 * i).name}
            for i, p in enumerate(posts)]


def _predict(config_file: Path, *args: str):
    return runner.invoke(app, ["predict", "--config", str(config_file), "--no-progress", *args])


def _records(path: Path) -> dict[str, dict]:
    return {r["id"]: r for r in read_prediction_records(path)}


def test_a_huge_image_is_one_post_error(config_file, tmp_path):
    rows = _rows(tmp_path)
    blank_png(tmp_path / "huge.png", 20000, 20000)
    rows[1]["image"] = "huge.png"
    out = tmp_path / "out.jsonl"
    result = _predict(config_file, "--input", str(_posts_file(tmp_path, rows)), "--output", str(out),
                      "--visualize", str(tmp_path / "viz"))
    assert result.exit_code == 0, result.output
    records = _records(out)
    assert "over the limit" in records[rows[1]["id"]]["error"]
    assert all("error" not in records[row["id"]] for row in (rows[0], rows[2]))
    assert len(list((tmp_path / "viz").glob("*.png"))) == 2
    single = _predict(config_file, "--text", "Alpha Beta", "--image", str(tmp_path / "huge.png"))
    assert single.exit_code == 1 and "over the limit" in single.output
    assert not isinstance(single.exception, Image.DecompressionBombError)


def test_a_huge_text_is_cut_for_every_model_and_said_once(config_file, tmp_path):
    rows = _rows(tmp_path)
    long_text = rows[0]["text"] + " " + " ".join(["filler"] * 28_000)  # 200,000 characters
    assert len(long_text) > 195_000
    rows.insert(1, {"id": "long", "text": long_text})
    out = tmp_path / "out.jsonl"
    result = _predict(config_file, "--input", str(_posts_file(tmp_path, rows)), "--output", str(out))
    assert result.exit_code == 0, result.output
    records = _records(out)
    assert set(records) == {row["id"] for row in rows} and not any("error" in r for r in records.values())
    notes = [line for line in result.output.splitlines() if "(post long)" in line]
    assert len(notes) == 1 and "long post" in notes[0] and "inputs cut" in notes[0]
    assert all("rerank" in e["scores"] for e in records["long"]["entities"])


def test_model_inputs_have_a_ceiling():
    tokens = ["word"] * 50_000
    query = windowed_query(tokens, 30_000, 30_002, ["a", "b"], caption="c" * 100_000)
    assert len(query.tokens) == RERANK_CONTEXT_WORDS and query.tokens[query.start:query.end] == ("word", "word")
    assert len(query_text(query, with_caption=True)) < 3_000
    assert len(render_query(" ".join(tokens), "c" * 100_000)) < 3_000
    assert len(itm_text("x" * 100_000, "y" * 100_000)) < 500


def test_output_equal_to_input_is_refused(config_file, tmp_path):
    posts = _posts_file(tmp_path, _rows(tmp_path))
    before = posts.read_bytes()
    result = _predict(config_file, "--input", str(posts), "--output", str(tmp_path / "." / "posts.jsonl"),
                      "--no-resume")
    assert result.exit_code == 2 and "also an input" in result.output
    assert posts.read_bytes() == before
    reranker = yaml.safe_load(config_file.read_text())["rerank"]["model"]
    rerank = runner.invoke(app, ["rerank", "--model", reranker, "--predictions", str(posts), "--output", str(posts),
                                 "--threads", "1"])
    assert rerank.exit_code == 2 and posts.read_bytes() == before


def test_a_second_run_on_one_output_is_refused(config_file, tmp_path):
    posts = _posts_file(tmp_path, _rows(tmp_path))
    out = tmp_path / "out.jsonl"
    with PredictionWriter(out):  # another run is writing it
        result = _predict(config_file, "--input", str(posts), "--output", str(out))
    assert result.exit_code == 2 and "another run is writing" in result.output
    assert out.read_text() == ""


@pytest.mark.parametrize("kind", ["bytes", "folder"])
def test_an_output_that_is_not_predictions_is_one_line_and_untouched(config_file, tmp_path, kind):
    posts = _posts_file(tmp_path, _rows(tmp_path, 1))
    out = tmp_path / "out.jsonl"
    if kind == "folder":
        out.mkdir()
    else:
        out.write_bytes(b"\x89binary\xff\xfe\n")
    result = _predict(config_file, "--input", str(posts), "--output", str(out))
    assert result.exit_code == 2 and result.output.count("error:") == 1 and "Traceback" not in result.output
    assert out.is_dir() if kind == "folder" else out.read_bytes() == b"\x89binary\xff\xfe\n"


def test_posts_that_failed_are_retried_on_resume(config_file, tmp_path):
    rows = _rows(tmp_path)
    broken = tmp_path / rows[1]["image"]
    broken.write_bytes(b"not an image yet")
    posts, out = _posts_file(tmp_path, rows), tmp_path / "out.jsonl"
    args = ["--input", str(posts), "--output", str(out)]
    assert _predict(config_file, *args).exit_code == 0
    assert "unreadable image" in _records(out)[rows[1]["id"]]["error"]
    _image(broken)  # the user fixes the image
    kept = _predict(config_file, *args, "--skip-errors")
    assert kept.exit_code == 0 and "error" in _records(out)[rows[1]["id"]]
    retried = _predict(config_file, *args)
    assert retried.exit_code == 0 and "1 earlier errors retried" in retried.output
    lines = [json.loads(line) for line in out.read_text().splitlines()]
    assert sorted(r["id"] for r in lines) == sorted(row["id"] for row in rows)  # one line per post
    assert not any("error" in r for r in lines)


@pytest.mark.parametrize("option", [["--max-posts", "-1"], ["--max-posts", "0"], ["--batch-size", "0"],
                                    ["--threads", "0"]])
def test_numbers_out_of_range_are_refused(config_file, tmp_path, option):
    posts = _posts_file(tmp_path, _rows(tmp_path, 2))
    result = _predict(config_file, "--input", str(posts), "--output", str(tmp_path / "o.jsonl"), *option)
    assert result.exit_code == 2 and option[0] in result.output
    assert not (tmp_path / "o.jsonl").exists()


def test_pictures_of_clashing_ids_are_all_kept(config_file, tmp_path):
    rows = _rows(tmp_path)
    for row, post_id in zip(rows, ["x/1", "x:1", "x_1"], strict=True):
        row["id"] = post_id
    result = _predict(config_file, "--input", str(_posts_file(tmp_path, rows)), "--output",
                      str(tmp_path / "out.jsonl"), "--visualize", str(tmp_path / "viz"))
    assert result.exit_code == 0, result.output
    names = sorted(p.name for p in (tmp_path / "viz").iterdir())
    assert len(names) == 3 and "x_1.png" in names and all("/" not in n and ":" not in n for n in names)


def test_each_image_is_decoded_once(config_file, tmp_path, monkeypatch):
    rows = _rows(tmp_path)
    opened: list[str] = []
    real_open = Image.open
    monkeypatch.setattr(Image, "open", lambda fp, *a, **k: opened.append(str(fp)) or real_open(fp, *a, **k))
    from gemner.data.userio import read_posts

    posts, _ = read_posts(_posts_file(tmp_path, rows))
    gem = GEM.from_pretrained(config_file)
    predict_to_file(gem, posts, tmp_path / "out.jsonl", visualize=tmp_path / "viz")
    assert sorted(opened) == sorted(str(p.image) for p in posts)


def test_boxes_of_a_downscaled_image_are_in_the_file_pixels(config_file, tmp_path, monkeypatch):
    from gemner.data import Post

    image = Image.new("RGB", (384, 256), (40, 120, 200))
    image.paste((250, 40, 40), (200, 120, 330, 230))
    image.save(tmp_path / "big.png")
    post = synthetic_posts(1, seed=7, prefix="t")[0]
    gem = GEM.from_pretrained(config_file, changes={"rerank": {"enabled": False}})

    def boxes() -> list[tuple[list[float], list[int]]]:
        result = next(gem.predict_batch([Post(post.id, post.tokens, image=tmp_path / "big.png")]))
        assert result.error is None and result.entities
        return [(list(e.box), e.scores["peak"]) for e in result.entities]

    full = boxes()
    monkeypatch.setenv("GEMNER_MAX_IMAGE_SIDE", "192")  # loaded at half size
    half = boxes()
    for (_, peak), (half_box, half_peak) in zip(full, half, strict=True):
        assert all(abs(a - b) <= 4 for a, b in zip(peak, half_peak, strict=True)), (peak, half_peak)
        x1, y1, x2, y2 = half_box
        assert 0 <= x1 < x2 <= 384 and 0 <= y1 < y2 <= 256
    assert max(box[2] for box, _ in half) > 192  # in the file's pixels, not the loaded image's
