"""Generation off the event loop: one worker thread, a bounded queue in front of it, and cancellation.

The HTTP side (an asyncio event loop) hands a checked request to :meth:`GenerationWorker.submit` and reads the
:class:`Job`'s items as they come: text pieces, then the final ``(finish_reason, prompt_tokens,
completion_tokens)``, or one exception instead. One generation runs at a time (they would only compete for the
cores and the model); at most ``max_waiting`` more wait their turn and the next one is refused with
:class:`Busy`, so a burst of requests cannot pile up without limit. When a client goes away its job is cancelled:
a waiting job leaves the queue, a running one stops before its next token.
"""

from __future__ import annotations

import asyncio
import logging
import threading
from collections import deque
from collections.abc import Callable
from typing import Any

from .chat_service import ChatRequest, ChatService, RequestError

log = logging.getLogger(__name__)


class Busy(Exception):
    """Every place in the queue is taken; the message says how many run and wait."""


class ClientGone(Exception):
    """The client closed the connection while its job waited or ran."""


class Job:
    """One request on its way through the worker; items arrive on the event loop that submitted it."""

    def __init__(self, req: ChatRequest, loop: asyncio.AbstractEventLoop,
                 on_cancel: Callable[[Job], None] = lambda job: None) -> None:
        self.req = req
        self.cancelled = threading.Event()
        self._loop, self._on_cancel = loop, on_cancel
        self._items: asyncio.Queue = asyncio.Queue()

    def cancel(self) -> None:
        """Stop the job: taken out of the queue if it still waits, stopped before its next token if it runs."""
        if not self.cancelled.is_set():
            self.cancelled.set()
            self._on_cancel(self)

    def put(self, item: Any) -> None:
        """Called from the worker thread."""
        try:
            self._loop.call_soon_threadsafe(self._items.put_nowait, item)
        except RuntimeError:  # the event loop has closed: nobody reads this job any more
            self.cancelled.set()

    async def next(self, gone: asyncio.Future | None = None) -> Any:
        """The next item; with ``gone`` (done when the client disconnects), :class:`ClientGone` once it is done."""
        if gone is None:
            return await self._items.get()
        item = asyncio.ensure_future(self._items.get())
        await asyncio.wait({item, gone}, return_when=asyncio.FIRST_COMPLETED)
        if item.done():
            return item.result()
        item.cancel()
        self.cancel()
        raise ClientGone


class GenerationWorker:
    """A thread that runs :meth:`ChatService.run` for one job after another (see the module docstring)."""

    def __init__(self, service: ChatService, max_waiting: int = 16) -> None:
        self.service, self.max_waiting = service, max_waiting
        self._changed = threading.Condition()
        self._waiting: deque[Job] = deque()
        self._running: Job | None = None
        self._closed = False
        self._thread = threading.Thread(target=self._loop, name="generation", daemon=True)
        self._thread.start()

    def submit(self, req: ChatRequest) -> Job:
        """Queue ``req``; :class:`Busy` when one job runs and ``max_waiting`` wait already."""
        job = Job(req, asyncio.get_running_loop(), self._withdraw)
        with self._changed:
            if len(self._waiting) + (self._running is not None) > self.max_waiting:
                raise Busy(f"the server is busy: one generation runs and {self.max_waiting} wait; retry in a "
                           "moment")
            self._waiting.append(job)
            self._changed.notify()
        return job

    def close(self) -> None:
        """Cancel the running job and stop the thread once it has finished (jobs still waiting are dropped)."""
        with self._changed:
            self._closed = True
            self._waiting.clear()
            if self._running is not None:
                self._running.cancelled.set()
            self._changed.notify()

    def _withdraw(self, job: Job) -> None:
        """A cancelled job leaves the queue at once, so that it holds no place a live request could take."""
        with self._changed:
            if job in self._waiting:
                self._waiting.remove(job)

    def _loop(self) -> None:
        while True:
            with self._changed:
                while not self._waiting and not self._closed:
                    self._changed.wait()
                if self._closed:
                    return
                job = self._running = self._waiting.popleft()
            try:
                self._run(job)
            finally:
                with self._changed:
                    self._running = None

    def _run(self, job: Job) -> None:
        if job.cancelled.is_set():  # cancelled between leaving the queue and starting
            return
        try:
            for item in self.service.run(job.req, job.cancelled):
                job.put(item)
        except ValueError as exc:  # generation's own checks: the same request would fail again
            job.put(RequestError(400, str(exc)))
        except Exception as exc:  # a failure of the model or the machine (out of memory, ...)
            log.exception("generation failed")
            job.put(RequestError(500, f"generation failed: {type(exc).__name__}: {exc}", code="server_error"))
