"""The chat service behind both HTTP APIs: checks every field of a request, encodes the conversation, generates.

:mod:`.server` (OpenAI's routes) and :mod:`.ollama` (Ollama's) translate their requests onto it; nothing here
knows about HTTP. Each check raises :class:`RequestError` with a message that names the field, so a client is
told what to change. A conversation is encoded with :meth:`encode_chat`, special-token strings in messages as
plain text unless the service was created with ``allow_special_tokens=True``.
"""

from __future__ import annotations

import math
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import torch

from .generation import TextStream, stream
from .sampling import SEED_MAX, SEED_MIN, SamplingParams, context_limit

MAX_BODY = 1 << 20  # 1 MiB of JSON is far more than any chat request needs
MAX_STOP = 16  # stop strings per request: each is looked for after every token
ROLES = ("system", "user", "assistant")


class RequestError(Exception):
    """A request the server refuses: the HTTP ``status``, the message, and the field (``param``) at fault.

    ``close``: the connection cannot carry another request (its body was not read), so the answer closes it.
    """

    def __init__(self, status: int, message: str, param: str | None = None, code: str | None = None, *,
                 close: bool = False) -> None:
        super().__init__(message)
        self.status, self.param, self.code, self.close = status, param, code, close


def check_body_and_model(body: Any, served: str) -> None:
    """Refuse a request body that is not a JSON object or names another model than ``served`` (the chat and the
    classify routes check this alike)."""
    if not isinstance(body, dict):
        raise RequestError(400, "the request body must be a JSON object")
    model = body.get("model")
    if not isinstance(model, str):
        raise RequestError(400, "'model' is required", "model")
    if model != served:
        raise RequestError(404, f"the model '{model}' does not exist; this server serves '{served}'",
                           "model", "model_not_found")


@dataclass
class ChatRequest:
    """A checked request, ready for :meth:`ChatService.run`."""

    prompt_ids: list[int]
    max_tokens: int
    sampling: SamplingParams
    stop: list[str]
    stream: bool
    include_usage: bool = False  # a streamed reply ends with a chunk of token counts (``stream_options``)


def number(value: Any, name: str, *, default: Any = None, whole: bool = False, low: float | None = None,
           high: float | None = None) -> Any:
    """``value`` checked to be a finite number (a whole one with ``whole``) in ``[low, high]``; ``default`` for
    None. JSON's ``true`` is not a number, ``2.0`` is not a whole number, NaN and infinities are refused."""
    if value is None:
        return default
    kind = "a whole number" if whole else "a number"
    if isinstance(value, bool) or not isinstance(value, (int, float)) or (whole and not isinstance(value, int)):
        raise RequestError(400, f"'{name}' must be {kind}, got {value!r}", name)
    if (isinstance(value, float) and not math.isfinite(value)) or (low is not None and value < low) \
            or (high is not None and value > high):
        bounds = ("finite" if low is None else f">= {low}") if high is None else f"from {low} to {high}"
        raise RequestError(400, f"'{name}' must be {kind} {bounds}, got {value!r}", name)
    return value


def stop_strings(value: Any, name: str = "stop") -> list[str]:
    """A string or a list of strings; empty strings are dropped (an empty stop string would end every reply at
    once, so it can only mean "no stop string")."""
    if value is None:
        return []
    if isinstance(value, str):
        value = [value]
    if not isinstance(value, list) or not all(isinstance(s, str) for s in value):
        raise RequestError(400, f"'{name}' must be a string or a list of strings", name)
    if len(value) > MAX_STOP:
        raise RequestError(400, f"'{name}' holds {len(value)} strings; give at most {MAX_STOP}", name)
    return [s for s in value if s]


def sampling(temperature: Any, top_p: Any, seed: Any, *, prefix: str = "", top_k: Any = None) -> SamplingParams:
    """Sampling settings from a request's fields (``prefix`` names where they sit, e.g. ``options.``).

    ``top_p`` 0 keeps only the most likely token, which is greedy decoding whatever the temperature. ``top_k``
    (not in OpenAI's API; vLLM and llama.cpp read it too) keeps the k most likely tokens; 0 or null turns it off.
    """
    temperature = number(temperature, f"{prefix}temperature", low=0.0, high=2.0)
    top_p = number(top_p, f"{prefix}top_p", low=0.0, high=1.0)
    top_k = number(top_k, f"{prefix}top_k", whole=True, low=0) or None
    seed = number(seed, f"{prefix}seed", whole=True, low=SEED_MIN, high=SEED_MAX)
    if top_p == 0:
        temperature, top_p = 0.0, None
    try:
        return SamplingParams(temperature=float(temperature), top_p=None if top_p is None else float(top_p),
                              top_k=top_k,
                              seed=None if seed is None else seed % 2**64)  # torch's own reading of negatives
    except ValueError as exc:  # a rule of SamplingParams that the checks above do not know
        raise RequestError(400, str(exc)) from None


