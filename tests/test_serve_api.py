"""`gemner serve` over real HTTP: a uvicorn server on a free 127.0.0.1 port, tiny models, an httpx client.
Every route, every limit (413, 422, 429, 504), malformed images, concurrent callers, a caller that
leaves, the bearer token, and that a failure answers with a request id and no traceback."""

from __future__ import annotations

import base64
import io
import json
import logging
import os
import signal
import socket
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import replace
from pathlib import Path

import httpx
import pytest
from PIL import Image

pytest.importorskip("fastapi")

from gemner.data.tokenize import tokenize_tweet
from gemner.data.types import Post
from gemner.pipeline.gem import GEM
from gemner.serve import ServeSettings, create_app
from gemner.serve.service import Service
from imagefiles import blank_png
from serve_helpers import POST, GatedPipeline, free_socket, picture, running, tiny_pipeline_config

LIMITS = ServeSettings(max_body_bytes=200_000, max_image_bytes=120_000, max_image_pixels=1_000_000,
                       max_text_chars=300, max_batch_posts=4, max_queue=3, max_batch=4, batch_window_ms=20)


@pytest.fixture(scope="module")
def gem(tmp_path_factory, wide_encoder_dir, tiny_causal_lm) -> GEM:
    return GEM(tiny_pipeline_config(tmp_path_factory, wide_encoder_dir, tiny_causal_lm))


@pytest.fixture(scope="module")
def server(gem):
    with running(create_app(gem.config, LIMITS, build=lambda _config: gem)) as url:
        yield url


def _png(path: Path) -> str:
    return base64.b64encode(picture(path).read_bytes()).decode("ascii")


def test_every_route_answers(server):
    assert httpx.get(f"{server}/healthz").json() == {"status": "ok"}
    assert httpx.get(f"{server}/readyz").json() == {"status": "ready"}
    config = httpx.get(f"{server}/v1/config").json()
    assert config["preset"] == "tiny" and config["ready"]
    assert config["stages"] == {"knowledge": "off", "recognizer": "on", "rerank": "on", "ground": "on"}
    assert config["limits"]["max_queue"] == 3 and config["limits"]["token_required"] is False
    assert "token" not in config["limits"]
    paths = httpx.get(f"{server}/openapi.json").json()["paths"]
    assert {"/v1/entities", "/v1/entities:batch", "/healthz", "/readyz", "/v1/config"} <= set(paths)
    assert "multipart/form-data" in paths["/v1/entities"]["post"]["requestBody"]["content"]
    assert "swagger" in httpx.get(f"{server}/docs").text.lower()
    page = httpx.get(f"{server}/")
    assert page.status_code == 200 and '<form id="post-form">' in page.text
    assert "script-src 'self'" in page.headers["content-security-policy"]
    assert httpx.get(f"{server}/static/app.js").status_code == 200
    missing = httpx.get(f"{server}/nowhere")
    assert missing.status_code == 404 and missing.json()["request_id"] == missing.headers["x-request-id"]


def test_a_post_answers_the_record_gemner_predict_writes(server, gem):
    answer = httpx.post(f"{server}/v1/entities", json={"text": POST, "id": "p1"})
    assert answer.status_code == 200, answer.text
    record = answer.json()
    expected = next(gem.predict_batch([Post.from_text("p1", POST)])).record()
    assert record == expected and record["id"] == "p1"  # what `gemner predict --text` writes
    assert record["entities"], "the trained tiny recogniser finds entities"
    assert {e["text"].lower() for e in record["entities"]} <= {"obama", "paris", "serena williams"}
    for entity in record["entities"]:
        assert entity["box"] is None and entity["box_status"] == "not_computed"  # no image, no box
        assert {"type", "coarse", "scores", "score"} <= set(entity)
        assert POST[entity["start_char"]:entity["end_char"]] == entity["text"]  # offsets into the caller's text
    assert len(answer.headers["x-request-id"]) == 16


