"""The wire formats of ARCHITECTURE.md "Serving": request parsing with named errors, and responses.

V1: ``{"instances": ["text", ...]}`` or ``[{"text": "..."}]`` -> ``{"predictions": [{"label",
"score", "probabilities": {name: p}}]}``. V2 (Open Inference Protocol, REST and gRPC): input
``text`` BYTES [N] -> outputs ``label`` BYTES [N], ``score`` FP32 [N], ``probabilities`` FP32 [N, K].
"""

from __future__ import annotations

import dataclasses
from typing import Any, Sequence

from kserve.errors import InvalidInput
from kserve.protocol.infer_type import InferOutput, InferRequest, InferResponse

from serving.classifier import Prediction

V2_INPUT = "text"
V2_INPUTS = [{"name": V2_INPUT, "datatype": "BYTES", "shape": [-1]}]


def v2_outputs(num_labels: int) -> list[dict]:
    return [
        {"name": "label", "datatype": "BYTES", "shape": [-1]},
        {"name": "score", "datatype": "FP32", "shape": [-1]},
        {"name": "probabilities", "datatype": "FP32", "shape": [-1, num_labels]},
    ]


@dataclasses.dataclass
class ParsedRequest:
    texts: list[str]
    v2: InferRequest | None = None  # the V2 request it came from; None for V1
    parameters: dict = dataclasses.field(default_factory=dict)  # V1 "parameters" (options of :explain)


def check_texts(texts: Sequence[Any], max_instances: int, where: str) -> list[str]:
    """The texts of one request, or InvalidInput naming the first problem."""
    if not texts:
        raise InvalidInput(f"{where} is empty: send at least one text")
    if len(texts) > max_instances:
        raise InvalidInput(f"{where} has {len(texts)} texts, more than the limit of {max_instances} per request")
    for index, text in enumerate(texts):
        if not isinstance(text, str):
            raise InvalidInput(f"{where}[{index}] must be a string, got {type(text).__name__}")
        if not text.strip():
            raise InvalidInput(f"{where}[{index}] is empty or whitespace only: there is nothing to classify")
    return list(texts)


def parse_v1(body: Any, max_instances: int) -> ParsedRequest:
    if isinstance(body, (bytes, str)):
        raise InvalidInput("request body must be JSON with Content-Type: application/json")
    if not isinstance(body, dict):
        raise InvalidInput(f'request body must be a JSON object with "instances", got a JSON {type(body).__name__}')
    if "instances" not in body:
        raise InvalidInput('request body has no "instances": send {"instances": ["text", ...]}')
    instances = body["instances"]
    if not isinstance(instances, list):
        raise InvalidInput(f'"instances" must be a list of texts, got {type(instances).__name__}')
    texts = [item["text"] if isinstance(item, dict) and "text" in item else item for item in instances]
    parameters = body.get("parameters", {})
    if not isinstance(parameters, dict):
        raise InvalidInput(f'"parameters" must be a JSON object, got {type(parameters).__name__}')
    return ParsedRequest(check_texts(texts, max_instances, "instances"), parameters=parameters)


def parse_v2(request: InferRequest, max_instances: int) -> ParsedRequest:
    tensor = request.get_input_by_name(V2_INPUT)
    if tensor is None:
        names = [each.name for each in request.inputs]
        raise InvalidInput(f'V2 request needs an input named "{V2_INPUT}" (BYTES, shape [N]); got {names}')
    if tensor.datatype != "BYTES":
        raise InvalidInput(f'input "{V2_INPUT}" must have datatype BYTES, got {tensor.datatype}')
    if len(tensor.shape) != 1:
        raise InvalidInput(f'input "{V2_INPUT}" must have shape [N], got {tensor.shape}')
    try:
        values = tensor.as_numpy().reshape(-1).tolist()
    except (ValueError, TypeError) as error:
        raise InvalidInput(f'input "{V2_INPUT}" data does not match its shape {tensor.shape}: {error}') from None
    try:
        texts = [value.decode("utf-8") if isinstance(value, bytes) else value for value in values]
    except UnicodeDecodeError as error:
        raise InvalidInput(f'input "{V2_INPUT}" holds bytes that are not UTF-8: {error}') from None
    return ParsedRequest(check_texts(texts, max_instances, V2_INPUT), v2=request)


def v1_response(predictions: Sequence[Prediction], labels: Sequence[str]) -> dict:
    return {
        "predictions": [
            {"label": p.label, "score": p.score, "probabilities": dict(zip(labels, p.probabilities))}
            for p in predictions
        ]
    }


def v2_response(request: InferRequest, model_name: str, predictions: Sequence[Prediction]) -> InferResponse:
    count, width = len(predictions), len(predictions[0].probabilities)
    outputs = [
        InferOutput("label", [count], "BYTES", data=[p.label for p in predictions]),
        InferOutput("score", [count], "FP32", data=[p.score for p in predictions]),
        InferOutput("probabilities", [count, width], "FP32",
                    data=[value for p in predictions for value in p.probabilities]),
    ]
    return InferResponse(response_id=request.id or "", model_name=model_name, infer_outputs=outputs)
