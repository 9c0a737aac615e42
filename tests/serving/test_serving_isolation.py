"""No request may harm another: a bad text fails only its own request, whatever it was batched with,
and huge texts cost what their kept part costs."""

from __future__ import annotations

import asyncio
import concurrent.futures
import json
import time
import urllib.request

import aiohttp
import pytest
from kserve.errors import InvalidInput
from prometheus_client import REGISTRY

from serving.model import TextClassifierModel
from tests.serving.conftest import MODEL_NAME, TEXTS
from textclf.inference import InferenceSettings

V1 = f"/v1/models/{MODEL_NAME}:predict"
V2 = f"/v2/models/{MODEL_NAME}/infer"


def v2_json(texts) -> dict:
    return {"inputs": [{"name": "text", "datatype": "BYTES", "shape": [len(texts)], "data": list(texts)}]}


async def post_all(server, requests):
    """(status, JSON body) for each (path, raw body), all sent at once."""
    async with aiohttp.ClientSession(server.url, timeout=aiohttp.ClientTimeout(total=120)) as session:

        async def one(path, body):
            async with session.post(path, data=body, headers={"Content-Type": "application/json"}) as response:
                return response.status, await response.json(content_type=None)

        return await asyncio.gather(*(one(path, body) for path, body in requests))


def probabilities_of(path: str, answer: dict) -> list[float]:
    if path == V1:
        return list(answer["predictions"][0]["probabilities"].values())
    return next(output["data"] for output in answer["outputs"] if output["name"] == "probabilities")


def test_bad_requests_do_not_fail_the_good_ones_batched_with_them(server):
    """The issue's case: V1 and V2 requests sent together, some with texts the tokenizer cannot take
    (a lone surrogate, which JSON's escapes can carry) or nothing to classify."""
    good = [(V1 if i % 2 else V2, f"{TEXTS[i % len(TEXTS)]} #{i}") for i in range(40)]
    alone = {
        text: probabilities_of(path, answer)
        for (path, text), (_, answer) in zip(
            good,
            asyncio.run(
                post_all(
                    server,
                    [
                        (path, json.dumps({"instances": [text]} if path == V1 else v2_json([text])))
                        for path, text in good[:8]
                    ],
                )
            ),
        )
    }
    bad = [
        (V2, json.dumps(v2_json(["fine", "bad \ud800 text"]))),  # json.dumps writes the \\ud800 escape
        (V1, json.dumps({"instances": ["fine", "bad \udfff"]})),
        (V1, json.dumps({"instances": ["\u200b\ufeff"]})),
        (V2, json.dumps(v2_json(["\u2060"]))),
    ]
    requests = [(path, json.dumps({"instances": [text]} if path == V1 else v2_json([text]))) for path, text in good]
    for index, request in enumerate(bad):  # spread among the good ones
        requests.insert(index * 10 + 5, request)
    answers = asyncio.run(post_all(server, requests))
    bad_answers = [answers[index * 10 + 5] for index in range(len(bad))]
    good_answers = [
        answer for index, answer in enumerate(answers) if index not in {i * 10 + 5 for i in range(len(bad))}
    ]
    assert [status for status, _ in bad_answers] == [400] * len(bad), bad_answers
    assert "lone surrogate (U+D800)" in bad_answers[0][1]["error"]
    assert "surrogate" in bad_answers[1][1]["error"]  # V1's JSON parser (orjson) refuses it already
    assert all(status == 200 for status, _ in good_answers), good_answers
    for (path, text), (_, answer) in zip(good, good_answers):
        if text in alone:
            assert probabilities_of(path, answer) == pytest.approx(alone[text], abs=1e-3)


@pytest.fixture(scope="module")
def model(decisive_model_dir):
    served = TextClassifierModel(
        MODEL_NAME, decisive_model_dir, InferenceSettings(backend="torch", threads=1), max_batch_delay_ms=200
    )
    served.load()
    yield served
    served.stop()


def test_a_text_the_tokenizer_refuses_fails_only_its_own_request(model):
    """Past validation (the surrogate is handed to the batcher directly), in one merged batch: the
    batch fails, each request runs again alone, and only the one holding the text gets a 400."""
    retries = REGISTRY.get_sample_value("textclf_batch_retries_total") or 0

    async def main():
        return await asyncio.gather(
            model.batcher.submit([TEXTS[0]]),
            model.batcher.submit(["bad \ud800"]),
            model.batcher.submit(TEXTS[1:3]),
            return_exceptions=True,
        )

    first, refused, rest = asyncio.run(main())
    assert isinstance(refused, InvalidInput) and "cannot be tokenized" in str(refused)
    assert [p.label for p in first + rest] == [p.label for p in model.engine.classify(TEXTS[:3])]
    assert REGISTRY.get_sample_value("textclf_batch_retries_total") == retries + 1
    assert asyncio.run(model.healthy())  # and it keeps serving


def post(url: str, body: bytes) -> tuple[float, dict]:
    """Seconds taken and the JSON answer (raises on a status >= 400)."""
    start = time.monotonic()
    request = urllib.request.Request(url, data=body, headers={"Content-Type": "application/json"})
    with urllib.request.urlopen(request, timeout=120) as response:
        return time.monotonic() - start, json.loads(response.read())


def test_4_mb_texts_are_answered_quickly_and_do_not_hold_up_others(open_server):
    """Texts are cut by characters before tokenizing, so four 4 MB texts in flight cost what four
    16 KB texts cost; a normal request sent meanwhile is answered within a generous bound (the
    whole 4 MB once took seconds per text to tokenize, on the one worker everyone shares)."""
    url = f"{open_server.url}{V1}"
    huge = ("a long review that never ends " * 140_000)[:4_000_000]
    normal = json.dumps({"instances": [TEXTS[0]]}).encode()
    baseline = max(post(url, normal)[0] for _ in range(3))
    with concurrent.futures.ThreadPoolExecutor(5) as pool:
        huge_calls = [pool.submit(post, url, json.dumps({"instances": [huge]}).encode()) for _ in range(4)]
        time.sleep(0.05)  # the huge bodies are on their way
        normal_seconds, normal_answer = post(url, normal)
        huge_answers = [call.result() for call in huge_calls]
    (cut,) = post(url, json.dumps({"instances": [huge[:20_000]]}).encode())[1]["predictions"]  # > what it reads
    for seconds, answer in huge_answers:
        (prediction,) = answer["predictions"]  # classified by the part the model reads:
        assert prediction["label"] == cut["label"]
        assert prediction["probabilities"] == pytest.approx(cut["probabilities"], abs=1e-4)
        assert seconds < 30
    assert normal_answer["predictions"][0]["label"] in ("negative", "positive")
    assert normal_seconds < baseline + 10
