"""The batch job survives `kill -9` and Ctrl-C: a real `gemner knowledge build` subprocess talking to a
real local chat-completions server is killed mid-run, then resumed; the cache ends with every prompt
answered exactly once and nothing the server answered is lost on Ctrl-C."""

from __future__ import annotations

import gzip
import json
import signal
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

from gemner.knowledge.export import read_knowledge
from test_knowledge_support import ChatServer

N_POSTS = 60


def write_posts(folder: Path) -> Path:
    path = folder / "posts.jsonl"
    rows = [{"id": f"u{i}", "text": f"tweet number {i} about Taylor Swift"} for i in range(N_POSTS)]
    rows.append({"id": "u0", "text": "a repeated id is reported and skipped"})
    path.write_text("\n".join(json.dumps(r) for r in rows) + "\n", encoding="utf-8")
    return path


def build_command(posts: Path, cache: Path, server: ChatServer) -> list[str]:
    return [sys.executable, "-m", "gemner.cli.main", "knowledge", "build", "--posts", str(posts),
            "--backend", "openai", "--model", "test-model", "--base-url", server.base_url,
            "--api-key-env", "GEMNER_TEST_LLM_KEY", "--threads", "2", "--cache", str(cache), "--timeout", "5"]


def answered(cache: Path) -> int:
    if not cache.exists():
        return 0
    try:
        with sqlite3.connect(f"file:{cache}?mode=ro", uri=True, timeout=5) as conn:
            return conn.execute("SELECT COUNT(*) FROM answers").fetchone()[0]
    except sqlite3.OperationalError:  # tables not created yet
        return 0


def start_and_wait(command: list[str], cache: Path, at_least: int) -> subprocess.Popen:
    process = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    deadline = time.monotonic() + 30
    while answered(cache) < at_least:
        assert process.poll() is None, process.communicate()[0]
        assert time.monotonic() < deadline, "the job made no progress"
        time.sleep(0.02)
    return process


def ok_replies(server: ChatServer) -> dict[str, int]:
    return {tweet: sum(o == "ok" for _, o in attempts) for tweet, attempts in server.attempts.items()}


def test_kill_9_then_resume_answers_every_post_exactly_once(tmp_path):
    posts, cache = write_posts(tmp_path), tmp_path / "cache.sqlite"
    with ChatServer(delay=0.05) as server:
        command = build_command(posts, cache, server)
        process = start_and_wait(command, cache, at_least=15)
        process.send_signal(signal.SIGKILL)
        process.wait(timeout=10)
        kept = answered(cache)
        assert 15 <= kept < N_POSTS
        with sqlite3.connect(cache) as conn:
            assert conn.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
        asked_before_resume = sum(ok_replies(server).values())
        finished = subprocess.run(command, capture_output=True, text=True, timeout=60)
        assert finished.returncode == 0, finished.stderr
        assert f"{kept} were cached" in finished.stderr and "done:" in finished.stderr
        assert "duplicate id 'u0'" in finished.stderr  # bad input reported, with file and line
    replies = ok_replies(server)
    assert len(replies) == N_POSTS
    # only the requests in flight at the kill (at most --threads 2) could have been answered twice
    assert sum(replies.values()) - N_POSTS <= 2 and asked_before_resume - kept <= 2
    with sqlite3.connect(cache) as conn:
        rows = conn.execute("SELECT prompt_hash, COUNT(*) FROM answers GROUP BY prompt_hash").fetchall()
        assert len(rows) == N_POSTS and {count for _, count in rows} == {1}

    output = tmp_path / "knowledge.jsonl.gz"
    exported = subprocess.run([sys.executable, "-m", "gemner.cli.main", "knowledge", "export", "--cache", str(cache),
                               "--output", str(output)], capture_output=True, text=True, timeout=60)
    assert exported.returncode == 0, exported.stderr
    with gzip.open(output, "rt", encoding="utf-8") as handle:
        lines = [json.loads(line) for line in handle]
    assert sorted(r["id"] for r in lines) == sorted(f"u{i}" for i in range(N_POSTS))
    knowledge = read_knowledge(output)
    assert knowledge["u7"] == ("about tweet number 7 about Taylor Swift", "")


def test_ctrl_c_keeps_every_answer_and_says_how_to_resume(tmp_path):
    posts, cache = write_posts(tmp_path), tmp_path / "cache.sqlite"
    with ChatServer(delay=0.1) as server:
        command = build_command(posts, cache, server)
        process = start_and_wait(command, cache, at_least=6)
        process.send_signal(signal.SIGINT)
        output, _ = process.communicate(timeout=30)
    assert process.returncode == 130, output
    assert "resume with:" in output and "knowledge build --posts" in output
    # every reply the server sent, including those in flight at Ctrl-C, is in the cache
    assert answered(cache) == sum(ok_replies(server).values()) < N_POSTS
    partial = subprocess.run([sys.executable, "-m", "gemner.cli.main", "knowledge", "export", "--cache", str(cache),
                              "--output", str(tmp_path / "k.jsonl")], capture_output=True, text=True, timeout=60)
    assert partial.returncode == 2 and "have no answer yet" in partial.stderr  # refuses a silent partial export
