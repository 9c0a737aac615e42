"""A closed-loop asyncio/aiohttp load client: ``concurrency`` workers, each sending its next text as
soon as the previous answer arrives. Bounded by a request count and a wall-clock limit."""

from __future__ import annotations

import asyncio
import dataclasses
import statistics
import time
from collections.abc import Callable, Sequence

import aiohttp


@dataclasses.dataclass
class LoadResult:
    concurrency: int
    completed: int
    errors: int
    seconds: float
    latencies: list[float]
    answers: dict[int, str]  # text index -> predicted label name

    @property
    def throughput(self) -> float:
        return self.completed / self.seconds if self.seconds else 0.0

    def percentile_ms(self, q: float) -> float:
        if not self.latencies:
            return float("nan")
        ordered = sorted(self.latencies)
        return 1000 * ordered[min(len(ordered) - 1, int(q * len(ordered)))]

    @property
    def p50_ms(self) -> float:
        return 1000 * statistics.median(self.latencies) if self.latencies else float("nan")


async def _run(
    url: str,
    texts: Sequence[str],
    concurrency: int,
    make_body: Callable[[str], dict],
    read_label: Callable[[dict], str],
    time_limit: float,
) -> LoadResult:
    next_index = 0
    latencies: list[float] = []
    answers: dict[int, str] = {}
    errors = 0
    deadline = time.perf_counter() + time_limit
    connector = aiohttp.TCPConnector(limit=concurrency)
    async with aiohttp.ClientSession(connector=connector, timeout=aiohttp.ClientTimeout(total=120)) as session:

        async def worker():
            nonlocal next_index, errors
            while next_index < len(texts) and time.perf_counter() < deadline:
                index = next_index
                next_index += 1
                started = time.perf_counter()
                async with session.post(url, json=make_body(texts[index])) as response:
                    body = await response.json(content_type=None)
                    if response.status != 200:
                        errors += 1
                        continue
                latencies.append(time.perf_counter() - started)
                answers[index] = read_label(body)

        started = time.perf_counter()
        await asyncio.gather(*(worker() for _ in range(concurrency)))
        seconds = time.perf_counter() - started
    return LoadResult(concurrency, len(latencies), errors, seconds, latencies, answers)


def run_load(
    url: str,
    texts: Sequence[str],
    concurrency: int,
    make_body: Callable[[str], dict],
    read_label: Callable[[dict], str],
    time_limit: float = 120.0,
) -> LoadResult:
    """Send each text once (in order, ``concurrency`` at a time) until done or ``time_limit``."""
    return asyncio.run(_run(url, texts, concurrency, make_body, read_label, time_limit))
