"""Fixtures shared by the test files: one torch thread per test, and tiny random models built once per run."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
import torch

from gemner.recognize.testing import make_tiny_encoder
from gemner.rerank.tiny import TINY_CHATML_TEMPLATE, build_tiny_causal_lm


@pytest.fixture(autouse=True, scope="session")
def private_caches(tmp_path_factory: pytest.TempPathFactory) -> Iterator[None]:
    """Converted weights and LLM answers go to a folder of this run, never the user's ~/.cache. Weights
    `gemner download base` assembled there are read through a link (tests never write them)."""
    import os

    from gemner.assembled import ARCHIVES

    root = tmp_path_factory.mktemp("cache")
    (root / "models").mkdir()
    for archive in set(ARCHIVES.values()):  # one archive may have several names
        if archive.is_installed():
            (root / "models" / archive.name).symlink_to(archive.folder(), target_is_directory=True)
    saved = {name: os.environ.get(name) for name in ("GEMNER_CACHE", "GEMNER_KNOWLEDGE_CACHE")}
    os.environ["GEMNER_CACHE"] = str(root)
    os.environ["GEMNER_KNOWLEDGE_CACHE"] = str(root / "knowledge.sqlite")
    yield
    for name, value in saved.items():
        if value is None:
            os.environ.pop(name, None)
        else:
            os.environ[name] = value


@pytest.fixture(autouse=True, scope="session")
def one_thread() -> Iterator[None]:
    """Tiny models gain nothing from threads, and on a busy 2-core machine threads contend badly.
    Session-wide, so that module fixtures that train a model run on one thread too."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


@pytest.fixture(autouse=True)
def _back_to_one_thread(one_thread: None) -> Iterator[None]:
    """A test (or a command it runs with `--threads N`) does not leave its thread count to the next."""
    yield
    torch.set_num_threads(1)


@pytest.fixture(scope="session")
def encoder_dir(tmp_path_factory: pytest.TempPathFactory) -> str:
    """A tiny random BERT (hidden size 32) with a tokenizer for the synthetic and benchmark words."""
    return str(make_tiny_encoder(tmp_path_factory.mktemp("tiny-encoder")))


@pytest.fixture(scope="session")
def mpnet_encoder_dir(tmp_path_factory: pytest.TempPathFactory) -> str:
    """A tiny random MPNet (the `base` encoder's architecture) with the same words."""
    return str(make_tiny_encoder(tmp_path_factory.mktemp("tiny-mpnet"), architecture="mpnet"))


@pytest.fixture(scope="session")
def wide_encoder_dir(tmp_path_factory: pytest.TempPathFactory) -> str:
    """The tiny BERT with hidden size 48: room enough to learn the synthetic task in a few epochs."""
    return str(make_tiny_encoder(tmp_path_factory.mktemp("tiny-encoder-48"), hidden=48))


@pytest.fixture(scope="session")
def tiny_causal_lm(tmp_path_factory: pytest.TempPathFactory) -> str:
    """A tiny random Llama without a chat template (prompts are plain text)."""
    return str(build_tiny_causal_lm(tmp_path_factory.mktemp("tiny-lm")))


@pytest.fixture(scope="session")
def tiny_chat_lm(tmp_path_factory: pytest.TempPathFactory) -> str:
    """A tiny random Llama with a ChatML template (prompts are chat turns)."""
    return str(build_tiny_causal_lm(tmp_path_factory.mktemp("tiny-chat-lm"), chat_template=TINY_CHATML_TEMPLATE))


@pytest.fixture(scope="session")
def tiny_pipeline_models(tmp_path_factory: pytest.TempPathFactory) -> dict[str, str]:
    """A trained tiny recogniser, a tiny ITM and a tiny LM (`gemner.pipeline.testing`), built once per run."""
    from gemner.pipeline.testing import build_tiny_pipeline_models

    return build_tiny_pipeline_models(tmp_path_factory.mktemp("tiny-pipeline"))
