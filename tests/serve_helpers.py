"""A tiny GEM pipeline and a real uvicorn server on a free 127.0.0.1 port, for the `gemner serve` tests."""

from __future__ import annotations

import contextlib
import socket
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import uvicorn
from PIL import Image

from gemner.ground.tiny import build_tiny_itm, save_tiny_itm
from gemner.pipeline.config import PipelineConfig
from gemner.recognize.config import RecognizerConfig
from gemner.recognize.testing import TINY_ENTITIES, TINY_SCHEMA, TINY_WORDS, synthetic_posts
from gemner.recognize.train import train_recognizer

POST = "Obama visits Paris with Serena Williams today"
_BUILT: dict[tuple[str, str], PipelineConfig] = {}  # built once per test session, whichever module asks first


def tiny_pipeline_config(tmp_path_factory, encoder_dir: str, causal_lm: str) -> PipelineConfig:
    """Every stage but knowledge, with models trained or built in seconds: the recogniser learns the
    synthetic names, the reranker is a random tiny LM, the grounder boxes every entity (threshold 0)."""
    if (encoder_dir, causal_lm) not in _BUILT:
        _BUILT[encoder_dir, causal_lm] = _build(tmp_path_factory.mktemp("serve-models"), encoder_dir, causal_lm)
    return _BUILT[encoder_dir, causal_lm]


def _build(root: Path, encoder_dir: str, causal_lm: str) -> PipelineConfig:
    config = RecognizerConfig(encoder=encoder_dir, lr=3e-3, head_lr=1e-2, batch_size=16, epochs=3, warmup_ratio=0.1)
    train_recognizer(config, TINY_SCHEMA, synthetic_posts(240, seed=1), synthetic_posts(40, seed=2, prefix="d"),
                     root / "recognizer", progress=False, log=lambda _m: None)
    names = [n for ns in TINY_ENTITIES.values() for name in ns for n in name.split()]
    itm = save_tiny_itm(*build_tiny_itm([*TINY_WORDS, *names, *TINY_SCHEMA.labels]), root / "itm")
    return PipelineConfig.model_validate({
        "name": "tiny",
        "knowledge": {"enabled": False},
        "recognizer": {"model": str(root / "recognizer")},
        "rerank": {"model": causal_lm, "gamma": 0.0, "k": 3},
        "ground": {"itm_model": str(itm), "segmenter": "region", "threshold": 0.0},
    })


def picture(path: Path, size: tuple[int, int] = (96, 64)) -> Path:
    image = Image.new("RGB", size, (40, 120, 200))
    image.paste((250, 40, 40), (10, 10, 40, 40))
    image.save(path)
    return path


def free_socket() -> socket.socket:
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind(("127.0.0.1", 0))
    return sock


@contextlib.contextmanager
def running(app, *, ready: bool = True, timeout: float = 60.0) -> Iterator[str]:
    """Serve `app` with uvicorn in a thread on a free loopback port; yields the base URL. With `ready`,
    waits (bounded) until `/readyz` answers 200."""
    sock = free_socket()
    server = uvicorn.Server(uvicorn.Config(app, log_level="warning", timeout_graceful_shutdown=2))
    thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, daemon=True)
    thread.start()
    url = f"http://127.0.0.1:{sock.getsockname()[1]}"
    try:
        deadline = time.monotonic() + timeout
        while not server.started:
            assert time.monotonic() < deadline and thread.is_alive(), "the server did not start"
            time.sleep(0.02)
        while ready and httpx.get(f"{url}/readyz").status_code != 200:
            assert time.monotonic() < deadline, "the pipeline did not load"
            time.sleep(0.05)
        yield url
    finally:
        server.should_exit = True
        thread.join(timeout=10)
        sock.close()


class GatedPipeline:
    """A pipeline whose batches wait for `gate` (the warm-up post excepted): lets a test fill the queue,
    pass the timeout, or leave while a batch runs, deterministically."""

    def __init__(self, pipeline, fail: bool = False):
        self.pipeline = pipeline
        self.config = pipeline.config
        self.gate = threading.Event()
        self.entered = threading.Event()
        self.fail = fail

    def stages(self) -> dict[str, str]:
        return self.pipeline.stages()

    def predict_batch(self, posts, batch_size: int = 16, keep_heatmaps: bool = False):
        if posts[0].id != "warm-up":
            self.entered.set()
            assert self.gate.wait(30), "the test never opened the gate"
            if self.fail:
                raise RuntimeError("a secret internal failure /srv/gemner/weights")
        return list(self.pipeline.predict_batch(posts, batch_size=batch_size, keep_heatmaps=keep_heatmaps))