def test_an_image_by_json_or_multipart_is_grounded_with_heat_maps(server, tmp_path):
    image = picture(tmp_path / "post.png")
    by_json = httpx.post(f"{server}/v1/entities", json={"text": POST, "image": _png(tmp_path / "a.png"),
                                                          "heatmaps": True}).json()
    with image.open("rb") as handle:
        by_form = httpx.post(f"{server}/v1/entities", data={"text": POST, "heatmaps": "true"},
                             files={"image": ("post.png", handle, "image/png")}).json()
    assert by_form["image"] == "post.png" and by_json["image"] == "upload"
    for record in (by_json, by_form):
        assert record["entities"] and all(e["box_status"] == "computed" for e in record["entities"])
        assert all(e["box"] is not None for e in record["entities"])  # threshold 0: every entity is boxed
        assert set(record["heatmaps"]) == {str(i) for i in range(len(record["entities"]))}
        png = base64.b64decode(record["heatmaps"]["0"].split(",", 1)[1])
        assert Image.open(io.BytesIO(png)).mode == "RGBA"
    assert [e["box"] for e in by_json["entities"]] == [e["box"] for e in by_form["entities"]]


def test_a_batch_answers_each_post_in_order(server):
    posts = [{"text": POST, "id": "a"}, {"text": "Messi and Angela Merkel in Japan"}, {"text": "great game"}]
    answer = httpx.post(f"{server}/v1/entities:batch", json={"posts": posts})
    assert answer.status_code == 200, answer.text
    results = answer.json()["results"]
    assert [r["tokens"] for r in results] == [tokenize_tweet(p["text"]) for p in posts]
    rid = answer.headers["x-request-id"]
    assert [r["id"] for r in results] == ["a", f"{rid}-1", f"{rid}-2"]


@pytest.mark.parametrize(("send", "status", "says"), [
    (lambda url: httpx.post(url, content=b"{" + b" " * 250_000 + b"}",
                            headers={"content-type": "application/json"}), 413, "body"),
    (lambda url: httpx.post(url, content=iter([b'{"text": "', b"x" * 250_000, b'"}']),
                            headers={"content-type": "application/json"}), 413, "body"),  # chunked, no length
    (lambda url: httpx.post(url, json={"text": "word " * 100}), 422, "characters"),
    (lambda url: httpx.post(url, json={"text": "   "}), 422, "empty"),
    (lambda url: httpx.post(url, json={"tex": POST}), 422, "invalid"),
    (lambda url: httpx.post(url, content=b"{not json", headers={"content-type": "application/json"}), 422, "JSON"),
    (lambda url: httpx.post(url, json={"text": POST, "image": "@@not base64@@"}), 422, "base64"),
    (lambda url: httpx.post(url, json={"text": POST, "image": base64.b64encode(b"not an image").decode()}),
     422, "unreadable"),
    (lambda url: httpx.post(url, json={"text": POST, "image": base64.b64encode(b"\x89PNG\r\n\x1a\n" + b"\0" * 64)
                                       .decode()}), 422, "unreadable"),
    (lambda url: httpx.post(url, data={"text": POST}, files={"image": ("x.jpg", b"\xff\xd8\xff broken", "image/jpeg")}),
     422, "unreadable"),
    (lambda url: httpx.post(url, json={"text": POST, "image": base64.b64encode(os.urandom(130_000)).decode()}),
     413, "bytes"),
    (lambda url: httpx.post(url, content=b"text", headers={"content-type": "text/plain"}), 415, "multipart"),
])
def test_limits_and_malformed_input_are_clear_4xx(server, send, status, says):
    answer = send(f"{server}/v1/entities")
    assert answer.status_code == status, answer.text
    body = answer.json()
    assert says in body["error"] and body["request_id"] == answer.headers["x-request-id"]
    assert "Traceback" not in answer.text and "@@not" not in answer.text  # no trace, no echo of the input


def test_an_image_over_the_pixel_limit_is_refused_from_its_header(server, tmp_path):
    huge = blank_png(tmp_path / "huge.png", 4000, 4000)  # 16 Mpx in a few KB
    with huge.open("rb") as handle:
        answer = httpx.post(f"{server}/v1/entities", data={"text": POST}, files={"image": ("huge.png", handle)})
    assert answer.status_code == 413 and "4000x4000" in answer.json()["error"]
    too_many = httpx.post(f"{server}/v1/entities:batch", json={"posts": [{"text": POST}] * 5})
    assert too_many.status_code == 413 and "5 posts" in too_many.json()["error"]
    bad_item = httpx.post(f"{server}/v1/entities:batch", json={"posts": [{"text": POST}, {"text": ""}]})
    assert bad_item.status_code == 422 and bad_item.json()["error"].startswith("posts[1]")


