"""Scoring instruction-tuned responses: an LLM judge over HTTP, and metrics that need no judge.

The judge client speaks the OpenAI-compatible chat-completions API (``POST {base}/v1/chat/completions``) that
Ollama (``http://localhost:11434``), llama.cpp's ``llama-server`` (``http://localhost:8080``), vLLM
(``http://localhost:8000``) and this project's own server (``llms-from-scratch serve``; started for you by
:func:`llms_from_scratch.serving.background_server.serve_in_background`) all serve. It needs only the standard library.
Settings come from arguments or from ``$LLMS_JUDGE_URL`` / ``$LLMS_JUDGE_MODEL`` / ``$LLMS_JUDGE_API_KEY``.

Failures are told apart, because each has a different fix: :class:`JudgeConnectionError` (nothing listening),
:class:`JudgeTimeoutError` (the server is too slow), :class:`JudgeResponseError` (an HTTP error or a reply that
is not a chat completion). Timeouts, connection failures, HTTP 429 and 5xx are retried with a growing pause.

A judge's reply counts as a score when it contains an integer from 0 to 100 (the first one is taken); any other
reply is *unparsed*: it is kept, counted and left out of the mean, never guessed (see :func:`find_score`).

The judge-free metrics are ROUGE-L (longest common subsequence of words, F-measure) and exact match after
normalisation; both are written out here so their definitions are visible.
"""

from __future__ import annotations

import http.client
import json
import os
import re
import string
import time
import urllib.error
import urllib.request
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

URL_ENV, MODEL_ENV, API_KEY_ENV = "LLMS_JUDGE_URL", "LLMS_JUDGE_MODEL", "LLMS_JUDGE_API_KEY"
DEFAULT_URL = "http://localhost:11434"  # Ollama's default address
DEFAULT_MODEL = "llama3.2"

SERVER_HINT = (
    "Start an OpenAI-compatible server and point the judge at it, e.g.\n"
    "  Ollama:    ollama serve  &&  ollama pull llama3.2        (url http://localhost:11434, model llama3.2)\n"
    "  llama.cpp: llama-server -m MODEL.gguf --port 8080        (url http://localhost:8080)\n"
    "  vLLM:      vllm serve MODEL_NAME --port 8000             (url http://localhost:8000)\n"
    "  this project: llms-from-scratch serve -m smollm2-135m-instruct --port 8000\n"
    "                                       (url http://localhost:8000, model smollm2-135m-instruct)\n"
    f"then pass url=/model= or set ${URL_ENV} and ${MODEL_ENV}."
)


class JudgeError(RuntimeError):
    """The judge could not deliver an answer; the message says why and what to do."""


class JudgeConnectionError(JudgeError):
    """No server accepted the connection."""


class JudgeTimeoutError(JudgeError):
    """The server accepted the request but did not answer in time."""


class JudgeResponseError(JudgeError):
    """The server answered with an HTTP error or with something that is not a chat completion."""


class _Retryable(Exception):
    def __init__(self, error: JudgeError):
        self.error = error


def chat_completions_url(url: str) -> str:
    """Accept ``http://host:port``, ``.../v1`` or the full ``.../v1/chat/completions`` address."""
    url = url.rstrip("/")
    if not url.startswith(("http://", "https://")):
        raise ValueError(f"judge url must start with http:// or https://, got {url!r}")
    if url.endswith("/chat/completions"):
        return url
    if url.endswith("/v1"):
        return url + "/chat/completions"
    return url + "/v1/chat/completions"


