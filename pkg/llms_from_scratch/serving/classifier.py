"""A chapter 6 classifier behind the server: ``POST /v1/classify``.

Request: ``{"model": "NAME", "input": "text to classify"}``. Answer::

    {"object": "classification", "model": "NAME", "label": "spam", "probability": 0.97,
     "scores": {"not spam": 0.03, "spam": 0.97}}

``label`` is the most likely class, ``probability`` its softmax probability, ``scores`` every class's. The text
is prepared as chapter 6's ``classify_review`` prepares it: cut to ``max_length`` tokens (the length the classifier
was trained on; the model's context by default) and padded to that length with ``<|endoftext|>``, so that the last
position, where the classifier reads, is where it read in training. Errors come back as for the chat routes
(``{"error": {"message", "type", "param", "code"}}``).
"""

from __future__ import annotations

import threading
import time
from typing import Any

import torch
from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from .chat_service import RequestError, check_body_and_model
from .http_json import read_json_body
from .limits import ServerLimits

MAX_INPUT_CHARS = 100_000  # far more than any model here reads; keeps tokenizing a request cheap


class ClassifierService:
    """One loaded classifier (a chapter 4 ``GPTModel`` with chapter 6's head): checks requests and classifies,
    one request at a time."""

    def __init__(self, model: torch.nn.Module, tokenizer: Any, name: str, labels: tuple[str, ...],
                 max_length: int | None = None, pad_token_id: int = 50256) -> None:
        n_classes = model.out_head.weight.shape[0]
        if len(labels) != n_classes:
            raise ValueError(f"the classifier has {n_classes} outputs but {len(labels)} labels were given")
        context = model.pos_emb.weight.shape[0]
        if max_length is not None and not 1 <= max_length <= context:
            raise ValueError(f"max_length must be from 1 to the model's context ({context}), got {max_length}")
        self.model, self.tokenizer, self.name, self.labels = model.eval(), tokenizer, name, labels
        self.max_length = context if max_length is None else max_length
        self.pad_token_id = pad_token_id
        self.lock = threading.Lock()
        self.created = int(time.time())

    def parse(self, body: Any) -> str:
        """The text of a checked ``/v1/classify`` body."""
        check_body_and_model(body, self.name)
        text = body.get("input")
        if not isinstance(text, str) or not text.strip():
            raise RequestError(400, "'input' must be a non-empty string: the text to classify", "input")
        if len(text) > MAX_INPUT_CHARS:
            raise RequestError(400, f"'input' holds {len(text)} characters; send at most {MAX_INPUT_CHARS}", "input")
        return text

    def scores(self, text: str) -> dict[str, float]:
        """Each label's probability for ``text``."""
        ids = self.tokenizer.encode(text, allow_special=False)[: self.max_length]
        ids += [self.pad_token_id] * (self.max_length - len(ids))
        device = self.model.pos_emb.weight.device
        with self.lock, torch.inference_mode():
            logits = self.model(torch.tensor([ids], device=device))[0, -1]  # (n_classes,) at the last position
        probs = torch.softmax(logits.float(), dim=-1).tolist()
        return dict(zip(self.labels, probs))

    def card(self) -> dict:
        return {"id": self.name, "object": "model", "created": self.created, "owned_by": "llms-from-scratch",
                "task": "classify", "labels": list(self.labels)}


def classify_routes(classifier: ClassifierService, limits: ServerLimits) -> list[Route]:
    """``GET /v1/models`` (the classifier's card, ``"task": "classify"``) and ``POST /v1/classify``."""

    async def models(request: Request) -> Response:
        return JSONResponse({"object": "list", "data": [classifier.card()]})

    async def model(request: Request) -> Response:
        if request.path_params["model_id"] != classifier.name:
            raise RequestError(404, f"the model '{request.path_params['model_id']}' does not exist; this server "
                                    f"serves '{classifier.name}'", "model", "model_not_found")
        return JSONResponse(classifier.card())

    async def classify(request: Request) -> Response:
        text = classifier.parse(await read_json_body(request, limits.max_body, limits.body_timeout))
        scores = await run_in_threadpool(classifier.scores, text)  # off the event loop: other clients go on
        label = max(scores, key=scores.__getitem__)
        return JSONResponse({"object": "classification", "model": classifier.name, "label": label,
                             "probability": scores[label], "scores": scores})

    async def not_a_chat_model(request: Request) -> Response:
        raise RequestError(400, f"'{classifier.name}' is a classifier and does not chat; send the text to "
                                "POST /v1/classify", "model", "wrong_task")

    return [Route("/v1/models", models, methods=["GET"]),
            Route("/v1/models/{model_id:path}", model, methods=["GET"]),
            Route("/v1/classify", classify, methods=["POST"]),
            Route("/v1/chat/completions", not_a_chat_model, methods=["POST"]),
            Route("/api/chat", not_a_chat_model, methods=["POST"])]


def chat_only_routes(name: str) -> list[Route]:
    """``POST /v1/classify`` on a chat server: an error that says what this server does instead."""

    async def not_a_classifier(request: Request) -> Response:
        raise RequestError(400, f"'{name}' is a chat model, not a classifier; send it messages with "
                                "POST /v1/chat/completions", "model", "wrong_task")

    return [Route("/v1/classify", not_a_classifier, methods=["POST"])]
