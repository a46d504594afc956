"""Adaptive batching of ``/sentiment``: concurrent callers' texts share one encoder pass.

Encoding texts costs a fixed part per call (tokeniser, thread start-up, Python) and a part per
text; on a CPU the fixed part dominates small requests, so texts of concurrent requests are
scored together. ``TextBatcher`` keeps one worker per event loop: while it scores a batch, new
requests queue; when it is free it takes everything queued (up to ``max_batch_size`` texts,
whole requests only) as the next batch. A lone request waits at most ``max_wait_ms`` for
company. The batch size therefore follows the load by itself: one text at a time when calls are
rare, full batches under pressure.

BentoML 1.4 has adaptive batching of its own (``@bentoml.api(batchable=True)``), and it keeps a
``{"texts": [...]}`` body. It is not used because its batched function runs outside any request:
an error (no champion) reaches every caller only as BentoML's generic 5xx body, without the
reason the HTTP contract promises, and a request it sheds under load answers a bare 503. Here
each caller awaits its own future, so a failure is raised in the caller's request, with its
reason, and nothing is shed silently: the service's concurrency limit bounds the queue.
"""

from __future__ import annotations

import asyncio
import logging
from collections import deque
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import anyio.to_thread

logger = logging.getLogger(__name__)

ScoreTexts = Callable[[Sequence[str]], list[dict[str, Any]]]


@dataclass
class _Pending:
    texts: Sequence[str]
    future: asyncio.Future[list[dict[str, Any]]]


@dataclass
class BatchStats:
    """What the batcher has done: requests and texts served, model calls made."""

    requests: int = 0
    texts: int = 0
    batches: int = 0
    largest: int = 0

    def as_dict(self) -> dict[str, Any]:
        return {
            "requests": self.requests,
            "texts": self.texts,
            "batches": self.batches,
            "largest_batch": self.largest,
        }


class TextBatcher:
    """Coalesces concurrent ``submit`` calls into batched calls of ``score`` in a thread."""

    def __init__(self, score: ScoreTexts, max_batch_size: int, max_wait_ms: float = 2.0) -> None:
        self.score = score
        self.max_batch_size = max_batch_size
        self.max_wait = max_wait_ms / 1000
        self.stats = BatchStats()
        self._queue: deque[_Pending] = deque()
        self._wake: asyncio.Event | None = None
        self._worker: asyncio.Task[None] | None = None
        self._loop: asyncio.AbstractEventLoop | None = None

    async def submit(self, texts: Sequence[str]) -> list[dict[str, Any]]:
        """The scores of ``texts``, in order, computed in a batch with other callers' texts.

        Raises:
            Whatever ``score`` raised for the batch this request was part of.
        """
        loop = asyncio.get_running_loop()
        if self._loop is not loop or self._worker is None or self._worker.done():
            # One worker per loop: a test client or a restarted server brings a new loop.
            self._loop, self._wake = loop, asyncio.Event()
            self._worker = loop.create_task(self._work(), name="sentiment-batcher")
        future: asyncio.Future[list[dict[str, Any]]] = loop.create_future()
        self._queue.append(_Pending(texts, future))
        assert self._wake is not None
        self._wake.set()
        return await future

    async def _work(self) -> None:
        wake = self._wake
        assert wake is not None
        while True:
            await wake.wait()
            wake.clear()
            while self._queue:
                if len(self._queue) == 1 and self.max_wait > 0:
                    await asyncio.sleep(self.max_wait)  # a moment for company
                batch = self._take()
                await self._run(batch)

    def _take(self) -> list[_Pending]:
        """Whole requests from the queue's head, up to ``max_batch_size`` texts (at least one)."""
        batch = [self._queue.popleft()]
        size = len(batch[0].texts)
        while self._queue and size + len(self._queue[0].texts) <= self.max_batch_size:
            size += len(self._queue[0].texts)
            batch.append(self._queue.popleft())
        return batch

    async def _run(self, batch: list[_Pending]) -> None:
        texts = [text for pending in batch for text in pending.texts]
        try:
            scored = await anyio.to_thread.run_sync(self.score, texts)
        except Exception as exc:  # every caller of the batch learns why, in its own request
            for pending in batch:
                if not pending.future.done():
                    pending.future.set_exception(exc)
            return
        self._record(len(batch), len(texts))
        start = 0
        for pending in batch:
            end = start + len(pending.texts)
            if not pending.future.done():  # a caller that gave up is simply skipped
                pending.future.set_result(scored[start:end])
            start = end

    def _record(self, requests: int, texts: int) -> None:
        stats = self.stats
        stats.requests += requests
        stats.texts += texts
        stats.batches += 1
        stats.largest = max(stats.largest, texts)
        logger.debug("sentiment batch of %d texts from %d requests", texts, requests)


__all__ = ["BatchStats", "TextBatcher"]
