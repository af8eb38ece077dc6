"""A stand-in for llama.cpp's server whose model thinks: every completion streams a
`<think>` block, slowly, then an answer. For browser tests of thinking models, which
no model these machines can run here writes, and of anything that needs a reply that
takes as long as the test says (Stop)."""

from __future__ import annotations

import json
import time
from http.server import BaseHTTPRequestHandler

from stand_in import Replies, StandIn

THOUGHT = ["<think>", "\nThe", " reader", " wants", " more", ".", "\n", "</think>", "\n\n"]
ANSWER = [" The", " tide", " came", " in", "."]
# ChatML that drops the thinking of earlier replies, as Qwen3's template does.
TEMPLATE = (
    "{% for m in messages %}<|im_start|>{{ m.role }}\n{{ m.content.split('</think>')[-1] }}<|im_end|>\n"
    "{% endfor %}{% if add_generation_prompt %}<|im_start|>assistant\n{% endif %}"
)
NOT_FOUND = {"error": {"message": "File Not Found"}}


class ThinkingServer(StandIn):
    """Each piece of a reply comes `delay` seconds apart; `prompts` are the ones it got.
    `pieces` is the reply (by default a thought, then an answer)."""

    def __init__(self, delay: float = 0.4, pieces: list[str] | None = None) -> None:
        self.delay = delay
        self.pieces = pieces if pieces is not None else [*THOUGHT, *ANSWER]
        self.prompts: list[str] = []
        super().__init__(self._handler())

    def _handler(self) -> type[BaseHTTPRequestHandler]:
        fake = self

        class Handler(Replies):
            def do_GET(self) -> None:
                if self.path == "/v1/models":
                    self.send_json(
                        {"object": "list", "data": [{"id": "thinker.gguf", "meta": {"n_ctx_train": 4096}}]}
                    )
                elif self.path == "/props":
                    self.send_json(
                        {"default_generation_settings": {"n_ctx": 4096}, "chat_template": TEMPLATE}
                    )
                else:
                    self.send_json(NOT_FOUND, 404)

            def do_POST(self) -> None:
                body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
                if self.path == "/tokenize":
                    self.send_json({"tokens": list(range(max(1, len(body["content"]) // 4)))})
                elif self.path == "/v1/completions":
                    fake.prompts.append(body["prompt"])
                    self._stream()
                else:
                    self.send_json(NOT_FOUND, 404)

            def _stream(self) -> None:
                self.start_events()
                pieces = fake.pieces
                try:
                    for piece in pieces:
                        time.sleep(fake.delay)
                        self.send_event({"choices": [{"text": piece, "finish_reason": None}]})
                    usage = {"prompt_tokens": 20, "completion_tokens": len(pieces)}
                    self.send_event({"choices": [{"text": "", "finish_reason": "stop"}], "usage": usage})
                    self.wfile.write(b"data: [DONE]\n\n")
                except (BrokenPipeError, ConnectionResetError):
                    pass  # the client stopped listening

        return Handler
