"""64 concurrent requests with different texts: batching merges them, and every answer belongs to
its own text."""

from __future__ import annotations

import asyncio
import re
import urllib.request

import aiohttp
import pytest

from tests.serving.conftest import MODEL_NAME, TEXTS

URL = "/v1/models/" + MODEL_NAME + ":predict"


def batch_count(server) -> float:
    text = urllib.request.urlopen(f"{server.url}/metrics", timeout=10).read().decode()
    return float(re.search(r"^textclf_batch_size_count (\S+)$", text, re.M).group(1))


async def predict_all(server, texts):
    async with aiohttp.ClientSession(server.url, timeout=aiohttp.ClientTimeout(total=60)) as session:

        async def one(text):
            async with session.post(URL, json={"instances": [text]}) as response:
                assert response.status == 200, await response.text()
                return (await response.json())["predictions"][0]

        return await asyncio.gather(*(one(text) for text in texts))


def test_64_concurrent_requests_each_get_their_own_answer(server):
    # Different texts: the fixed ones, each with a distinct suffix that changes its prediction.
    texts = [f"{TEXTS[i % len(TEXTS)]} #{i} " + "really " * (i % 7) for i in range(64)]
    single = [asyncio.run(predict_all(server, [text]))[0] for text in texts]
    batches_before = batch_count(server)
    together = asyncio.run(predict_all(server, texts))
    for text, alone, merged in zip(texts, single, together):
        assert merged["label"] == alone["label"], text
        assert merged["probabilities"] == pytest.approx(alone["probabilities"], abs=1e-3), text
    assert len({round(p["score"], 2) for p in single}) > 16  # distinct answers, so a swap would show
    # They were batched: fewer inference calls than requests (delay 20 ms, batch up to 32).
    assert batch_count(server) - batches_before < 64
