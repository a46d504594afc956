"""The batcher of ``/sentiment``: concurrent callers share model calls and get their own answers."""

from __future__ import annotations

import asyncio
import threading
import time
from collections.abc import Sequence
from typing import Any

from csa.serving.batching import TextBatcher


class CountingScorer:
    """A scoring function that takes a fixed time per call, like an encoder pass, and counts."""

    def __init__(self, seconds: float = 0.02, fail: bool = False) -> None:
        self.seconds, self.fail = seconds, fail
        self.calls: list[int] = []
        self._lock = threading.Lock()

    def __call__(self, texts: Sequence[str]) -> list[dict[str, Any]]:
        with self._lock:
            self.calls.append(len(texts))
        time.sleep(self.seconds)
        if self.fail:
            raise RuntimeError("no champion")
        return [{"text": text, "length": len(text)} for text in texts]


def run(coroutine: Any) -> Any:
    return asyncio.run(coroutine)


def test_concurrent_requests_share_calls_and_each_gets_its_own_slice() -> None:
    scorer = CountingScorer()
    batcher = TextBatcher(scorer, max_batch_size=64)
    requests = [[f"r{i}-t{j}" for j in range(1 + i % 3)] for i in range(30)]

    async def main() -> list[list[dict[str, Any]]]:
        return await asyncio.gather(*(batcher.submit(texts) for texts in requests))

    answers = run(main())

    assert [[a["text"] for a in answer] for answer in answers] == requests
    assert len(scorer.calls) < len(requests)
    assert sum(scorer.calls) == sum(len(texts) for texts in requests)
    assert batcher.stats.batches == len(scorer.calls)
    assert batcher.stats.requests == len(requests)


def test_no_batch_exceeds_the_cap_and_a_large_request_is_never_split() -> None:
    scorer = CountingScorer()
    batcher = TextBatcher(scorer, max_batch_size=8)
    requests = [["a"] * 5, ["b"] * 5, ["c"] * 20, ["d"] * 3]

    async def main() -> list[list[dict[str, Any]]]:
        return await asyncio.gather(*(batcher.submit(texts) for texts in requests))

    answers = run(main())

    assert [len(answer) for answer in answers] == [5, 5, 20, 3]
    assert all(size <= 8 for size in scorer.calls if size != 20)
    assert 20 in scorer.calls


def test_a_failed_batch_raises_in_every_callers_request() -> None:
    batcher = TextBatcher(CountingScorer(fail=True), max_batch_size=64)

    async def main() -> list[Any]:
        calls = (batcher.submit([f"t{i}"]) for i in range(5))
        return await asyncio.gather(*calls, return_exceptions=True)

    outcomes = run(main())

    assert all(isinstance(o, RuntimeError) and "no champion" in str(o) for o in outcomes)


def test_the_batcher_serves_a_new_event_loop() -> None:
    batcher = TextBatcher(CountingScorer(seconds=0), max_batch_size=4)

    for _ in range(2):  # a restarted server or a new test client brings a new loop
        assert run(batcher.submit(["again"]))[0]["text"] == "again"