def messages(value: Any, name: str = "messages") -> list[dict[str, str]]:
    """A non-empty list of ``{"role", "content"}`` turns with string content (other keys are dropped)."""
    if not isinstance(value, list) or not value:
        raise RequestError(400, f"'{name}' must be a non-empty list", name)
    for i, m in enumerate(value):
        if not isinstance(m, dict) or m.get("role") not in ROLES or not isinstance(m.get("content"), str):
            raise RequestError(400, f"{name}[{i}] needs a role (system, user or assistant) and string content", name)
    return [{"role": m["role"], "content": m["content"]} for m in value]


class ChatService:
    """One loaded chat model: checks requests, encodes conversations and generates, one request at a time."""

    def __init__(self, model: torch.nn.Module, tokenizer: Any, name: str, max_tokens_limit: int = 2048, *,
                 allow_special_tokens: bool = False) -> None:
        if getattr(tokenizer, "chat_format", None) is None:
            raise ValueError(f"{name} has no chat format (a base model); serve an instruct model")
        self.model, self.tokenizer, self.name = model, tokenizer, name
        self.max_tokens_limit = max_tokens_limit
        self.allow_special_tokens = allow_special_tokens
        self.context = context_limit(model)  # None: no limit on prompt plus reply
        self.lock = threading.Lock()
        self.created = int(time.time())

    def encode(self, conversation: list[dict[str, str]]) -> list[int]:
        try:
            return self.tokenizer.encode_chat(conversation, allow_special_in_content=self.allow_special_tokens)
        except ValueError as exc:  # the chat format refuses the order of the turns (Llama 2, Mistral)
            raise RequestError(400, str(exc), "messages") from None

    def parse(self, body: Any) -> ChatRequest:
        """Check an OpenAI chat-completions body and encode its conversation."""
        check_body_and_model(body, self.name)
        conversation = messages(body.get("messages"))
        if body.get("n") is not None and number(body["n"], "n", whole=True) != 1:
            raise RequestError(400, f"'n' must be 1: this server writes one choice per request, got {body['n']}",
                               "n")
        if "stream" in body and not isinstance(body["stream"], bool):
            raise RequestError(400, "'stream' must be a boolean", "stream")
        name = "max_completion_tokens" if body.get("max_completion_tokens") is not None else "max_tokens"
        asked = number(body.get(name), name, whole=True, low=1, high=self.max_tokens_limit)
        params = sampling(body.get("temperature", 1.0), body.get("top_p", 1.0), body.get("seed"),
                          top_k=body.get("top_k"))
        options = body.get("stream_options")
        if options is not None and (not isinstance(options, dict)
                                    or not isinstance(options.get("include_usage", False), bool)):
            raise RequestError(400, "'stream_options' must be an object like {\"include_usage\": true}",
                               "stream_options")
        stop = stop_strings(body.get("stop"))
        prompt = self.encode(conversation)
        if asked is None:  # the default reply length, shortened to what the context has room for
            room = 256 if self.context is None else min(256, self.context - len(prompt))
            if room < 1:
                raise RequestError(400, f"the prompt takes {len(prompt)} tokens and fills the model's context of "
                                        f"{self.context} tokens; shorten the messages", "messages",
                                   "context_length_exceeded")
            asked = room
        elif self.context is not None and len(prompt) + asked > self.context:
            raise RequestError(400, f"the prompt takes {len(prompt)} tokens and '{name}' asks for {asked} more: "
                                    f"{len(prompt) + asked} in all, over the model's context of {self.context} "
                                    f"tokens; lower '{name}' or shorten the messages", name,
                               "context_length_exceeded")
        return ChatRequest(prompt, asked, params, stop, bool(body.get("stream", False)),
                           include_usage=bool((options or {}).get("include_usage", False)))

    def run(self, req: ChatRequest, cancel: threading.Event | None = None) -> Iterator[str | tuple[str, int, int]]:
        """Yield text pieces; the final item is (finish_reason, prompt_tokens, completion_tokens).

        ``cancel``, when set, stops the generation before the next token ("cancelled": the client has gone).
        """
        tok = self.tokenizer
        device = next(self.model.parameters()).device
        ids = torch.tensor([req.prompt_ids], device=device)
        text, emitted, finish, produced = TextStream(tok), "", "length", 0
        longest = max((len(s) for s in req.stop), default=0)
        with self.lock:  # one generation at a time
            for token in stream(self.model, ids, req.max_tokens, req.sampling, eos_ids=tok.eos_ids):
                if cancel is not None and cancel.is_set():
                    finish = "cancelled"
                    break
                token_id = int(token[0])
                if token_id in tok.eos_ids:
                    finish = "stop"
                    break
                produced += 1
                piece = text.push(token_id)
                full = emitted + piece
                # a stop string not in the text so far can only end inside the new piece
                start = max(0, len(emitted) - longest + 1)
                hits = [i for i in (full.find(s, start) for s in req.stop) if i >= 0]
                if hits:
                    piece, finish = full[: min(hits)][len(emitted):], "stop"
                    if piece:
                        yield piece
                    break
                if piece:
                    emitted = full
                    yield piece
        yield finish, ids.shape[1], produced
