"""KServe logger CloudEvents: parse them and pull texts / predictions out of their payloads.

KServe's logger agent (``pkg/logger`` in kserve) sends one event for the request and one for
the response of each call, both with the same ``ce-id``, in binary mode: ``ce-specversion``,
``ce-id``, ``ce-type`` (:data:`REQUEST_TYPE` / :data:`RESPONSE_TYPE`), ``ce-source``,
``ce-time`` and the extensions ``ce-inferenceservicename``, ``ce-namespace``,
``ce-component``, ``ce-endpoint`` and ``ce-metadata`` as headers, the payload as the body.
A Knative broker or another relay may re-send them in structured mode
(``application/cloudevents+json``); the CloudEvents SDK reads both.

Payloads are this project's V1 (``instances`` / ``predictions``) and V2 (``inputs`` /
``outputs``) bodies, as documented in ARCHITECTURE.md.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any, Mapping

from cloudevents.exceptions import GenericException
from cloudevents.http import from_http

REQUEST_TYPE = "org.kubeflow.serving.inference.request"
RESPONSE_TYPE = "org.kubeflow.serving.inference.response"
KINDS = {REQUEST_TYPE: "request", RESPONSE_TYPE: "response"}


class MalformedEvent(ValueError):
    """An event the monitor cannot use; ``reason`` is a short label for the rejection counter."""

    def __init__(self, reason: str, message: str):
        super().__init__(message)
        self.reason = reason


@dataclass(frozen=True)
class InferenceEvent:
    """One logged request or response: its pairing id, origin and decoded JSON payload."""

    id: str
    kind: str  # "request" or "response"
    inference_service: str
    payload: Any


@dataclass(frozen=True)
class Prediction:
    label: str
    score: float


def parse_event(headers: Mapping[str, str], body: bytes) -> InferenceEvent:
    """Decode a binary- or structured-mode CloudEvent from KServe's logger.

    Raises:
        MalformedEvent: not a CloudEvent, not an inference request/response, payload not JSON.
    """
    try:
        event = from_http(headers, body)
    except GenericException as err:
        raise MalformedEvent("not_cloudevent", f"not a CloudEvent: {err}") from err
    kind = KINDS.get(event["type"])
    if kind is None:
        raise MalformedEvent("unknown_type", f"CloudEvent type {event['type']!r} is not one of {sorted(KINDS)}")
    payload = event.data
    if isinstance(payload, (bytes, str)):
        try:
            payload = json.loads(payload)
        except (ValueError, UnicodeDecodeError) as err:
            raise MalformedEvent("payload_not_json", f"{kind} payload is not JSON: {err}") from err
    return InferenceEvent(
        id=event["id"],
        kind=kind,
        inference_service=str(event.get("inferenceservicename", "")),
        payload=payload,
    )


def _v2_tensor(tensors: Any, name: str, where: str) -> list:
    if not isinstance(tensors, list):
        raise MalformedEvent("bad_payload", f"{where} must be a list of tensors")
    for tensor in tensors:
        if isinstance(tensor, dict) and tensor.get("name") == name and isinstance(tensor.get("data"), list):
            return tensor["data"]
    raise MalformedEvent("bad_payload", f"{where} has no tensor named {name!r} with a data list")


def texts_from_request(payload: Any) -> list[str]:
    """The texts of a V1 (``instances``: strings or ``{"text": ...}``) or V2 (input ``text``) request.

    Raises:
        MalformedEvent: no texts, or an instance that is not a text.
    """
    if isinstance(payload, dict) and "instances" in payload:
        instances = payload["instances"]
        if not isinstance(instances, list):
            raise MalformedEvent("bad_payload", "'instances' must be a list")
        texts = [i.get("text") if isinstance(i, dict) else i for i in instances]
    elif isinstance(payload, dict) and "inputs" in payload:
        texts = _v2_tensor(payload["inputs"], "text", "'inputs'")
    else:
        raise MalformedEvent("bad_payload", "request has neither 'instances' (V1) nor 'inputs' (V2)")
    if not texts:
        raise MalformedEvent("bad_payload", "request holds no texts")
    bad = [i for i, t in enumerate(texts) if not isinstance(t, str)]
    if bad:
        raise MalformedEvent("bad_payload", f"instances {bad[:5]} are not texts")
    bad = [i for i, t in enumerate(texts) if not _is_unicode(t)]
    if bad:
        raise MalformedEvent("bad_payload", f"instances {bad[:5]} are not valid Unicode (lone surrogates)")
    return texts


def _is_unicode(text: str) -> bool:
    """False for JSON strings like "\\ud800" that decode to lone surrogates the tokenizer cannot take."""
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True


def predictions_from_response(payload: Any) -> list[Prediction]:
    """Label and score of each prediction in a V1 (``predictions``) or V2 (outputs ``label``, ``score``) response.

    Raises:
        MalformedEvent: no predictions, or one without a string label and a score in [0, 1].
    """
    if isinstance(payload, dict) and "predictions" in payload:
        items = payload["predictions"]
        if not isinstance(items, list) or not all(isinstance(p, dict) for p in items):
            raise MalformedEvent("bad_payload", "'predictions' must be a list of objects")
        pairs = [(p.get("label"), p.get("score")) for p in items]
    elif isinstance(payload, dict) and "outputs" in payload:
        labels = _v2_tensor(payload["outputs"], "label", "'outputs'")
        scores = _v2_tensor(payload["outputs"], "score", "'outputs'")
        if len(labels) != len(scores):
            raise MalformedEvent("bad_payload", f"{len(labels)} labels but {len(scores)} scores")
        pairs = list(zip(labels, scores))
    else:
        raise MalformedEvent("bad_payload", "response has neither 'predictions' (V1) nor 'outputs' (V2)")
    if not pairs:
        raise MalformedEvent("bad_payload", "response holds no predictions")
    predictions = []
    for i, (label, score) in enumerate(pairs):
        if not isinstance(label, str) or isinstance(score, bool) or not isinstance(score, (int, float)) or not 0 <= score <= 1:
            raise MalformedEvent("bad_payload", f"prediction {i} needs a string 'label' and a 'score' in [0, 1]")
        predictions.append(Prediction(label, float(score)))
    return predictions