@dataclass
class JudgeClient:
    """A minimal, dependency-free client for an OpenAI-compatible chat-completions server."""

    url: str = field(default_factory=lambda: os.environ.get(URL_ENV, DEFAULT_URL))
    model: str = field(default_factory=lambda: os.environ.get(MODEL_ENV, DEFAULT_MODEL))
    timeout: float = 60.0  # seconds for one request
    retries: int = 2  # extra attempts after the first one
    backoff: float = 0.5  # seconds before the first retry; doubles each time
    api_key: str | None = field(default_factory=lambda: os.environ.get(API_KEY_ENV))

    def __post_init__(self) -> None:
        self.endpoint = chat_completions_url(self.url)
        if self.timeout <= 0:
            raise ValueError(f"timeout must be positive, got {self.timeout}")
        if self.retries < 0:
            raise ValueError(f"retries must be >= 0, got {self.retries}")

    def chat(self, messages: Sequence[dict[str, str]], temperature: float = 0.0, max_tokens: int | None = None,
             seed: int | None = 123) -> str:
        """Send the messages and return the assistant's reply text."""
        payload: dict[str, Any] = {"model": self.model, "messages": list(messages), "temperature": temperature}
        if max_tokens is not None:
            payload["max_tokens"] = max_tokens
        if seed is not None:
            payload["seed"] = seed  # servers that support it make the answer reproducible
        body = json.dumps(payload).encode("utf-8")
        for attempt in range(self.retries + 1):
            try:
                return self._post(body)
            except _Retryable as exc:
                if attempt == self.retries:
                    raise exc.error from None
                time.sleep(self.backoff * 2 ** attempt)
        raise AssertionError("unreachable")

    def ask(self, prompt: str, **kwargs) -> str:
        """One user message in, the reply text out."""
        return self.chat([{"role": "user", "content": prompt}], **kwargs)

    def _post(self, body: bytes) -> str:
        headers = {"Content-Type": "application/json"}
        if self.api_key:
            headers["Authorization"] = f"Bearer {self.api_key}"
        request = urllib.request.Request(self.endpoint, data=body, headers=headers, method="POST")
        tries = f"{self.retries + 1} attempt(s)"
        try:
            with urllib.request.urlopen(request, timeout=self.timeout) as response:
                raw = response.read()
        except urllib.error.HTTPError as exc:
            message = f"the judge at {self.endpoint} answered HTTP {exc.code} {exc.reason}: {_snippet(exc.read())}"
            if exc.code == 404:
                message += f"\nIs the model name {self.model!r} right, and does the server serve /v1/chat/completions?"
            error = JudgeResponseError(message)
            if exc.code == 429 or exc.code >= 500:
                raise _Retryable(error) from None
            raise error from None
        except urllib.error.URLError as exc:
            if isinstance(exc.reason, TimeoutError):
                raise _Retryable(self._timeout_error(tries)) from None
            raise _Retryable(JudgeConnectionError(
                f"nothing is listening at {self.endpoint} ({exc.reason}; {tries}).\n{SERVER_HINT}")) from None
        except TimeoutError:
            raise _Retryable(self._timeout_error(tries)) from None
        except (ConnectionError, http.client.HTTPException) as exc:
            raise _Retryable(JudgeConnectionError(
                f"the connection to {self.endpoint} broke off ({exc.__class__.__name__}: {exc}; {tries})")) from None
        return _parse_reply(raw, self.endpoint)

    def _timeout_error(self, tries: str) -> JudgeTimeoutError:
        return JudgeTimeoutError(
            f"the judge at {self.endpoint} did not answer within {self.timeout:g} s ({tries}); a large model on a "
            f"CPU can be slow: raise timeout=, or use a smaller judge model"
        )


def _snippet(raw: bytes, limit: int = 200) -> str:
    text = raw.decode("utf-8", errors="replace").strip()
    return repr(text[:limit] + ("..." if len(text) > limit else ""))


def _parse_reply(raw: bytes, endpoint: str) -> str:
    try:
        reply = json.loads(raw)
    except (json.JSONDecodeError, UnicodeDecodeError):
        raise JudgeResponseError(
            f"the server at {endpoint} did not answer with JSON (got {_snippet(raw)}); is it an OpenAI-compatible "
            f"chat-completions server?"
        ) from None
    try:
        content = reply["choices"][0]["message"]["content"]
    except (KeyError, IndexError, TypeError):
        raise JudgeResponseError(
            f"the reply from {endpoint} has no choices[0].message.content (got {_snippet(raw)}); is it an "
            f"OpenAI-compatible chat-completions server?"
        ) from None
    if not isinstance(content, str):
        raise JudgeResponseError(f"choices[0].message.content from {endpoint} is not text: {content!r}")
    return content


# ---------------------------------------------------------------------------------------------------------------
# Scoring with the judge
# ---------------------------------------------------------------------------------------------------------------

JUDGE_SYSTEM = "You are a grader. You reply with one integer from 0 to 100 and nothing else."


def judge_prompt(entry: dict[str, Any], response_key: str = "model_response", include_task: bool = False) -> str:
    """Ask for a 0-100 score of ``entry[response_key]`` against the reference answer ``entry["output"]``.

    The task is left out by default: small judges (SmolLM2-135M) that see the instruction tend to answer it instead
    of grading. A capable judge (Llama 3 8B and up) can use it: pass ``include_task=True``.
    """
    task = ""
    if include_task:
        task = f"Task: {entry['instruction']}" + (f"\n{entry['input']}" if entry.get("input") else "") + "\n"
    return (
        f"Compare the student answer with the reference answer.\n{task}"
        f"Reference answer: {entry['output']}\n"
        f"Student answer: {entry[response_key] or '(no answer)'}\n"
        f"Give a score from 0 (wrong) to 100 (same as the reference). Score:"
    )


def judge_messages(entry: dict[str, Any], response_key: str = "model_response",
                   include_task: bool = False) -> list[dict[str, str]]:
    """The chat sent to the judge: a system message fixing the reply format, then :func:`judge_prompt`."""
    return [{"role": "system", "content": JUDGE_SYSTEM},
            {"role": "user", "content": judge_prompt(entry, response_key, include_task)}]