def test_concurrent_callers_share_batches_and_get_their_own_records(server, gem):
    texts = [f"{name} visits {place} today" for name in ("Obama", "Messi", "Angela Merkel")
             for place in ("Paris", "Japan", "New York", "France")]
    expected = {t: [(e.start, e.end, e.type) for e in next(gem.predict_batch([Post("x", tokenize_tweet(t))])).entities]
                for t in texts}
    before = httpx.get(f"{server}/v1/config").json()["batching"]

    def call(text: str) -> tuple[str, httpx.Response]:
        for _ in range(20):  # bounded: the queue holds 3 posts, so some callers are told to retry
            answer = httpx.post(f"{server}/v1/entities", json={"text": text}, timeout=30)
            if answer.status_code != 429:
                return text, answer
            time.sleep(float(answer.headers["retry-after"]) / 20)
        return text, answer

    with ThreadPoolExecutor(8) as pool:
        answers = list(pool.map(call, texts))
    assert all(a.status_code == 200 for _, a in answers), [a.text for _, a in answers if a.status_code != 200]
    for text, answer in answers:
        assert [(e["start"], e["end"], e["type"]) for e in answer.json()["entities"]] == expected[text]
    after = httpx.get(f"{server}/v1/config").json()["batching"]
    assert after["posts"] - before["posts"] == len(texts)
    assert after["batches"] - before["batches"] < len(texts)  # some posts shared a batch


def test_a_full_queue_answers_429_with_retry_after_then_recovers(gem):
    gated = GatedPipeline(gem)
    settings = replace(LIMITS, max_queue=2, max_batch=1, batch_window_ms=0)
    with running(create_app(gem.config, settings, build=lambda _c: gated)) as url, ThreadPoolExecutor(3) as pool:
        first = pool.submit(httpx.post, f"{url}/v1/entities", json={"text": POST}, timeout=30)
        assert gated.entered.wait(10)  # the first post is in the pipeline, the queue is empty
        queued = [pool.submit(httpx.post, f"{url}/v1/entities", json={"text": POST}, timeout=30) for _ in range(2)]
        deadline = time.monotonic() + 10
        while httpx.get(f"{url}/v1/config").json()["batching"]["waiting"] < 2:
            assert time.monotonic() < deadline
            time.sleep(0.02)
        refused = httpx.post(f"{url}/v1/entities", json={"text": POST})
        assert refused.status_code == 429 and int(refused.headers["retry-after"]) >= 1
        assert "queue is full" in refused.json()["error"]
        gated.gate.set()
        assert [f.result().status_code for f in (first, *queued)] == [200, 200, 200]
        assert httpx.post(f"{url}/v1/entities", json={"text": POST}).status_code == 200


def test_timeout_answers_504_and_a_caller_that_leaves_is_dropped(gem):
    gated = GatedPipeline(gem)
    settings = replace(LIMITS, timeout_s=0.5, max_batch=1, batch_window_ms=0)
    with running(create_app(gem.config, settings, build=lambda _c: gated)) as url:
        late = httpx.post(f"{url}/v1/entities", json={"text": POST})
        assert late.status_code == 504 and "0.5 s" in late.json()["error"]
        body = json.dumps({"text": POST}).encode()
        port = int(url.rsplit(":", 1)[1])
        with socket.create_connection(("127.0.0.1", port)) as sock:  # sends a request, then hangs up
            sock.sendall(b"POST /v1/entities HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
                         b"Content-Length: " + str(len(body)).encode() + b"\r\n\r\n" + body)
            time.sleep(0.2)
        gated.gate.set()
        deadline = time.monotonic() + 10
        while httpx.get(f"{url}/v1/config").json()["batching"]["waiting"]:
            assert time.monotonic() < deadline
            time.sleep(0.05)
        batching = httpx.get(f"{url}/v1/config").json()["batching"]
        assert batching["dropped"] >= 1 and batching["posts"] == 1  # only the first post reached the pipeline
        assert httpx.post(f"{url}/v1/entities", json={"text": POST}).status_code == 200


def test_a_failure_inside_answers_500_with_a_request_id_and_no_trace(gem, caplog):
    failing = GatedPipeline(gem, fail=True)
    failing.gate.set()
    with running(create_app(gem.config, LIMITS, build=lambda _c: failing)) as url:
        answer = httpx.post(f"{url}/v1/entities", json={"text": POST})
    assert answer.status_code == 500
    body = answer.json()
    assert body["request_id"] == answer.headers["x-request-id"]
    assert "secret" not in answer.text and "/srv" not in answer.text and "Traceback" not in answer.text
    assert any(body["request_id"] in r.getMessage() and r.exc_info for r in caplog.records)


