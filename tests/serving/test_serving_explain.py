"""V1 ``:explain`` on the real server: word attributions in request order, limits as named 400s,
no request headers sent back, and the event loop free while an explanation runs."""

from __future__ import annotations

import asyncio
import http.client
import json
import time

import aiohttp
import pytest

from tests.serving.conftest import MODEL_NAME, TEXTS

EXPLAIN = f"/v1/models/{MODEL_NAME}:explain"
PREDICT = f"/v1/models/{MODEL_NAME}:predict"
JSON = {"Content-Type": "application/json"}
LABELS = ["negative", "positive"]


def post(server, path: str, body, headers=JSON):
    connection = http.client.HTTPConnection("127.0.0.1", server.http_port, timeout=60)
    try:
        connection.request("POST", path, body=body if isinstance(body, bytes) else json.dumps(body), headers=headers)
        response = connection.getresponse()
        return (
            response.status,
            {key.lower(): value for key, value in response.getheaders()},
            json.loads(response.read()),
        )
    finally:
        connection.close()


def test_explanations_name_the_labels_and_the_words_in_request_order(server):
    texts = TEXTS[:4]
    status, _, body = post(server, EXPLAIN, {"instances": texts, "parameters": {"steps": 16}})
    assert status == 200, body
    assert (body["method"], body["attributes"], body["steps"]) == ("integrated_gradients", "log_odds", 16)
    _, _, predicted = post(server, PREDICT, {"instances": texts})
    assert len(body["explanations"]) == len(texts)
    for text, explanation, prediction in zip(texts, body["explanations"], predicted["predictions"]):
        assert set(explanation) == {
            "label",
            "score",
            "probabilities",
            "explained_label",
            "words",
            "truncated",
            "log_odds",
            "baseline_log_odds",
            "convergence_delta",
        }
        # The same answer as :predict (both fp32 PyTorch here), with the label names.
        assert explanation["label"] == prediction["label"] == explanation["explained_label"]
        assert list(explanation["probabilities"]) == LABELS
        assert explanation["probabilities"] == pytest.approx(prediction["probabilities"], abs=1e-4)
        assert [set(word) for word in explanation["words"]] == [{"word", "start", "end", "attribution"}] * len(
            explanation["words"]
        )
        assert [text[word["start"] : word["end"]] for word in explanation["words"]] == [
            word["word"] for word in explanation["words"]
        ]
        assert "".join(word["word"] for word in explanation["words"]) == "".join(text.split())
        total = sum(word["attribution"] for word in explanation["words"])
        assert total == pytest.approx(explanation["log_odds"] - explanation["baseline_log_odds"], abs=0.01)


def test_the_explained_label_can_be_chosen(server):
    text = [TEXTS[1]]
    _, _, own = post(server, EXPLAIN, {"instances": text, "parameters": {"steps": 16}})
    other = "positive" if own["explanations"][0]["label"] == "negative" else "negative"
    status, _, chosen = post(server, EXPLAIN, {"instances": text, "parameters": {"steps": 16, "label": other}})
    assert status == 200 and chosen["explanations"][0]["explained_label"] == other
    # Two labels: the other label's probability moves exactly opposite.
    assert [word["attribution"] for word in chosen["explanations"][0]["words"]] == pytest.approx(
        [-word["attribution"] for word in own["explanations"][0]["words"]], abs=1e-5
    )


