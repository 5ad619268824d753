"""Tiny local models for the knowledge tests, built from configs (no download, no real weights)."""

from __future__ import annotations

import re
from pathlib import Path

from gemner.knowledge.prompt import TABLE6_EXAMPLES, render_answer, render_query

CHATML = (
    "{% for message in messages %}{{ '<|im_start|>' + message['role'] + '\n' + message['content'] "
    "+ '<|im_end|>' + '\n' }}{% endfor %}{% if add_generation_prompt %}{{ '<|im_start|>assistant\n' }}{% endif %}"
)
SPECIALS = ["<pad>", "<unk>", "<|im_start|>", "<|im_end|>"]


def tiny_tokenizer(extra_text: str = "") -> object:
    """A word-level tokenizer over the Table 6 prompts' words, with a ChatML chat template."""
    from tokenizers import Tokenizer, models, pre_tokenizers
    from transformers import PreTrainedTokenizerFast

    corpus = " ".join(render_query(e.tweet, e.caption) + " " + render_answer(e.explanation) for e in TABLE6_EXAMPLES)
    words = sorted(set(re.findall(r"\w+|[^\w\s]", corpus + " " + extra_text + " user assistant system")))
    vocab = {token: index for index, token in enumerate(SPECIALS + words)}
    core = Tokenizer(models.WordLevel(vocab, unk_token="<unk>"))
    core.pre_tokenizer = pre_tokenizers.Whitespace()
    tokenizer = PreTrainedTokenizerFast(tokenizer_object=core, unk_token="<unk>", pad_token="<pad>",
                                        eos_token="<|im_end|>", bos_token="<|im_start|>")
    tokenizer.add_special_tokens({"additional_special_tokens": ["<|im_start|>"]})
    tokenizer.chat_template = CHATML
    return tokenizer


def tiny_llama(tokenizer, seed: int = 0) -> object:
    import torch
    from transformers import LlamaConfig, LlamaForCausalLM

    torch.manual_seed(seed)
    config = LlamaConfig(vocab_size=len(tokenizer), hidden_size=32, intermediate_size=64, num_hidden_layers=2,
                         num_attention_heads=4, num_key_value_heads=2, max_position_embeddings=2048,
                         eos_token_id=tokenizer.eos_token_id, pad_token_id=tokenizer.pad_token_id,
                         bos_token_id=tokenizer.bos_token_id)
    return LlamaForCausalLM(config).eval()


def save_tiny_llama(folder: Path, extra_text: str = "") -> Path:
    tokenizer = tiny_tokenizer(extra_text)
    model = tiny_llama(tokenizer)
    model.save_pretrained(folder)
    tokenizer.save_pretrained(folder)
    return folder


# ---- a real chat-completions server on 127.0.0.1 that misbehaves on request ------------------------