def find_score(reply: str) -> int | None:
    """The first integer from 0 to 100 in the judge's reply, or ``None`` when there is none (an unparsed reply)."""
    for match in re.finditer(r"\d+", reply):
        value = int(match.group())
        if 0 <= value <= 100:
            return value
    return None


def parse_score(reply: str) -> int:
    """Like :func:`find_score`, but an error names the reply when it holds no score."""
    score = find_score(reply)
    if score is None:
        raise JudgeResponseError(f"the judge's reply contains no score between 0 and 100: {reply[:200]!r}")
    return score


@dataclass(frozen=True)
class Judgement:
    score: int | None  # None: the reply held no integer 0-100
    reply: str  # the judge's words, kept so a reader can see what the score was read from


def judge_responses(entries: Sequence[dict[str, Any]], client: JudgeClient, response_key: str = "model_response",
                    max_tokens: int | None = 16, include_task: bool = False,
                    progress: bool = True) -> list[Judgement]:
    """Ask the judge about every entry; keep each raw reply next to the score read from it."""
    from tqdm import tqdm

    judgements = []
    for entry in tqdm(entries, desc="Scoring", disable=not progress):
        reply = client.chat(judge_messages(entry, response_key, include_task), max_tokens=max_tokens)
        judgements.append(Judgement(find_score(reply), reply))
    return judgements


def judge_scores(entries: Sequence[dict[str, Any]], client: JudgeClient,
                          response_key: str = "model_response", progress: bool = True,
                          max_tokens: int | None = 16) -> list[int | None]:
    """One score per entry, ``None`` where the reply held no score (counted, never guessed).

    The OpenAI-API counterpart of the book's ``ch07.generate_model_scores``, which speaks Ollama's API and skips
    unparsed replies.
    """
    return [j.score for j in judge_responses(entries, client, response_key, max_tokens, progress=progress)]


def summarize_scores(scores: Sequence[int | None]) -> dict[str, float | int | None]:
    """Mean over the parsed scores, and how many replies were parsed and unparsed (mean ``None`` if none parsed)."""
    parsed = [s for s in scores if s is not None]
    return {"mean": sum(parsed) / len(parsed) if parsed else None, "parsed": len(parsed),
            "unparsed": len(scores) - len(parsed)}


# ---------------------------------------------------------------------------------------------------------------
# Judge-free metrics
# ---------------------------------------------------------------------------------------------------------------

_ARTICLES = {"a", "an", "the"}


def _words(text: str) -> list[str]:
    return re.findall(r"\w+", text.lower())


def lcs_length(a: Sequence[str], b: Sequence[str]) -> int:
    """Length of the longest common subsequence (dynamic programming, one row at a time)."""
    if len(a) < len(b):
        a, b = b, a
    previous = [0] * (len(b) + 1)
    for x in a:
        current = [0]
        for j, y in enumerate(b, start=1):
            current.append(previous[j - 1] + 1 if x == y else max(previous[j], current[j - 1]))
        previous = current
    return previous[-1]


def rouge_l(candidate: str, reference: str) -> float:
    """ROUGE-L F1 on lower-cased word tokens: harmonic mean of LCS/len(candidate) and LCS/len(reference)."""
    cand, ref = _words(candidate), _words(reference)
    if not cand or not ref:
        return float(cand == ref)  # two empty texts agree; one empty text shares nothing
    lcs = lcs_length(cand, ref)
    if lcs == 0:
        return 0.0
    precision, recall = lcs / len(cand), lcs / len(ref)
    return 2 * precision * recall / (precision + recall)


def normalize_answer(text: str) -> str:
    """Lower case, no punctuation, no articles, single spaces (the usual exact-match normalisation)."""
    text = text.lower().translate(str.maketrans("", "", string.punctuation))
    return " ".join(word for word in text.split() if word not in _ARTICLES)


def exact_match(candidate: str, reference: str) -> bool:
    return normalize_answer(candidate) == normalize_answer(reference)


def judge_free_metrics(entries: Sequence[dict[str, Any]], response_key: str = "model_response",
                       short_answer_words: int = 5) -> dict[str, float]:
    """Mean ROUGE-L over all entries, and exact match over those whose reference has few words."""
    if not entries:
        raise ValueError("no entries to evaluate")
    rouge = [rouge_l(e[response_key], e["output"]) for e in entries]
    short = [e for e in entries if len(e["output"].split()) <= short_answer_words]
    matches = [exact_match(e[response_key], e["output"]) for e in short]
    return {
        "rouge_l": sum(rouge) / len(rouge),
        "exact_match": sum(matches) / len(matches) if matches else float("nan"),
        "n": len(entries),
        "n_short": len(short),
    }
