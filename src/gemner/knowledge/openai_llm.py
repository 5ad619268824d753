"""OpenAI-compatible chat-completions backend over plain HTTP (standard library only).

Works with any server speaking `POST {base_url}/chat/completions` (OpenAI, vLLM, llama.cpp, Ollama, ...).
The API key is read from an environment variable whose *name* is configurable; its value is never
logged, stored, put into an error message, or sent anywhere but the configured origin: redirects are
never followed (a POST cannot follow one without being rewritten, and following one to another host
would hand it the key), and a key a server echoes back is masked before the answer is kept.

Each attempt has one deadline, `timeout` seconds from connecting to the last byte of the reply, so a
server that trickles bytes cannot hold it longer; replies over `max_reply_bytes` are refused unread.
Requests run on a bounded thread pool; each one is retried on 429, 5xx, timeouts, dropped connections
and malformed replies, with exponential backoff and full jitter (a server's Retry-After is honoured).
Other 4xx answers, redirects and oversized replies fail at once. What still fails is returned as a
`Failure` and ends up in the run's final report.
"""

from __future__ import annotations

import email.utils
import http.client
import json
import os
import random
import threading
import time
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Sequence
from concurrent.futures import FIRST_COMPLETED, Future, ThreadPoolExecutor, wait
from dataclasses import dataclass
from typing import Any

from .backends import Completion, Failure, Request, Result, ResultCallback
from .http_transport import Deadline, display_url, same_origin

DEFAULT_KEY_ENV = "OPENAI_API_KEY"
# A chat completion of a few hundred tokens is a few KiB; 1 MiB leaves room for verbose servers
# while a runaway or hostile reply cannot fill memory.
DEFAULT_MAX_REPLY_BYTES = 1 << 20
_READ_CHUNK = 64 * 1024
MIN_SECRET_LENGTH = 8  # shorter "keys" are placeholders, not secrets (real API keys are 20+ characters)
RETRY_STATUSES = frozenset({408, 409, 425, 429, 500, 502, 503, 504})


@dataclass(frozen=True)
class OpenAIConfig:
    model: str = "gpt-3.5-turbo"  # the paper's ChatGPT
    base_url: str = "https://api.openai.com/v1"
    api_key_env: str = DEFAULT_KEY_ENV
    max_tokens: int = 256
    temperature: float = 0.0
    threads: int = 8  # requests in flight at once
    timeout: float = 60.0  # seconds per attempt, connecting to the reply's last byte
    max_reply_bytes: int = DEFAULT_MAX_REPLY_BYTES
    retries: int = 5  # attempts after the first
    backoff_base: float = 1.0  # seconds; the n-th retry waits up to base * 2**n
    backoff_max: float = 60.0


class RetryableError(Exception):
    def __init__(self, message: str, retry_after: float | None = None):
        super().__init__(message)
        self.retry_after = retry_after


class PermanentError(Exception):
    pass


class _Stopped(Exception):
    """The job asked to stop while this request was waiting to retry."""


def parse_retry_after(value: str | None, now: float | None = None) -> float | None:
    """Seconds to wait from a Retry-After header: a number of seconds or an HTTP date."""
    if not value:
        return None
    value = value.strip()
    try:
        return max(0.0, float(value))
    except ValueError:
        pass
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    return max(0.0, when.timestamp() - (time.time() if now is None else now))


def backoff_delay(attempt: int, base: float, cap: float, retry_after: float | None = None,
                  rng: random.Random | None = None) -> float:
    """Full-jitter exponential backoff; a server's Retry-After is a floor, never shortened."""
    rng = rng or random
    delay = rng.uniform(0.0, min(cap, base * (2 ** attempt)))
    if retry_after is not None:
        delay = max(delay, min(retry_after, cap) + rng.uniform(0.0, base * 0.1))
    return delay


def completion_from_json(body: bytes) -> tuple[str, bool]:
    """(text, truncated) from a chat-completions reply; RetryableError when the reply is malformed."""
    try:
        data = json.loads(body.decode("utf-8"))
        choice = data["choices"][0]
        content = choice["message"]["content"]
    except (UnicodeDecodeError, json.JSONDecodeError, KeyError, IndexError, TypeError) as err:
        raise RetryableError(f"malformed reply ({type(err).__name__})") from None
    if not isinstance(content, str):
        raise RetryableError("malformed reply (content is not text)")
    return content, choice.get("finish_reason") == "length"