class ChatServer:
    """`POST /v1/chat/completions` in a thread. The last user message picks the behaviour: a tag
    `[fail:MODE:N]` fails the first N attempts of that prompt with MODE (500, 429, timeout, malformed,
    drop, 400), `[slow:S]` waits S seconds before answering, `[drip:S]` sends the whole reply a byte
    every S seconds, `[huge:N]` answers N bytes of text (`[hugestream:N]`: without Content-Length),
    `[echo]` answers with the Authorization header it got, `[redirect]` answers 302 to `redirect_to`.
    Every attempt is recorded."""

    def __init__(self, delay: float = 0.0, hang: float = 0.6, redirect_to: str = ""):
        import http.server
        import threading

        self.delay, self.hang, self.redirect_to = delay, hang, redirect_to
        self.lock = threading.Lock()
        self.attempts: dict[str, list[tuple[float, str]]] = {}  # tweet -> [(arrival time, outcome)]
        self.in_flight = self.max_in_flight = 0
        self.auth_headers: set[str | None] = set()
        server = self

        class Handler(http.server.BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *args):  # keep test output clean
                pass

            def do_POST(self):
                server.handle(self)

            def do_GET(self):  # where a client that follows a POST's redirect lands
                server.handle_get(self)

        self.httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.httpd.daemon_threads = True
        self.thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.httpd.server_address[1]}/v1"

    def __enter__(self) -> ChatServer:
        self.thread.start()
        return self

    def __exit__(self, *exc) -> None:
        import time

        deadline = time.monotonic() + self.hang + 2.0
        while self.in_flight and time.monotonic() < deadline:  # let handlers record their outcome
            time.sleep(0.01)
        self.httpd.shutdown()
        self.httpd.server_close()

    def handle(self, request) -> None:
        import json
        import time

        length = int(request.headers.get("Content-Length", 0))
        body = json.loads(request.rfile.read(length))
        query = body["messages"][-1]["content"]
        tweet = query.split("tweet content: ", 1)[1].split(". Accordingly", 1)[0]
        with self.lock:
            self.auth_headers.add(request.headers.get("Authorization"))
            history = self.attempts.setdefault(tweet, [])
            attempt = len(history)
            history.append((time.monotonic(), "in flight"))  # counted on arrival: retries may overlap a hang
            self.in_flight += 1
            self.max_in_flight = max(self.max_in_flight, self.in_flight)
        outcome = "client gone"
        try:
            outcome = self._respond(request, tweet, attempt)
        except (BrokenPipeError, ConnectionResetError):
            request.close_connection = True  # the client timed out and hung up: expected
        finally:
            with self.lock:
                self.in_flight -= 1
                history[attempt] = (history[attempt][0], outcome)

    def handle_get(self, request) -> None:
        import time

        with self.lock:
            self.auth_headers.add(request.headers.get("Authorization"))
            self.attempts.setdefault("GET", []).append((time.monotonic(), "ok"))
        payload = chat_reply('{"explanation": "an answer from wherever the redirect pointed"}')
        request.send_response(200)
        request.send_header("Content-Type", "application/json")
        request.send_header("Content-Length", str(len(payload)))
        request.end_headers()
        request.wfile.write(payload)

    def _respond(self, request, tweet: str, attempt: int) -> str:
        import json
        import re
        import time

        match = re.search(r"\[fail:(\w+):(\d+)\]", tweet)
        mode = match.group(1) if match and attempt < int(match.group(2)) else "ok"
        slow = re.search(r"\[slow:([\d.]+)\]", tweet)
        time.sleep(float(slow.group(1)) if slow else self.delay)
        if mode == "timeout":
            time.sleep(self.hang)
            mode = "500"  # by now the client has given up
        if mode == "drop":
            request.close_connection = True
            request.connection.shutdown(2)
            return mode
        if mode in ("500", "429", "400"):
            echo = request.headers.get("Authorization", "")  # a careless server echoing the key
            payload = json.dumps({"error": {"message": f"injected {mode} for {echo}"}}).encode()
            request.send_response(int(mode))
            if mode == "429":
                request.send_header("Retry-After", "0.2")
            request.send_header("Content-Type", "application/json")
            request.send_header("Content-Length", str(len(payload)))
            request.end_headers()
            request.wfile.write(payload)
            return mode
        special = re.search(r"\[(redirect|drip|huge|hugestream|echo)(?::([\d.]+))?\]", tweet)
        if mode == "ok" and special:
            return self._special(request, tweet, special.group(1), float(special.group(2) or 0))
        if mode == "malformed":
            payload = b'{"choices": [{"message": '
        else:
            payload = chat_reply(json.dumps({"explanation": f"about {tweet}"}))
        request.send_response(200)
        request.send_header("Content-Type", "application/json")
        request.send_header("Content-Length", str(len(payload)))
        request.end_headers()
        request.wfile.write(payload)
        return mode

    def _special(self, request, tweet: str, mode: str, number: float) -> str:
        import json
        import time

        if mode == "redirect":
            request.send_response(302)
            request.send_header("Location", self.redirect_to)
            request.send_header("Content-Length", "0")
            request.end_headers()
            return mode
        if mode in ("huge", "hugestream"):
            payload = chat_reply(json.dumps({"explanation": "a" * int(number)}))
        elif mode == "echo":
            payload = chat_reply(json.dumps({"explanation": f"you sent {request.headers.get('Authorization')}"}))
        else:  # drip: status line, headers and body, a byte at a time; ends when the client hangs up
            payload = chat_reply(json.dumps({"explanation": f"about {tweet}"}))
            raw = (b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: "
                   + str(len(payload)).encode() + b"\r\n\r\n" + payload)
            for byte in raw:
                request.wfile.write(bytes([byte]))
                request.wfile.flush()
                time.sleep(number)
            return mode
        request.send_response(200)
        request.send_header("Content-Type", "application/json")
        if mode == "hugestream":
            request.send_header("Connection", "close")
            request.close_connection = True
        else:
            request.send_header("Content-Length", str(len(payload)))
        request.end_headers()
        for start in range(0, len(payload), 1 << 16):
            request.wfile.write(payload[start:start + (1 << 16)])
        return mode


def chat_reply(content: str) -> bytes:
    import json

    return json.dumps({"choices": [{"message": {"role": "assistant", "content": content},
                                    "finish_reason": "stop"}]}).encode()
