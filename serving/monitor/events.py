"""KServe logger CloudEvents: parse them and pull texts / predictions out of their payloads.

KServe's logger agent (``pkg/logger`` in kserve) sends one event for the request and one for
the response of each call, both with the same ``ce-id``, in binary mode: ``ce-specversion``,
``ce-id``, ``ce-type`` (:data:`REQUEST_TYPE` / :data:`RESPONSE_TYPE`), ``ce-source``,
``ce-time`` and the extensions ``ce-inferenceservicename``, ``ce-namespace``,
``ce-component``, ``ce-endpoint`` and ``ce-metadata`` as headers, the payload as the body.
A Knative broker or another relay may re-send them in structured mode
(``application/cloudevents+json``: the attributes and ``data`` in one JSON object).

Both modes are read here (CloudEvents 1.0 HTTP binding), not by the CloudEvents SDK: the SDK
decodes a structured event's JSON twice and answers every missing header with "Failed to find
specversion"; here the body is decoded once and an error names what is missing.

Payloads are this project's V1 (``instances`` / ``predictions``) and V2 (``inputs`` /
``outputs``) bodies, as documented in docs/architecture.md.
"""

from __future__ import annotations

import base64
import binascii
import json
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

REQUEST_TYPE = "org.kubeflow.serving.inference.request"
RESPONSE_TYPE = "org.kubeflow.serving.inference.response"
KINDS = {REQUEST_TYPE: "request", RESPONSE_TYPE: "response"}
STRUCTURED_CONTENT_TYPE = "application/cloudevents+json"
REQUIRED_ATTRIBUTES = ("specversion", "id", "type", "source")
SPEC_VERSIONS = ("1.0", "0.3")
WHAT_KSERVE_SENDS = (
    f"KServe's logger sends binary-mode events: headers ce-specversion: 1.0, ce-id, ce-source, ce-type: {REQUEST_TYPE} "
    f"or {RESPONSE_TYPE}, and the payload as the body; a structured event needs Content-Type: {STRUCTURED_CONTENT_TYPE}"
)


class MalformedEvent(ValueError):
    """An event the monitor cannot use; ``reason`` is a short label for the rejection counter,
    ``status`` the HTTP status it is answered with."""

    def __init__(self, reason: str, message: str, status: int = 400):
        super().__init__(message)
        self.reason = reason
        self.status = status


@dataclass(frozen=True)
class InferenceEvent:
    """One logged request or response: its pairing id, origin and decoded JSON payload."""

    id: str
    kind: str  # "request" or "response"
    inference_service: str
    payload: Any
    metadata: str = ""  # the ce-metadata extension: JSON of the headers named in logger.metadataHeaders


@dataclass(frozen=True)
class Prediction:
    label: str
    score: float


def parse_event(headers: Mapping[str, str], body: bytes) -> InferenceEvent:
    """Decode a binary- or structured-mode CloudEvent from KServe's logger.

    The attributes are checked before the payload is decoded, so an event of the wrong kind
    costs no JSON parsing.

    Raises:
        MalformedEvent: not a CloudEvent (naming the missing headers or attributes), not an
            inference request/response, payload not JSON.
    """
    headers = {key.lower(): value for key, value in headers.items()}
    media_type = headers.get("content-type", "").split(";")[0].strip().lower()
    if media_type == STRUCTURED_CONTENT_TYPE:
        attributes = _structured(body)
        kind = _check_attributes(attributes, "attribute", "")
        payload = _structured_data(attributes, kind)
    else:
        attributes = {name[3:]: value for name, value in headers.items() if name.startswith("ce-")}
        kind = _check_attributes(attributes, "header", "ce-")
        payload = _json(body, kind) if body else None
    return InferenceEvent(
        id=str(attributes["id"]),
        kind=kind,
        inference_service=str(attributes.get("inferenceservicename", "")),
        payload=payload,
        metadata=_text(attributes.get("metadata")),
    )


def _text(value: Any) -> str:
    """An attribute as text: structured mode may carry an extension as JSON rather than a string."""
    if value is None:
        return ""
    return value if isinstance(value, str) else json.dumps(value)


def _check_attributes(attributes: Mapping[str, Any], what: str, prefix: str) -> str:
    """The event's kind, once the required attributes are there with values this monitor reads."""
    missing = [prefix + name for name in REQUIRED_ATTRIBUTES if not attributes.get(name)]
    if missing:
        present = sorted(prefix + name for name in attributes)
        seen = (
            f"it has {', '.join(present)}" if present else f"it has no {prefix + '* ' if prefix else ''}{what} at all"
        )
        raise MalformedEvent(
            "not_cloudevent", f"not a CloudEvent: missing {what}(s) {', '.join(missing)} ({seen}). {WHAT_KSERVE_SENDS}"
        )
    if attributes["specversion"] not in SPEC_VERSIONS:
        raise MalformedEvent(
            "not_cloudevent",
            f"CloudEvents {prefix}specversion {attributes['specversion']!r} is not one of {list(SPEC_VERSIONS)}",
        )
    kind = KINDS.get(attributes["type"])
    if kind is None:
        raise MalformedEvent("unknown_type", f"CloudEvent type {attributes['type']!r} is not one of {sorted(KINDS)}")
    return kind


