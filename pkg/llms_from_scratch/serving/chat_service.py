"""The chat service behind both HTTP APIs: validates a request body, then generates under one lock.

:mod:`.server` (OpenAI's routes) and :mod:`.ollama` (Ollama's) both translate their requests onto it.
"""

from __future__ import annotations

import threading
import time
from typing import Any

import torch

from .generation import SamplingParams, TextStream, stream

MAX_BODY = 1 << 20  # 1 MiB of JSON is far more than any chat request needs


class RequestError(Exception):
    def __init__(self, status: int, message: str, param: str | None = None, code: str | None = None) -> None:
        super().__init__(message)
        self.status, self.param, self.code = status, param, code


def _number(body: dict, key: str, default: Any, kind: type, low: float | None = None, high: float | None = None):
    value = body.get(key, default)
    if value is None:
        return default
    if isinstance(value, bool) or not isinstance(value, (int, float)) or (kind is int and not isinstance(value, int)):
        raise RequestError(400, f"'{key}' must be a {kind.__name__}", key)
    if (low is not None and value < low) or (high is not None and value > high):
        raise RequestError(400, f"'{key}' must be between {low} and {high}, got {value}", key)
    return kind(value)


class ChatService:
    """Validates requests and runs generation for one loaded model."""

    def __init__(self, model: torch.nn.Module, tokenizer: Any, name: str, max_tokens_limit: int = 2048) -> None:
        if getattr(tokenizer, "chat_format", None) is None:
            raise ValueError(f"{name} has no chat format (a base model); serve an instruct model")
        self.model, self.tokenizer, self.name = model, tokenizer, name
        self.max_tokens_limit = max_tokens_limit
        self.lock = threading.Lock()
        self.created = int(time.time())

    def parse(self, body: Any) -> dict:
        if not isinstance(body, dict):
            raise RequestError(400, "the request body must be a JSON object")
        model = body.get("model")
        if not isinstance(model, str):
            raise RequestError(400, "'model' is required", "model")
        if model != self.name:
            raise RequestError(404, f"the model '{model}' does not exist; this server serves '{self.name}'",
                               "model", "model_not_found")
        messages = body.get("messages")
        if not isinstance(messages, list) or not messages:
            raise RequestError(400, "'messages' must be a non-empty list", "messages")
        for i, m in enumerate(messages):
            if not isinstance(m, dict) or m.get("role") not in ("system", "user", "assistant") \
                    or not isinstance(m.get("content"), str):
                raise RequestError(400, f"messages[{i}] needs a role (system, user or assistant) and string content",
                                   "messages")
        max_tokens = _number(body, "max_completion_tokens", None, int, 1, self.max_tokens_limit)
        if max_tokens is None:
            max_tokens = _number(body, "max_tokens", 256, int, 1, self.max_tokens_limit)
        stop = body.get("stop")
        if stop is not None and not (isinstance(stop, str) or (isinstance(stop, list) and
                                                               all(isinstance(s, str) for s in stop))):
            raise RequestError(400, "'stop' must be a string or a list of strings", "stop")
        if "stream" in body and not isinstance(body["stream"], bool):
            raise RequestError(400, "'stream' must be a boolean", "stream")
        sampling = SamplingParams(
            temperature=_number(body, "temperature", 1.0, float, 0.0, 2.0),
            top_p=_number(body, "top_p", 1.0, float, 0.0, 1.0) or None,  # 0 (allowed by OpenAI's API) = no cut
            seed=_number(body, "seed", None, int),
        )
        return {
            "messages": [{"role": m["role"], "content": m["content"]} for m in messages],
            "max_tokens": max_tokens,
            "sampling": sampling,
            "stream": bool(body.get("stream", False)),
            "stop": [stop] if isinstance(stop, str) else (stop or []),
        }

    def run(self, req: dict):
        """Yield text pieces; the final item is (finish_reason, prompt_tokens, completion_tokens)."""
        tok = self.tokenizer
        device = next(self.model.parameters()).device
        ids = torch.tensor([tok.encode(tok.apply_chat_template(req["messages"]))], device=device)
        text, emitted, finish, produced = TextStream(tok), "", "length", 0
        with self.lock:  # one generation at a time; other requests wait here
            for token in stream(self.model, ids, req["max_tokens"], req["sampling"], eos_ids=tok.eos_ids):
                token_id = int(token[0])
                if token_id in tok.eos_ids:
                    finish = "stop"
                    break
                produced += 1
                piece = text.push(token_id)
                full = emitted + piece
                hit = [full.index(s) for s in req["stop"] if s in full]
                if hit:
                    piece, finish = full[: min(hit)][len(emitted):], "stop"
                    if piece:
                        yield piece
                    break
                if piece:
                    emitted = full
                    yield piece
        yield finish, ids.shape[1], produced
