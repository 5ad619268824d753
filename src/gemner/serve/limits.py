"""What `gemner serve` accepts and how it batches: one settings object, every default in one place."""

from __future__ import annotations

import ipaddress
import os
from dataclasses import asdict, dataclass, field

TOKEN_ENV = "GEMNER_SERVE_TOKEN"  # the bearer token, read from the environment only


@dataclass(frozen=True)
class ServeSettings:
    """Limits and batching of the HTTP service. Over a size limit the answer is 413; text too long or a
    broken image is 422; a full queue is 429 with `Retry-After`; a request past `timeout_s` is 504."""

    host: str = "127.0.0.1"
    port: int = 8000
    workers: int = 1  # processes, each with its own copy of the models
    threads: int | None = None  # torch threads per process (None: torch's default)
    max_batch: int = 16  # posts per pipeline call; 1 serves one post at a time
    batch_window_ms: float = 10.0  # how long the free pipeline waits for expected callers (batcher.py)
    max_queue: int = 256  # posts waiting (not yet in a batch); beyond it: 429
    timeout_s: float = 60.0  # from arrival to answer
    max_body_bytes: int = 16 * 1024 * 1024  # a whole request (base64 images grow by a third)
    max_image_bytes: int = 10 * 1024 * 1024  # one image file
    max_image_pixels: int = 25_000_000  # width x height, checked from the header before decoding
    max_text_chars: int = 5_000  # one post's text
    max_batch_posts: int = 64  # posts in one `/v1/entities:batch` request
    token: str | None = field(default=None, repr=False)  # never printed, logged or sent anywhere

    def __post_init__(self) -> None:
        for name in ("port", "workers", "max_batch", "max_queue", "max_body_bytes", "max_image_bytes",
                     "max_image_pixels", "max_text_chars", "max_batch_posts"):
            if getattr(self, name) < (0 if name == "port" else 1):
                raise ValueError(f"{name} must be positive, got {getattr(self, name)}")
        if self.threads is not None and self.threads < 1:
            raise ValueError(f"threads must be positive, got {self.threads}")
        if self.timeout_s <= 0 or self.batch_window_ms < 0:
            raise ValueError("timeout_s must be positive and batch_window_ms not negative")

    @classmethod
    def from_environment(cls, **values) -> ServeSettings:
        """Settings with the bearer token taken from `GEMNER_SERVE_TOKEN` (empty means none)."""
        return cls(**values, token=os.environ.get(TOKEN_ENV, "").strip() or None)

    def public(self) -> dict[str, object]:
        """What `/v1/config` shows: every limit, and whether a token is required (never the token)."""
        shown: dict[str, object] = {k: v for k, v in asdict(self).items() if k not in ("token", "host", "port")}
        shown["token_required"] = self.token is not None
        return shown

    @property
    def is_local(self) -> bool:
        """Whether `host` is reachable from this machine only."""
        if self.host == "localhost":
            return True
        try:
            return ipaddress.ip_address(self.host).is_loopback
        except ValueError:
            return False
