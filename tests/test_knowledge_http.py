"""The OpenAI-compatible backend against a real HTTP server on 127.0.0.1 that injects timeouts, 500s,
429s, malformed JSON, dropped connections and slow replies: every item ends answered or reported,
none twice, none lost. Hostile servers too: a redirect to another origin gets neither the key nor
trust, a trickled reply cannot outlast the timeout, a flood is cut at the size cap, an echoed key is
masked, and `gemner knowledge build` fails loudly when posts fail."""

from __future__ import annotations

import json
import random
import socket
import threading
import time
from collections import Counter
from pathlib import Path

import pytest
from typer.testing import CliRunner

from gemner.cli.main import app
from gemner.data.limits import KNOWLEDGE_TWEET_CHARS
from gemner.knowledge.backends import Completion, Failure, Request
from gemner.knowledge.cache import KnowledgeCache
from gemner.knowledge.job import SourcePost, run_job
from gemner.knowledge.openai_llm import (
    DEFAULT_MAX_REPLY_BYTES,
    OpenAIChatBackend,
    OpenAIConfig,
    backoff_delay,
    parse_retry_after,
)
from gemner.knowledge.prompt import build_messages
from test_knowledge_support import ChatServer

KEY_ENV = "GEMNER_TEST_LLM_KEY"
SECRET = "sk-test-0123456789-secret"
runner = CliRunner()


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
        assert report.long_posts == []
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


