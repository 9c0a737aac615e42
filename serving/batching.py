"""Dynamic batching: concurrent requests are merged into one inference call on a worker thread.

Requests wait at most ``max_delay`` for company and never beyond ``max_batch_size`` texts (a
single larger request runs alone). Inference runs on dedicated worker threads (``workers``, one
by default), so the event loop stays free for health checks and new requests. On small CPUs
several single-threaded workers often beat one multi-threaded worker: no barrier between the
backend's threads, which stalls whenever another process holds a core.

One request cannot fail another: when a merged batch fails, each of its requests is run again on
its own, so the request that caused the failure gets the error and the others their answers.

In front of the batcher, :class:`RequestQueue` bounds how many inference requests the server holds
at once, from arrival to answer. A request takes its place before its body is read, so a burst of
large bodies gets 503 with ``Retry-After`` instead of growing the pod's memory until it is killed.
"""

from __future__ import annotations

import asyncio
import collections
import dataclasses
import logging
import queue
import threading
import time
from collections.abc import Callable, Sequence
from typing import Generic, TypeVar

from prometheus_client import Counter, Gauge, Histogram

logger = logging.getLogger(__name__)

Item = TypeVar("Item")
Result = TypeVar("Result")

BATCH_SIZE = Histogram(
    "textclf_batch_size",
    "Texts per inference batch after merging concurrent requests",
    buckets=(1, 2, 4, 8, 16, 32, 64, 128, 256),
)
BATCH_SECONDS = Histogram("textclf_batch_seconds", "Inference time per merged batch")
BATCH_RETRIES = Counter("textclf_batch_retries", "Merged batches that failed and were run again request by request")
QUEUED = Gauge("textclf_queued_requests", "Inference requests in the server now, from arrival to answer")
SHED = Counter("textclf_shed_requests", "Inference requests answered 503 because the request queue was full")


class BatcherClosed(RuntimeError):
    """The batcher is shutting down and takes no new work."""


class QueueFull(RuntimeError):
    """Every place in the request queue is taken: HTTP 503 with ``Retry-After``, gRPC RESOURCE_EXHAUSTED."""

    def __init__(self, limit: int, retry_after_seconds: int):
        super().__init__(
            f"the server already holds {limit} inference requests, its limit (max_queued_requests): "
            f"retry after {retry_after_seconds} s"
        )
        self.retry_after_seconds = retry_after_seconds


class RequestQueue:
    """The server's bounded queue of inference requests (REST and gRPC share it).

    Used on the event loop only, so a plain counter is enough.

    Args:
        limit: most requests held at once; the next one is refused.
        retry_after_seconds: what a refused client is told to wait.
    """

    def __init__(self, limit: int, retry_after_seconds: int = 1):
        if limit < 1:
            raise ValueError(f"the request queue needs room for at least 1 request, got {limit}")
        self.limit = limit
        self.retry_after_seconds = retry_after_seconds
        self.depth = 0

    def enter(self) -> None:
        """Take a place, or raise :class:`QueueFull` (counted in ``textclf_shed_requests``)."""
        if self.depth >= self.limit:
            SHED.inc()
            raise QueueFull(self.limit, self.retry_after_seconds)
        self.depth += 1
        QUEUED.inc()

    def leave(self) -> None:
        """Give the place back once the request is answered (or failed)."""
        self.depth -= 1
        QUEUED.dec()


@dataclasses.dataclass
class _Job(Generic[Item]):
    items: Sequence[Item]
    future: asyncio.Future
    loop: asyncio.AbstractEventLoop


_STOP = object()


