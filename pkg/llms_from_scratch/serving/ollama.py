"""Ollama's chat API on the project's server: ``POST /api/chat`` and ``GET /api/tags``.

Chapter 7 scores model responses by sending prompts to Ollama (``ch07.query_model``, ``generate_model_scores``).
With these two routes the same code runs against ``llms-from-scratch serve``, offline: start the server with
``--name llama3 --port 11434`` and the book's calls reach it unchanged.

An Ollama request is checked and encoded by the same :class:`~.chat_service.ChatService` as an OpenAI one, so both
APIs share one generation path. From ``options`` this honours ``seed``, ``temperature``, ``top_p``, ``stop``,
``num_predict`` and ``num_ctx`` (prompt plus reply must fit in ``num_ctx`` tokens and in the model's context);
other options are ignored, as they would change nothing here. Missing options take Ollama's defaults. Replies
stream as one JSON object per line unless the request says ``"stream": false``; errors come back in Ollama's
shape, ``{"error": "..."}``, with a 4xx status (or as a line of the stream, once it has begun).
"""

from __future__ import annotations

import json
import time
from datetime import datetime, timezone
from typing import Any

from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from . import chat_service as checks
from .chat_service import ChatRequest, ChatService, RequestError
from .http_json import read_json_body
from .jobs import GenerationWorker
from .limits import ServerLimits
from .replies import collect, stream

# Ollama's defaults for what a request leaves out (num_predict -1: until the end of the reply or the context)
DEFAULT_OPTIONS = {"temperature": 0.8, "top_p": 0.9, "num_ctx": 2048, "num_predict": -1}


def routes(service: ChatService, worker: GenerationWorker, limits: ServerLimits) -> list[Route]:
    """``POST /api/chat`` and ``GET /api/tags`` for :func:`~.server.create_app`."""

    async def chat(request: Request) -> Response:
        body = await read_json_body(request, limits.max_body, limits.body_timeout)
        req = translate(body, service)
        job = worker.submit(req)
        model, started = body["model"], time.perf_counter_ns()
        if not req.stream:
            text, tail = await collect(request, job)
            return JSONResponse(_final(model, text, tail, started))

        def render(item: Any) -> bytes:
            line = _final(model, "", item, started) if isinstance(item, tuple) else \
                {**_message(model, item), "done": False}
            return json.dumps(line).encode() + b"\n"

        def render_error(exc: Exception) -> bytes:
            return json.dumps({"error": str(exc)}).encode() + b"\n"

        return await stream(request, job, render, media_type="application/x-ndjson", render_error=render_error)

    async def tags_route(request: Request) -> Response:
        return JSONResponse(tags(service))

    return [Route("/api/chat", chat, methods=["POST"]), Route("/api/tags", tags_route, methods=["GET"])]


def _untagged(name: str) -> str:
    return name[: -len(":latest")] if name.endswith(":latest") else name


def translate(body: Any, service: ChatService) -> ChatRequest:
    """Check an Ollama chat request and turn it into a request for :meth:`ChatService.run`."""
    if not isinstance(body, dict):
        raise RequestError(400, "the request body must be a JSON object")
    model = body.get("model")
    if not isinstance(model, str) or not model:
        raise RequestError(400, "'model' is required")
    if _untagged(model) != _untagged(service.name):
        raise RequestError(404, f"model '{model}' not found; this server serves '{service.name}' "
                                f"(start it with --name {model} to answer to that name)")
    conversation = checks.messages(body.get("messages"))
    stream_reply = body.get("stream", True)
    if not isinstance(stream_reply, bool):
        raise RequestError(400, "'stream' must be a boolean")
    for key in ("format", "tools"):
        if body.get(key):
            raise RequestError(400, f"'{key}' is not supported by this server; leave it out")
    options = body.get("options")
    options = {} if options is None else options
    if not isinstance(options, dict):
        raise RequestError(400, "'options' must be a JSON object")
    options = {**DEFAULT_OPTIONS, **{k: v for k, v in options.items() if v is not None}}
    num_ctx, num_predict = options["num_ctx"], options["num_predict"]
    if not _is_int(num_ctx) or num_ctx < 1:
        raise RequestError(400, f"'options.num_ctx' must be a positive integer, got {num_ctx!r}")
    if not _is_int(num_predict) or num_predict == 0 or num_predict < -2:
        raise RequestError(400, f"'options.num_predict' must be -1 (until the reply ends), -2 (fill the context) "
                                f"or a positive integer, got {num_predict!r}")
    sampling = checks.sampling(options["temperature"], options["top_p"], options.get("seed"), prefix="options.")
    stop = checks.stop_strings(options.get("stop"), "options.stop")
    prompt = service.encode(conversation)

    # the reply gets what is left of the context window after the prompt
    window = num_ctx if service.context is None else min(num_ctx, service.context)
    room = window - len(prompt)
    if room < 1:
        raise RequestError(400, f"the prompt takes {len(prompt)} tokens and fills the context window of {window}; "
                                f"raise options.num_ctx (the model allows {service.context}) or shorten the "
                                "messages")
    max_tokens = room if num_predict < 0 else min(num_predict, room)
    return ChatRequest(prompt, min(max_tokens, service.max_tokens_limit), sampling, stop, stream_reply)


def _is_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def tags(service: ChatService) -> dict:
    """``GET /api/tags``: the one model this server holds, described with the fields Ollama lists."""
    params = list(service.model.parameters())
    n_params = sum(p.numel() for p in params)
    dtype = str(params[0].dtype).removeprefix("torch.") if params else "unknown"
    cfg = getattr(service.model, "cfg", None)
    name = service.name if ":" in service.name else f"{service.name}:latest"
    return {"models": [{
        "name": name,
        "model": name,
        "modified_at": _timestamp(service.created),
        "size": sum(p.numel() * p.element_size() for p in params),
        "details": {"format": "pytorch", "family": getattr(cfg, "family", "unknown"),
                    "parameter_size": _count(n_params), "quantization_level": dtype.upper()},
    }]}


def _count(n: int) -> str:
    for unit, size in (("B", 1e9), ("M", 1e6), ("K", 1e3)):
        if n >= size:
            return f"{n / size:.1f}{unit}"
    return str(n)


def _timestamp(seconds: float | None = None) -> str:
    """RFC 3339 in UTC with microseconds, as Ollama writes ``created_at``."""
    moment = datetime.now(timezone.utc) if seconds is None else datetime.fromtimestamp(seconds, timezone.utc)
    return moment.isoformat(timespec="microseconds").replace("+00:00", "Z")


def _message(model: str, content: str) -> dict:
    return {"model": model, "created_at": _timestamp(), "message": {"role": "assistant", "content": content}}


def _final(model: str, content: str, tail: tuple, started: int) -> dict:
    finish, n_prompt, n_out = tail
    return {**_message(model, content), "done": True, "done_reason": finish,
            "total_duration": time.perf_counter_ns() - started, "load_duration": 0,  # the model stays loaded
            "prompt_eval_count": n_prompt, "eval_count": n_out}