def test_readyz_waits_for_the_models_and_reports_a_failed_load(gem):
    gated = GatedPipeline(gem)

    def slow_build(_config):
        assert gated.gate.wait(10)
        return gem

    with running(create_app(gem.config, LIMITS, build=slow_build), ready=False) as url:
        assert httpx.get(f"{url}/healthz").status_code == 200
        assert httpx.get(f"{url}/readyz").status_code == 503
        loading = httpx.post(f"{url}/v1/entities", json={"text": POST})
        assert loading.status_code == 503 and loading.headers["retry-after"]
        gated.gate.set()
        deadline = time.monotonic() + 10
        while httpx.get(f"{url}/readyz").status_code != 200:
            assert time.monotonic() < deadline
            time.sleep(0.05)

    def broken(_config):
        raise FileNotFoundError("no recogniser at /models/x")

    with running(create_app(gem.config, LIMITS, build=broken), ready=False) as url:
        deadline = time.monotonic() + 10
        while "failed" not in (answer := httpx.get(f"{url}/readyz")).text:
            assert time.monotonic() < deadline
            time.sleep(0.05)
        assert answer.status_code == 503 and "no recogniser" in answer.json()["error"]


def test_a_bearer_token_guards_the_api_but_not_the_health_checks(gem):
    settings = replace(LIMITS, token="s3cret-token")
    with running(create_app(gem.config, settings, build=lambda _c: gem)) as url:
        assert httpx.get(f"{url}/healthz").status_code == 200 and httpx.get(f"{url}/readyz").status_code == 200
        for headers in ({}, {"Authorization": "Bearer wrong"}, {"Authorization": "Basic s3cret-token"}):
            refused = httpx.post(f"{url}/v1/entities", json={"text": POST}, headers=headers)
            assert refused.status_code == 401 and refused.headers["www-authenticate"] == "Bearer"
        assert httpx.get(f"{url}/v1/config").status_code == 401
        good = {"Authorization": "Bearer s3cret-token"}
        assert httpx.post(f"{url}/v1/entities", json={"text": POST}, headers=good).status_code == 200
        assert "s3cret" not in httpx.get(f"{url}/v1/config", headers=good).text


def test_the_command_serves_a_pipeline_file_on_localhost(gem, tmp_path):
    config = tmp_path / "tiny.yaml"
    config.write_text(gem.config.to_yaml())
    sock = free_socket()
    port = sock.getsockname()[1]
    sock.close()
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(sys.path), "OMP_NUM_THREADS": "1"}
    env.pop("GEMNER_SERVE_TOKEN", None)
    process = subprocess.Popen([sys.executable, "-m", "gemner", "serve", "-c", str(config), "--port", str(port),
                                "--threads", "1"], env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    try:
        deadline = time.monotonic() + 180  # imports and model loading, on a busy machine
        while True:
            assert process.poll() is None and time.monotonic() < deadline, "gemner serve did not become ready"
            try:
                if httpx.get(f"http://127.0.0.1:{port}/readyz").status_code == 200:
                    break
            except httpx.TransportError:
                pass
            time.sleep(0.2)
        answer = httpx.post(f"http://127.0.0.1:{port}/v1/entities", json={"text": POST})
        assert answer.status_code == 200 and answer.json()["entities"]
    finally:
        process.send_signal(signal.SIGINT)
        output = process.communicate(timeout=20)[0].decode()
    assert process.returncode == 0, output
    assert f"127.0.0.1:{port}" in output and "Traceback" not in output


def test_the_pipelines_notes_go_to_the_log_and_do_not_pile_up(gem, caplog):
    service = Service(gem.config, LIMITS, build=lambda _config: gem)
    service.pipeline = gem
    long_post = Post("long", ["Obama"] + ["word"] * 300)  # past LONG_POST_WORDS: a note per post
    with caplog.at_level(logging.INFO, logger="gemner.serve"):
        for _ in range(3):
            [result] = service._predict([long_post], False)
            assert result.post.id == "long"
    assert gem.log.issues == []
    assert sum("long post (301 words)" in r.getMessage() for r in caplog.records) == 3
