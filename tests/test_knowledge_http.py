"""The OpenAI-compatible backend against a real HTTP server on 127.0.0.1 that injects timeouts, 500s,
429s, malformed JSON, dropped connections and slow replies: every item ends answered or reported,
none twice, none lost."""

from __future__ import annotations

import random
import threading
from collections import Counter

import pytest

from gemner.knowledge.backends import Completion, Failure, Request
from gemner.knowledge.cache import KnowledgeCache
from gemner.knowledge.job import SourcePost, run_job
from gemner.knowledge.openai_llm import OpenAIChatBackend, OpenAIConfig, backoff_delay, parse_retry_after
from gemner.knowledge.prompt import build_messages
from test_knowledge_support import ChatServer

KEY_ENV = "GEMNER_TEST_LLM_KEY"
SECRET = "sk-test-0123456789-secret"


def config(server: ChatServer, **overrides) -> OpenAIConfig:
    base = dict(model="test-model", base_url=server.base_url, api_key_env=KEY_ENV, threads=4, timeout=0.4,
                retries=3, backoff_base=0.01, backoff_max=0.5)
    return OpenAIConfig(**{**base, **overrides})


TWEETS = (
    [f"plain tweet {i}" for i in range(12)]
    + ["server error [fail:500:2]", "rate limited [fail:429:1]", "too slow [fail:timeout:1]",
       "broken json [fail:malformed:2]", "hung up [fail:drop:1]", "slow but fine [slow:0.15]",
       "always down [fail:500:99]", "bad request [fail:400:1]"]
)


def test_every_item_answered_or_reported_exactly_once(monkeypatch):
    monkeypatch.setenv(KEY_ENV, SECRET)
    with ChatServer() as server:
        backend = OpenAIChatBackend(config(server), rng=random.Random(0))
        requests = [Request(f"k{i}", build_messages(tweet, "")) for i, tweet in enumerate(TWEETS)]
        results: list[tuple[str, object]] = []
        backend.run(requests, lambda r, res: results.append((r.key, res)), threading.Event())
    counts = Counter(key for key, _ in results)
    assert set(counts) == {r.key for r in requests} and set(counts.values()) == {1}
    by_tweet = {TWEETS[int(key[1:])]: result for key, result in results}
    failed = {tweet for tweet, result in by_tweet.items() if isinstance(result, Failure)}
    assert failed == {"always down [fail:500:99]", "bad request [fail:400:1]"}
    assert by_tweet["always down [fail:500:99]"].attempts == 4  # 1 + 3 retries
    assert by_tweet["bad request [fail:400:1]"].attempts == 1  # a 4xx is not retried
    assert "HTTP 400" in by_tweet["bad request [fail:400:1]"].error
    for tweet, result in by_tweet.items():
        if tweet not in failed:
            assert isinstance(result, Completion) and result.text == '{"explanation": "about ' + tweet + '"}'
    # the server saw each retryable fault and then the success, and never more than `threads` at once
    assert [o for _, o in server.attempts["server error [fail:500:2]"]] == ["500", "500", "ok"]
    assert [o for _, o in server.attempts["broken json [fail:malformed:2]"]] == ["malformed", "malformed", "ok"]
    assert [o for _, o in server.attempts["hung up [fail:drop:1]"]][-1] == "ok"
    assert server.max_in_flight <= 4
    # the key went to the server, but never into a message, even when the server echoed it back
    assert server.auth_headers == {f"Bearer {SECRET}"}
    assert all(SECRET not in result.error for _, result in results if isinstance(result, Failure))


def test_retry_after_is_honoured(monkeypatch):
    monkeypatch.delenv(KEY_ENV, raising=False)
    with ChatServer() as server:
        backend = OpenAIChatBackend(config(server, backoff_base=0.001), rng=random.Random(1))
        result = backend.complete(Request("k", build_messages("wait for me [fail:429:1]", "")))
        assert isinstance(result, Completion)
    (t429, first), (t_ok, second) = server.attempts["wait for me [fail:429:1]"]
    assert (first, second) == ("429", "ok")
    assert t_ok - t429 >= 0.2  # the server said Retry-After: 0.2; our own backoff alone would be ~1 ms
    assert server.auth_headers == {None}  # no key in the environment: no Authorization header


def test_stop_drops_queued_requests_and_reports_none_twice():
    with ChatServer(delay=0.1) as server:
        backend = OpenAIChatBackend(config(server, threads=2))
        requests = [Request(f"k{i}", build_messages(f"tweet {i}", "")) for i in range(20)]
        stop = threading.Event()
        seen: list[str] = []

        def on_result(request, result):
            seen.append(request.key)
            if len(seen) == 3:
                stop.set()

        backend.run(requests, on_result, stop)
    assert 3 <= len(seen) <= 5 and len(set(seen)) == len(seen)  # in-flight ones finish, the rest wait
    assert sum(len(a) for a in server.attempts.values()) == len(seen)


def test_job_over_http_records_failures_then_retries_them_on_resume(tmp_path, monkeypatch):
    monkeypatch.setenv(KEY_ENV, SECRET)
    posts = [SourcePost(f"p{i}", "test", tweet) for i, tweet in enumerate(TWEETS)]
    posts.append(SourcePost("dup", "test", TWEETS[0]))  # the same prompt is asked once
    with ChatServer() as server, KnowledgeCache(tmp_path / "k.sqlite") as cache:
        backend = OpenAIChatBackend(config(server, retries=1))  # 2 attempts: faults x2 and 4xx fail
        report = run_job(cache, backend, "unit", posts, {})
        assert report.unique_prompts == len(TWEETS) and report.answered == len(TWEETS) - 4
        failed_posts = sorted(p for ids in report.failures.values() for p in ids)
        assert failed_posts == ["p12", "p15", "p18", "p19"]
        assert "HTTP 400: injected 400 for Bearer ***" in report.failures  # the echoed key is masked
        rows = {row.post_id: row for row in cache.export_rows("unit", "openai", "test-model")}
        assert rows["dup"].answer == rows["p0"].answer and rows["p0"].answer.explanation == f"about {TWEETS[0]}"
        assert rows["p18"].answer is None and len(cache.failures("openai", "test-model")) == 4
        asked_before = sum(len(a) for a in server.attempts.values())
        again = run_job(cache, backend, "unit", posts, {})  # resume: only the failures are asked again
        assert again.already_done == len(TWEETS) - 4 and again.answered == 3 and again.failed == 1
        assert sum(len(a) for a in server.attempts.values()) - asked_before == 3 + 2
        p18_hash = cache.conn.execute("SELECT prompt_hash FROM items WHERE post_id = 'p18'").fetchone()[0]
        assert list(cache.failures("openai", "test-model")) == [p18_hash]


def test_backoff_and_retry_after_parsing():
    rng = random.Random(3)
    delays = [backoff_delay(n, 1.0, 8.0, None, rng) for n in range(6) for _ in range(50)]
    assert all(0 <= d <= 8.0 for d in delays) and max(delays) > 4.0  # full jitter, capped
    assert backoff_delay(0, 1.0, 60.0, retry_after=5.0, rng=rng) >= 5.0
    assert parse_retry_after("2.5") == 2.5 and parse_retry_after("soon") is None
    assert parse_retry_after("Wed, 21 Oct 2015 07:28:00 GMT", now=1445412470.0) == pytest.approx(10.0)
