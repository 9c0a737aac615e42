"""The dynamic batcher: merges requests, keeps each its results, and fails only the request at fault.

(The backends' agreement with fp32 and the batching of texts into passes: tests/inference/.)
"""

from __future__ import annotations

import asyncio
import time

import pytest

from serving.batching import DynamicBatcher


@pytest.mark.parametrize("workers", [1, 2])
def test_batcher_merges_and_keeps_each_request_its_results(workers):
    batches = []

    def infer(items):
        batches.append(list(items))
        time.sleep(0.01)
        return [item * 10 for item in items]

    batcher = DynamicBatcher(infer, max_batch_size=8, max_delay=0.05, workers=workers)

    async def main():
        return await asyncio.gather(*(batcher.submit([i, i + 100]) for i in range(10)))

    results = asyncio.run(main())
    batcher.close()
    assert results == [[i * 10, (i + 100) * 10] for i in range(10)]
    assert all(len(batch) <= 8 for batch in batches)
    assert len(batches) < 10  # merged
    assert sorted(item for batch in batches for item in batch) == sorted(x for i in range(10) for x in (i, i + 100))


def test_batcher_failure_fails_only_the_request_that_caused_it_and_it_keeps_working():
    calls = []

    def infer(items):
        calls.append(list(items))
        if "boom" in items:
            raise RuntimeError("backend failed")
        return [len(item) for item in items]

    batcher = DynamicBatcher(infer, max_batch_size=8, max_delay=0.2)

    async def main():
        together = await asyncio.gather(
            batcher.submit(["a"]), batcher.submit(["boom", "xx"]), batcher.submit(["ccc"]), return_exceptions=True
        )
        return together, await batcher.submit(["ok!"])

    (first, failed, last), after = asyncio.run(main())
    batcher.close()
    assert first == [1] and last == [3] and after == [3]
    assert isinstance(failed, RuntimeError) and str(failed) == "backend failed"
    # One merged batch, then each request on its own.
    assert calls[:4] == [["a", "boom", "xx", "ccc"], ["a"], ["boom", "xx"], ["ccc"]]


def test_batcher_reports_its_workers_alive_until_closed():
    batcher = DynamicBatcher(lambda items: items, max_batch_size=2, max_delay=0.0, workers=2)
    assert batcher.alive()
    batcher.close()
    assert not batcher.alive()
