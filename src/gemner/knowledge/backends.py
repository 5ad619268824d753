"""What every LLM backend shares: the request it gets, the result it gives, how it reports progress.

A backend receives `Request`s (chat messages plus the key the cache stores the answer under) and calls
`on_result` in the caller's thread for each one, with a `Completion` or a `Failure`. It checks `stop`
between units of work: once set, it finishes or abandons what is in flight and returns; abandoned
requests are simply not reported, so the job redoes them on resume.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any, Protocol

from .prompt import Message

# The knowledge defaults, stated once. Local: what made the shipped
# data/knowledge/fmnerg-smollm2-135m.jsonl.gz (SmolLM2-135M-Instruct, greedy, bfloat16, 48 new tokens:
# after one or two sentences a 135M model mostly repeats itself). OpenAI: the paper's ChatGPT.
DEFAULT_MODELS: dict[str, str] = {"local": "smollm2-135m", "openai": "gpt-3.5-turbo"}
DEFAULT_MAX_NEW_TOKENS: dict[str, int] = {"local": 48, "openai": 256}
DEFAULT_LOCAL_DTYPE = "bfloat16"


@dataclass(frozen=True)
class Request:
    key: str  # the prompt hash
    messages: list[Message]


@dataclass(frozen=True)
class Completion:
    text: str
    truncated: bool  # stopped by the token limit, not by the model
    seconds: float


@dataclass(frozen=True)
class Failure:
    error: str
    attempts: int


Result = Completion | Failure
ResultCallback = Callable[[Request, Result], None]


class LLMBackend(Protocol):
    name: str  # "local" or "openai": the first part of the cache key
    model: str  # the second part

    def settings(self) -> dict[str, Any]:
        """Everything besides the messages that shapes an answer (hashed into the cache key)."""
        ...

    def run(self, requests: Sequence[Request], on_result: ResultCallback, stop: threading.Event) -> None: ...