class DynamicBatcher(Generic[Item, Result]):
    """Runs ``infer(items) -> results`` (same length, same order) over merged requests.

    Args:
        infer: the batch function; called on the worker thread only.
        max_batch_size: most items merged into one call.
        max_delay: seconds the first request of a batch waits for others to join.
        workers: threads running batches concurrently (``infer`` must then be thread-safe).
    """

    def __init__(
        self, infer: Callable[[list[Item]], Sequence[Result]], max_batch_size: int, max_delay: float, workers: int = 1
    ):
        if max_batch_size < 1 or workers < 1:
            raise ValueError(f"max_batch_size and workers must be at least 1, got {max_batch_size}, {workers}")
        self._infer = infer
        self.max_batch_size = max_batch_size
        self.max_delay = max_delay
        self._queue: queue.Queue = queue.Queue()
        self._closed = False
        self._lock = threading.Lock()  # makes "not closed, then enqueue" one step against close()
        self._threads = [
            threading.Thread(target=self._run, name=f"inference-{index}", daemon=True) for index in range(workers)
        ]
        for thread in self._threads:
            thread.start()

    async def submit(self, items: Sequence[Item]) -> list[Result]:
        """Results for ``items``, computed together with whatever else is queued."""
        loop = asyncio.get_running_loop()
        future = loop.create_future()
        with self._lock:
            if self._closed:
                raise BatcherClosed("the model is shutting down")
            self._queue.put(_Job(items, future, loop))
        return await future

    def alive(self) -> bool:
        """Every worker thread is running (False once closed, or if one died)."""
        return not self._closed and all(thread.is_alive() for thread in self._threads)

    def close(self, timeout: float = 30.0) -> None:
        """Stop taking work, finish what is queued (graceful drain), then stop the thread."""
        with self._lock:
            if self._closed:
                return
            self._closed = True
            for _ in self._threads:
                self._queue.put(_STOP)
        deadline = time.monotonic() + timeout
        for thread in self._threads:
            thread.join(max(0.0, deadline - time.monotonic()))

    def _next(self, held: collections.deque, timeout: float | None):
        if held:
            return held.popleft()
        if timeout is not None and timeout <= 0:
            return self._queue.get_nowait()
        return self._queue.get(timeout=timeout)

    def _run(self) -> None:
        held: collections.deque = collections.deque()  # a job that did not fit this worker's last batch
        while True:
            job = self._next(held, None)
            if job is _STOP:
                return
            jobs, size = [job], len(job.items)
            deadline = time.monotonic() + self.max_delay
            stop_after = False
            while size < self.max_batch_size:
                try:
                    job = self._next(held, deadline - time.monotonic())
                except queue.Empty:
                    break
                if job is _STOP:
                    stop_after = True
                    break
                if size + len(job.items) > self.max_batch_size:
                    held.append(job)
                    break
                jobs.append(job)
                size += len(job.items)
            self._process(jobs)
            if stop_after:
                while held:  # drain: a held job still gets its answer
                    self._process([held.popleft()])
                return

    def _process(self, jobs: list[_Job]) -> None:
        items = [item for job in jobs for item in job.items]
        BATCH_SIZE.observe(len(items))
        try:
            with BATCH_SECONDS.time():
                results = list(self._infer(items))
            if len(results) != len(items):
                raise RuntimeError(f"batch function returned {len(results)} results for {len(items)} items")
        except Exception as error:
            if len(jobs) > 1:  # find the request at fault: each one alone
                logger.warning(
                    "A batch of %d requests failed (%s: %s); running them one by one",
                    len(jobs),
                    type(error).__name__,
                    error,
                )
                BATCH_RETRIES.inc()
                for job in jobs:
                    self._process([job])
                return
            if isinstance(error, ValueError):  # the request's own fault (kserve's InvalidInput is one)
                logger.info("A request of %d items was refused: %s", len(items), error)
            else:
                logger.exception("Inference failed for a request of %d items", len(items))
            jobs[0].loop.call_soon_threadsafe(_resolve, jobs[0].future, None, error)
            return
        start = 0
        for job in jobs:
            part = results[start : start + len(job.items)]
            start += len(job.items)
            job.loop.call_soon_threadsafe(_resolve, job.future, part, None)


def _resolve(future: asyncio.Future, result, error: BaseException | None) -> None:
    if future.done():  # the client went away and the request was cancelled
        return
    if error is not None:
        future.set_exception(error)
    else:
        future.set_result(result)