def test_a_long_post_is_asked_about_its_start_and_named_in_the_report(tmp_path, monkeypatch):
    monkeypatch.setenv(KEY_ENV, SECRET)
    long_text = "word " * (KNOWLEDGE_TWEET_CHARS // 4)
    posts = [SourcePost("short", "test", TWEETS[0]), SourcePost("long", "test", long_text)]
    with ChatServer() as server, KnowledgeCache(tmp_path / "k.sqlite") as cache:
        report = run_job(cache, OpenAIChatBackend(config(server)), "unit", posts, {})
    assert report.long_posts == ["long"] and report.answered == 2
    assert sorted(len(tweet) for tweet in server.attempts) == [len(TWEETS[0]), KNOWLEDGE_TWEET_CHARS]


def test_backoff_and_retry_after_parsing():
    rng = random.Random(3)
    delays = [backoff_delay(n, 1.0, 8.0, None, rng) for n in range(6) for _ in range(50)]
    assert all(0 <= d <= 8.0 for d in delays) and max(delays) > 4.0  # full jitter, capped
    assert backoff_delay(0, 1.0, 60.0, retry_after=5.0, rng=rng) >= 5.0
    assert parse_retry_after("2.5") == 2.5 and parse_retry_after("soon") is None
    assert parse_retry_after("Wed, 21 Oct 2015 07:28:00 GMT", now=1445412470.0) == pytest.approx(10.0)


# ---- hostile servers: redirects, trickles, floods, echoes --------------------------------------------

def ask(backend: OpenAIChatBackend, tweet: str) -> tuple[object, float]:
    began = time.monotonic()
    result = backend.complete(Request("k", build_messages(tweet, "")))
    return result, time.monotonic() - began


def test_a_redirect_to_another_origin_is_not_followed_and_the_key_stays_home(monkeypatch):
    monkeypatch.setenv(KEY_ENV, SECRET)
    with ChatServer() as elsewhere, ChatServer(redirect_to=elsewhere.base_url + "/chat/completions") as server:
        result, _ = ask(OpenAIChatBackend(config(server)), "follow me [redirect]")
    assert isinstance(result, Failure) and result.attempts == 1  # refused at once, not retried, not trusted
    assert f"{server.base_url}/chat/completions redirected to another origin" in result.error
    assert f"{elsewhere.base_url}/chat/completions" in result.error and SECRET not in result.error
    assert elsewhere.attempts == {} and elsewhere.auth_headers == set()  # nothing, key least of all, went there


def test_timeout_bounds_the_whole_attempt_when_a_server_trickles_its_reply(monkeypatch):
    monkeypatch.delenv(KEY_ENV, raising=False)
    with ChatServer() as server:  # a byte every 30 ms: no single read waits 0.5 s, the whole reply takes ~6 s
        result, seconds = ask(OpenAIChatBackend(config(server, timeout=0.5, retries=0)), "trickle [drip:0.03]")
    assert isinstance(result, Failure) and "timed out after 0.5s" in result.error
    assert seconds < 1.5


@pytest.mark.parametrize("mode", ["huge", "hugestream"])
def test_a_reply_over_the_size_cap_is_refused(mode, monkeypatch):
    monkeypatch.delenv(KEY_ENV, raising=False)
    with ChatServer() as server:
        backend = OpenAIChatBackend(config(server, timeout=5.0))
        assert backend.config.max_reply_bytes == DEFAULT_MAX_REPLY_BYTES == 1 << 20
        result, _ = ask(backend, f"flood [{mode}:3000000]")
        fine, _ = ask(backend, f"just under the cap [{mode}:1000000]")
    assert isinstance(result, Failure) and result.attempts == 1
    assert f"reply larger than {DEFAULT_MAX_REPLY_BYTES} bytes" in result.error
    assert isinstance(fine, Completion) and len(fine.text) > 1_000_000


def test_a_key_the_server_echoes_in_its_answer_is_masked(monkeypatch):
    monkeypatch.setenv(KEY_ENV, SECRET)
    with ChatServer() as server:
        result, _ = ask(OpenAIChatBackend(config(server)), "who am I [echo]")
    assert isinstance(result, Completion) and SECRET not in result.text and "Bearer ***" in result.text
    monkeypatch.setenv(KEY_ENV, "EMPTY")  # a local server's placeholder is no secret: the answer stays whole
    with ChatServer() as server:
        result, _ = ask(OpenAIChatBackend(config(server)), "who am I [echo]")
    assert isinstance(result, Completion) and "Bearer EMPTY" in result.text


# ---- the same, met through `gemner knowledge build` / `export` -------------------------------------------

def build_args(tmp_path: Path, base_url: str, tweets: list[str], *extra: str) -> list[str]:
    posts = tmp_path / "posts.jsonl"
    posts.write_text("".join(json.dumps({"id": f"p{i}", "tokens": t.split()}) + "\n" for i, t in enumerate(tweets)))
    return ["knowledge", "build", "--posts", str(posts), "--backend", "openai", "--model", "test-model",
            "--base-url", base_url, "--api-key-env", KEY_ENV, "--cache", str(tmp_path / "cache" / "k.sqlite"),
            "--retries", "0", "--timeout", "2", *extra]


def unused_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def test_build_exits_non_zero_and_counts_failures_when_the_server_is_unreachable(tmp_path, monkeypatch):
    monkeypatch.setenv(KEY_ENV, SECRET)
    base_url = f"http://127.0.0.1:{unused_port()}/v1"
    result = runner.invoke(app, build_args(tmp_path, base_url, ["one tweet", "another tweet", "a third"]))
    assert result.exit_code == 1, result.output
    assert "error: 3 of 3 posts failed" in result.output and "connection failed" in result.output
    assert SECRET not in result.output


def test_build_exits_non_zero_when_some_posts_fail(tmp_path):
    with ChatServer() as server:
        result = runner.invoke(app, build_args(tmp_path, server.base_url, ["fine", "refused [fail:400:9]"]))
    assert result.exit_code == 1, result.output
    assert "error: 1 of 2 posts failed" in result.output and "HTTP 400" in result.output


def test_build_refuses_a_cross_origin_redirect_and_names_both_urls(tmp_path, monkeypatch):
    monkeypatch.setenv(KEY_ENV, SECRET)
    with ChatServer() as elsewhere, ChatServer(redirect_to=elsewhere.base_url + "/chat/completions") as server:
        result = runner.invoke(app, build_args(tmp_path, server.base_url, ["follow me [redirect]"]))
    assert result.exit_code == 1, result.output
    assert server.base_url in result.output and elsewhere.base_url in result.output
    assert "not followed" in result.output and SECRET not in result.output
    assert elsewhere.auth_headers == set()


def test_build_timeout_bounds_an_attempt_against_a_trickling_server(tmp_path):
    with ChatServer() as server:
        began = time.monotonic()
        result = runner.invoke(app, build_args(tmp_path, server.base_url, ["trickle [drip:0.03]"], "--timeout", "1"))
        seconds = time.monotonic() - began
    assert result.exit_code == 1 and "timed out after 1s" in result.output, result.output
    assert seconds < 4.0  # the trickled reply alone takes ~6 s


def test_an_echoed_key_reaches_neither_the_cache_nor_the_export(tmp_path, monkeypatch):
    monkeypatch.setenv(KEY_ENV, SECRET)
    with ChatServer() as server:
        result = runner.invoke(app, build_args(tmp_path, server.base_url, ["who am I [echo]"]))
    assert result.exit_code == 0, result.output
    exported = tmp_path / "knowledge.jsonl"
    result = runner.invoke(app, ["knowledge", "export", "--cache", str(tmp_path / "cache" / "k.sqlite"),
                                 "--output", str(exported)])
    assert result.exit_code == 0, result.output
    assert "Bearer ***" in exported.read_text()
    for path in [exported, *(tmp_path / "cache").iterdir()]:  # the SQLite file and its journal
        assert SECRET.encode() not in path.read_bytes(), path


@pytest.fixture(scope="module")
def recognizer_dir(tmp_path_factory) -> Path:
    from gemner.recognize import Recognizer
    from gemner.recognize.config import RecognizerConfig
    from gemner.recognize.testing import TINY_SCHEMA, make_tiny_encoder

    root = tmp_path_factory.mktemp("recognizer")
    encoder = make_tiny_encoder(root / "encoder")
    Recognizer.build(RecognizerConfig(encoder=str(encoder)), TINY_SCHEMA).save_pretrained(root / "checkpoint")
    return root / "checkpoint"


def test_predict_records_say_the_knowledge_stage_did_not_run_for_a_failed_post(recognizer_dir, tmp_path):
    posts = tmp_path / "posts.jsonl"
    posts.write_text(json.dumps({"id": "fine", "tokens": ["obama", "visits", "paris"]}) + "\n"
                     + json.dumps({"id": "refused", "tokens": ["france", "[fail:400:99]"]}) + "\n")
    with ChatServer() as server:
        config = tmp_path / "pipeline.yaml"
        config.write_text(json.dumps({
            "name": "llm-knowledge", "recognizer": {"model": str(recognizer_dir)},
            "knowledge": {"llm": {"backend": "openai", "model": "test-model", "base_url": server.base_url,
                                  "api_key_env": KEY_ENV}, "cache": str(tmp_path / "k.sqlite")},
            "rerank": {"enabled": False}, "ground": {"enabled": False}}))
        output = tmp_path / "out.jsonl"
        result = runner.invoke(app, ["predict", "--config", str(config), "--input", str(posts), "--output",
                                     str(output), "--no-progress"])
    assert result.exit_code == 0, result.output
    records = {record["id"]: record for record in map(json.loads, output.read_text().splitlines())}
    assert records["fine"]["stages"]["knowledge"] == "on"
    assert records["refused"]["stages"]["knowledge"].startswith("not run for this post: LLM HTTP 400")
