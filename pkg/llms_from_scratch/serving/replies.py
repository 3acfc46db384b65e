"""A job's items as an HTTP reply, whole or streamed, shared by the OpenAI and the Ollama routes.

Either way the job is cancelled as soon as the client hangs up: while the job waits or runs for a whole reply
(:func:`collect` watches the connection), and while a streamed reply is being written (Starlette stops the
stream, and the stream's ``finally`` cancels the job).
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable

from starlette.requests import Request
from starlette.responses import StreamingResponse

from .http_json import disconnected
from .jobs import Job

Final = tuple[str, int, int]  # (finish_reason, prompt_tokens, completion_tokens)


async def _next_or_gone(request: Request, job: Job) -> str | Final:
    gone = asyncio.ensure_future(disconnected(request))
    try:
        item = await job.next(gone)
    finally:
        gone.cancel()
    if isinstance(item, BaseException):
        raise item
    return item


async def collect(request: Request, job: Job) -> tuple[str, Final]:
    """The job's whole text and its final counts; :class:`~.jobs.ClientGone` if the client hangs up first."""
    pieces = []
    try:
        while not isinstance(item := await _next_or_gone(request, job), tuple):
            pieces.append(item)
    finally:
        job.cancel()  # a no-op once the job is done; stops it when the client is gone or the task is cancelled
    return "".join(pieces), item


async def stream(request: Request, job: Job, render: Callable[[str | Final], bytes], *, media_type: str,
                 leader: bytes = b"", trailer: bytes = b"",
                 render_error: Callable[[Exception], bytes]) -> StreamingResponse:
    """A streamed reply: ``leader``, ``render(item)`` for every piece and for the final counts, ``trailer``.

    The first item is awaited before the response starts, so a request that fails before its first token (a
    check of the generation code, a full queue, a client that left) still gets a proper error status. A failure
    after that is written into the stream with ``render_error``.
    """
    try:
        first = await _next_or_gone(request, job)
    except BaseException:
        job.cancel()
        raise

    async def body() -> AsyncIterator[bytes]:
        try:
            yield leader + render(first)
            item = first
            while not isinstance(item, tuple):
                item = await job.next()
                if isinstance(item, Exception):
                    yield render_error(item)
                    return
                yield render(item)
            if trailer:
                yield trailer
        finally:
            job.cancel()  # the client went away mid-stream (Starlette cancelled us), or the reply is complete

    return StreamingResponse(body(), media_type=media_type, headers={"Cache-Control": "no-cache"})
