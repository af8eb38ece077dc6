"""A stand-in for llama.cpp's server whose model thinks: every completion streams a
`<think>` block, slowly, then an answer. For browser tests of thinking models, which
no model these machines can run here writes."""

from __future__ import annotations

import json
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

THOUGHT = ["<think>", "\nThe", " reader", " wants", " more", ".", "\n", "</think>", "\n\n"]
ANSWER = [" The", " tide", " came", " in", "."]
# ChatML that drops the thinking of earlier replies, as Qwen3's template does.
TEMPLATE = (
    "{% for m in messages %}<|im_start|>{{ m.role }}\n{{ m.content.split('</think>')[-1] }}<|im_end|>\n"
    "{% endfor %}{% if add_generation_prompt %}<|im_start|>assistant\n{% endif %}"
)


class ThinkingServer:
    """Serves at `url` until `stop()`; each piece of a reply comes `delay` seconds apart."""

    def __init__(self, delay: float = 0.4) -> None:
        self.delay = delay
        self.prompts: list[str] = []
        self.server = ThreadingHTTPServer(("127.0.0.1", 0), self._handler())
        self.server.daemon_threads = True
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        threading.Thread(target=self.server.serve_forever, args=(0.05,), daemon=True).start()

    def stop(self) -> None:
        self.server.shutdown()
        self.server.server_close()

    def _handler(self) -> type[BaseHTTPRequestHandler]:
        fake = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *_args: Any) -> None:
                pass

            def do_GET(self) -> None:
                if self.path == "/v1/models":
                    self._json(
                        {"object": "list", "data": [{"id": "thinker.gguf", "meta": {"n_ctx_train": 4096}}]}
                    )
                elif self.path == "/props":
                    self._json({"default_generation_settings": {"n_ctx": 4096}, "chat_template": TEMPLATE})
                else:
                    self._json({"error": {"message": "File Not Found"}}, 404)

            def do_POST(self) -> None:
                body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
                if self.path == "/tokenize":
                    self._json({"tokens": list(range(max(1, len(body["content"]) // 4)))})
                elif self.path == "/v1/completions":
                    fake.prompts.append(body["prompt"])
                    self._stream()
                else:
                    self._json({"error": {"message": "File Not Found"}}, 404)

            def _json(self, data: Any, status: int = 200) -> None:
                raw = json.dumps(data).encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(raw)))
                self.end_headers()
                self.wfile.write(raw)

            def _stream(self) -> None:
                self.send_response(200)
                self.send_header("Content-Type", "text/event-stream")
                self.end_headers()
                self.close_connection = True
                pieces = [*THOUGHT, *ANSWER]
                try:
                    for piece in pieces:
                        time.sleep(fake.delay)
                        self._event({"choices": [{"text": piece, "finish_reason": None}]})
                    usage = {"prompt_tokens": 20, "completion_tokens": len(pieces)}
                    self._event({"choices": [{"text": "", "finish_reason": "stop"}], "usage": usage})
                    self.wfile.write(b"data: [DONE]\n\n")
                except (BrokenPipeError, ConnectionResetError):
                    pass  # the client stopped listening

            def _event(self, data: Any) -> None:
                self.wfile.write(f"data: {json.dumps(data)}\n\n".encode())
                self.wfile.flush()

        return Handler