class OpenAIChatBackend:
    name = "openai"

    def __init__(self, config: OpenAIConfig, *, rng: random.Random | None = None):
        self.config = config
        self.model = config.model
        self.url = config.base_url.rstrip("/") + "/chat/completions"
        self._rng = rng or random.Random()
        self._rng_lock = threading.Lock()
        self.key_missing = not os.environ.get(config.api_key_env)

    def settings(self) -> dict[str, Any]:
        return {"max_tokens": self.config.max_tokens, "temperature": self.config.temperature}

    # ---- one request -----------------------------------------------------------------------------
    def _headers(self) -> dict[str, str]:
        headers = {"Content-Type": "application/json", "Accept": "application/json"}
        key = os.environ.get(self.config.api_key_env)
        if key:
            headers["Authorization"] = f"Bearer {key}"
        return headers

    def _scrub(self, text: str, in_answer: bool = False) -> str:
        """Never let the key into a message or a kept answer, whatever a server echoes back. In answers,
        values too short to be secrets (placeholders such as `EMPTY` for local servers) stay: masking
        them would mangle the text."""
        key = os.environ.get(self.config.api_key_env)
        if not key or (in_answer and len(key) < MIN_SECRET_LENGTH):
            return text
        return text.replace(key, "***")

    def _attempt(self, request: Request) -> tuple[str, bool]:
        body = json.dumps({
            "model": self.config.model, "messages": request.messages,
            "max_tokens": self.config.max_tokens, "temperature": self.config.temperature,
        }).encode("utf-8")
        http_request = urllib.request.Request(self.url, data=body, headers=self._headers(), method="POST")
        timed_out = f"timed out after {self.config.timeout:g}s"
        with Deadline(self.config.timeout) as deadline:
            try:
                with deadline.opener().open(http_request, timeout=self.config.timeout) as response:
                    reply = self._read_reply(response)
                if deadline.expired:  # the cut-off reply may even parse: it is still a timeout
                    raise RetryableError(timed_out)
                text, truncated = completion_from_json(reply)
                return self._scrub(text, in_answer=True), truncated
            except urllib.error.HTTPError as err:
                with err:  # the error reply's connection is closed here, read or not
                    if deadline.expired:
                        raise RetryableError(timed_out) from None
                    raise self._http_error(err) from None
            except TimeoutError:
                raise RetryableError(timed_out) from None
            except urllib.error.URLError as err:
                if deadline.expired or isinstance(err.reason, TimeoutError):
                    raise RetryableError(timed_out) from None
                raise RetryableError(self._scrub(f"connection failed ({err.reason})")) from None
            except (ConnectionError, http.client.HTTPException, OSError) as err:
                if deadline.expired:
                    raise RetryableError(timed_out) from None
                raise RetryableError(self._scrub(f"connection failed ({type(err).__name__})")) from None

    def _read_reply(self, response: Any) -> bytes:
        """The whole body, refused once it passes `max_reply_bytes` (before reading, when announced)."""
        cap = self.config.max_reply_bytes
        too_big = PermanentError(f"reply larger than {cap} bytes (max_reply_bytes); not read")
        announced = response.headers.get("Content-Length")
        if announced and announced.strip().isdigit() and int(announced) > cap:
            raise too_big
        chunks, size = [], 0
        while chunk := response.read(min(_READ_CHUNK, cap + 1 - size)):
            chunks.append(chunk)
            size += len(chunk)
            if size > cap:
                raise too_big
        return b"".join(chunks)

    def _http_error(self, err: urllib.error.HTTPError) -> Exception:
        """An error status as the exception `complete` acts on; a redirect names both URLs."""
        if 300 <= err.code < 400:
            target = urllib.parse.urljoin(self.url, err.headers.get("Location", "") or "")
            where = "another URL" if same_origin(target, self.url) else "another origin"
            return PermanentError(self._scrub(
                f"HTTP {err.code}: {display_url(self.url)} redirected to {where}, {display_url(target)}; "
                "not followed (the API key is only ever sent to the configured URL): "
                "set the base URL to the server that answers"))
        detail = _error_detail(err)
        message = self._scrub(f"HTTP {err.code}{': ' + detail if detail else ''}")
        if err.code in RETRY_STATUSES:
            return RetryableError(message, parse_retry_after(err.headers.get("Retry-After")))
        return PermanentError(message)

    def complete(self, request: Request, stop: threading.Event | None = None) -> Result:
        """One request with retries: a Completion, or a Failure naming the last error."""
        stop = stop or threading.Event()
        attempts = 0
        began = time.perf_counter()
        while True:
            attempts += 1
            try:
                text, truncated = self._attempt(request)
                return Completion(text, truncated, time.perf_counter() - began)
            except PermanentError as err:
                return Failure(str(err), attempts)
            except RetryableError as err:
                if attempts > self.config.retries:
                    return Failure(f"{err} (gave up after {attempts} attempts)", attempts)
                with self._rng_lock:
                    delay = backoff_delay(attempts - 1, self.config.backoff_base, self.config.backoff_max,
                                          err.retry_after, self._rng)
                if stop.wait(delay):
                    raise _Stopped from None

    # ---- many requests ---------------------------------------------------------------------------
    def run(self, requests: Sequence[Request], on_result: ResultCallback, stop: threading.Event) -> None:
        """Complete every request with at most `threads` in flight; results reach `on_result` in this
        thread as they arrive. Once `stop` is set, queued requests are dropped, waiting retries end,
        and requests already on the wire are finished and reported."""
        pending: dict[Future, Request] = {}
        queue = list(reversed(requests))
        with ThreadPoolExecutor(max_workers=max(1, self.config.threads), thread_name_prefix="llm") as pool:
            try:
                self._drive(pool, queue, pending, on_result, stop)
            except BaseException:
                stop.set()  # a second Ctrl-C: end waiting retries so the pool can shut down now
                raise

    def _drive(self, pool: ThreadPoolExecutor, queue: list[Request], pending: dict[Future, Request],
               on_result: ResultCallback, stop: threading.Event) -> None:
        while queue or pending:
            while queue and len(pending) < max(1, self.config.threads) and not stop.is_set():
                request = queue.pop()
                pending[pool.submit(self.complete, request, stop)] = request
            if not pending:
                break
            done, _ = wait(pending, timeout=0.2, return_when=FIRST_COMPLETED)
            for future in done:
                request = pending.pop(future)
                try:
                    result = future.result()
                except _Stopped:
                    continue  # not reported: the job redoes it on resume
                on_result(request, result)
            if stop.is_set():
                queue.clear()


def _error_detail(err: urllib.error.HTTPError) -> str:
    """A short, single-line reason from an error reply's JSON body, if it has one."""
    try:
        data = json.loads(err.read(4096).decode("utf-8", "replace"))
        error = data.get("error", "") if isinstance(data, dict) else ""
        message = error.get("message", "") if isinstance(error, dict) else error
    except (json.JSONDecodeError, AttributeError, OSError, ValueError):
        return ""
    return " ".join(str(message).split())[:200]