def _json(data: bytes | str, kind: str) -> Any:
    try:
        return json.loads(data)
    except (ValueError, UnicodeDecodeError) as err:  # JSONDecodeError is a ValueError
        raise MalformedEvent("payload_not_json", f"{kind} payload is not JSON: {err}") from err


def _structured(body: bytes) -> dict[str, Any]:
    try:
        envelope = json.loads(body)
    except (ValueError, UnicodeDecodeError) as err:
        raise MalformedEvent("not_cloudevent", f"structured CloudEvent is not JSON: {err}") from err
    if not isinstance(envelope, dict):
        raise MalformedEvent(
            "not_cloudevent", f"structured CloudEvent must be a JSON object, got a JSON {type(envelope).__name__}"
        )
    return envelope


def _structured_data(envelope: Mapping[str, Any], kind: str) -> Any:
    """``data`` (JSON, or a string holding JSON) or ``data_base64`` of a structured event."""
    if "data_base64" in envelope:
        try:
            return _json(base64.b64decode(envelope["data_base64"], validate=True), kind)
        except (binascii.Error, TypeError) as err:
            raise MalformedEvent("payload_not_json", f"{kind} data_base64 is not base64: {err}") from err
    data = envelope.get("data")
    return _json(data, kind) if isinstance(data, str) else data


def _v2_tensor(tensors: Any, name: str, where: str) -> list:
    if not isinstance(tensors, list):
        raise MalformedEvent("bad_payload", f"{where} must be a list of tensors")
    for tensor in tensors:
        if isinstance(tensor, dict) and tensor.get("name") == name and isinstance(tensor.get("data"), list):
            return tensor["data"]
    raise MalformedEvent("bad_payload", f"{where} has no tensor named {name!r} with a data list")


def _check_count(count: int, limit: int | None, what: str) -> None:
    if not count:
        raise MalformedEvent("bad_payload", f"event holds no {what}")
    if limit is not None and count > limit:
        raise MalformedEvent(
            "too_many_texts",
            f"event holds {count} {what}, more than the limit of {limit} per event "
            "(the model server refuses such calls too: see --max_event_texts)",
            status=413,
        )


def texts_from_request(payload: Any, limit: int | None = None) -> list[str]:
    """The texts of a V1 (``instances``: strings or ``{"text": ...}``) or V2 (input ``text``) request.

    Args:
        payload: the decoded request body.
        limit: most texts accepted; counted before any text is looked at.

    Raises:
        MalformedEvent: no texts, more than ``limit``, or an instance that is not a text.
    """
    if isinstance(payload, dict) and "instances" in payload:
        instances = payload["instances"]
        if not isinstance(instances, list):
            raise MalformedEvent("bad_payload", "'instances' must be a list")
        _check_count(len(instances), limit, "texts")
        texts = [i.get("text") if isinstance(i, dict) else i for i in instances]
    elif isinstance(payload, dict) and "inputs" in payload:
        texts = _v2_tensor(payload["inputs"], "text", "'inputs'")
        _check_count(len(texts), limit, "texts")
    else:
        raise MalformedEvent("bad_payload", "request has neither 'instances' (V1) nor 'inputs' (V2)")
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


def predictions_from_response(payload: Any, limit: int | None = None) -> list[Prediction]:
    """Label and score of each prediction in a V1 (``predictions``) or V2 (outputs ``label``, ``score``) response.

    Args:
        payload: the decoded response body.
        limit: most predictions accepted; counted before any prediction is looked at.

    Raises:
        MalformedEvent: no predictions, more than ``limit``, or one without a string label and a
            score in [0, 1].
    """
    if isinstance(payload, dict) and "predictions" in payload:
        items = payload["predictions"]
        if not isinstance(items, list):
            raise MalformedEvent("bad_payload", "'predictions' must be a list of objects")
        _check_count(len(items), limit, "predictions")
        if not all(isinstance(p, dict) for p in items):
            raise MalformedEvent("bad_payload", "'predictions' must be a list of objects")
        pairs = [(p.get("label"), p.get("score")) for p in items]
    elif isinstance(payload, dict) and "outputs" in payload:
        labels = _v2_tensor(payload["outputs"], "label", "'outputs'")
        scores = _v2_tensor(payload["outputs"], "score", "'outputs'")
        if len(labels) != len(scores):
            raise MalformedEvent("bad_payload", f"{len(labels)} labels but {len(scores)} scores")
        _check_count(len(labels), limit, "predictions")
        pairs = list(zip(labels, scores))
    else:
        raise MalformedEvent("bad_payload", "response has neither 'predictions' (V1) nor 'outputs' (V2)")
    predictions = []
    for i, (label, score) in enumerate(pairs):
        if (
            not isinstance(label, str)
            or isinstance(score, bool)
            or not isinstance(score, (int, float))
            or not 0 <= score <= 1
        ):
            raise MalformedEvent("bad_payload", f"prediction {i} needs a string 'label' and a 'score' in [0, 1]")
        predictions.append(Prediction(label, float(score)))
    return predictions