@pytest.mark.parametrize(
    "body, status, message",
    [
        (
            {"instances": ["fine"], "parameters": {"steps": 65}},
            400,
            "parameters.steps 65 is above the limit of 64 (explain_max_steps)",
        ),
        (
            {"instances": ["fine"], "parameters": {"steps": 0}},
            400,
            "parameters.steps must be a positive integer, got 0",
        ),
        (
            {"instances": ["fine"], "parameters": {"steps": "many"}},
            400,
            "parameters.steps must be a positive integer, got 'many'",
        ),
        (
            {"instances": ["fine"], "parameters": {"label": "neutral"}},
            400,
            "parameters.label 'neutral' is not one of the model's labels ['negative', 'positive']",
        ),
        ({"instances": ["fine"], "parameters": {"target": 1}}, 400, "unknown :explain parameters ['target']"),
        ({"instances": ["fine"], "parameters": [16]}, 400, '"parameters" must be a JSON object, got list'),
        ({"instances": [TEXTS[7]] * 3}, 400, "above the :explain limit of 300 (explain_max_tokens)"),
        ({"instances": []}, 400, "instances is empty"),
    ],
)
def test_limits_and_bad_parameters_are_named_400s(server, body, status, message):
    got, _, answer = post(server, EXPLAIN, body)
    assert (got, set(answer)) == (status, {"error"})
    assert message in answer["error"]


def test_the_http_guards_cover_explain(server):
    status, _, answer = post(server, EXPLAIN, b'{"instances": ["a"]}', {"Content-Type": "text/plain"})
    assert status == 415 and "Content-Type must be application/json" in answer["error"]
    status, _, answer = post(server, EXPLAIN, json.dumps({"instances": ["a" * 30_000]}).encode())
    assert status == 413 and "over the limit of 20000 bytes" in answer["error"]


def test_request_headers_are_not_sent_back(server):
    """kserve 0.21 would echo every request header on :explain (its DataPlane reuses the dict)."""
    headers = {**JSON, "Authorization": "Bearer secret-token", "X-Secret": "hunter2", "Cookie": "session=abc"}
    status, response_headers, _ = post(server, EXPLAIN, {"instances": ["fine"], "parameters": {"steps": 4}}, headers)
    assert status == 200
    assert not {"authorization", "x-secret", "cookie"} & set(response_headers)
    assert not any(value in ("Bearer secret-token", "hunter2", "session=abc") for value in response_headers.values())
    assert response_headers["content-type"] == "application/json"


def test_the_event_loop_answers_while_an_explanation_runs(server):
    """The largest explanation the limits allow; readiness checks, one after another, are answered
    while it runs. On the event loop it would hold all of them until it finished."""
    body = {"instances": [TEXTS[7], TEXTS[3]], "parameters": {"steps": 64}}

    async def main():
        async with aiohttp.ClientSession(server.url, timeout=aiohttp.ClientTimeout(total=120)) as session:

            async def explain():
                async with session.post(EXPLAIN, json=body) as response:
                    assert response.status == 200, await response.text()
                    return time.perf_counter()

            task = asyncio.create_task(explain())
            await asyncio.sleep(0.05)  # the explanation is under way
            answered = []
            while not task.done():
                async with session.get(f"/v1/models/{MODEL_NAME}") as response:
                    assert response.status == 200
                answered.append(time.perf_counter())
            finished = await task
            return [moment for moment in answered if moment < finished]

    assert len(asyncio.run(main())) >= 3


def test_explanations_beyond_the_pending_limit_get_429(server):
    """Two may run or wait (the fixture's limit); of six sent at once, the rest are refused at once."""
    body = {"instances": [TEXTS[7], TEXTS[3]], "parameters": {"steps": 64}}

    async def main():
        async with aiohttp.ClientSession(server.url, timeout=aiohttp.ClientTimeout(total=120)) as session:

            async def explain():
                async with session.post(EXPLAIN, json=body) as response:
                    return response.status, await response.json()

            return await asyncio.gather(*(explain() for _ in range(6)))

    answers = asyncio.run(main())
    statuses = sorted(status for status, _ in answers)
    assert statuses.count(200) >= 2 and statuses.count(429) >= 1 and set(statuses) == {200, 429}
    refused = next(answer for status, answer in answers if status == 429)
    assert "limit (explain_max_pending)" in refused["error"]
    # The slots are given back: the server explains again.
    assert post(server, EXPLAIN, {"instances": ["fine"], "parameters": {"steps": 4}})[0] == 200
