"""The wire formats of ARCHITECTURE.md "Serving": request parsing with named errors, and responses.

V1: ``{"instances": ["text", ...]}`` or ``[{"text": "..."}]`` -> ``{"predictions": [{"label",
"score", "probabilities": {name: p}}]}``. V2 (Open Inference Protocol, REST and gRPC): input
``text`` BYTES [N] -> outputs ``label`` BYTES [N], ``score`` FP32 [N], ``probabilities`` FP32 [N, K],
each as JSON or, when asked (``binary_data_output``, an output's ``binary_data``, gRPC raw
inputs), in the binary tensor form.

Every request, whatever its protocol or encoding, reaches :func:`check_texts`: the one place
that decides whether a text can be classified.
"""

from __future__ import annotations

import dataclasses
import functools
import math
import unicodedata
from collections.abc import Callable, Sequence
from typing import Any

import numpy as np
from kserve.errors import InvalidInput
from kserve.protocol.infer_type import InferOutput, InferRequest, InferResponse, RequestedOutput

from textclf.inference import Prediction

V2_INPUT = "text"
V2_INPUTS = [{"name": V2_INPUT, "datatype": "BYTES", "shape": [-1]}]
V2_OUTPUT_NAMES = ("label", "score", "probabilities")


def v2_outputs(num_labels: int) -> list[dict]:
    return [
        {"name": "label", "datatype": "BYTES", "shape": [-1]},
        {"name": "score", "datatype": "FP32", "shape": [-1]},
        {"name": "probabilities", "datatype": "FP32", "shape": [-1, num_labels]},
    ]


@dataclasses.dataclass(frozen=True)
class TextRules:
    """What a request may hold: at most ``max_instances`` texts, each judged by ``cut(text)``, the
    part of it the model will read (``TextEncoder.cut``)."""

    max_instances: int
    cut: Callable[[str], str] = lambda text: text


@dataclasses.dataclass
class ParsedRequest:
    texts: list[str]
    v2: InferRequest | None = None  # the V2 request it came from; None for V1
    parameters: dict = dataclasses.field(default_factory=dict)  # V1 "parameters" (options of :explain)


# Characters that alone leave nothing to classify: whitespace, control characters (Cc) and format
# characters (Cf: zero-width space, BOM, bidi marks...). One definition, for the check below and
# for the OpenAPI document's pattern.
INVISIBLE_CATEGORIES = frozenset({"Zs", "Zl", "Zp", "Cc", "Cf"})


@functools.cache
def invisible_ranges() -> tuple[tuple[int, int], ...]:
    """Inclusive code point ranges of the characters above (computed once, ~0.3 s)."""
    ranges: list[list[int]] = []
    for code in range(0x110000):
        character = chr(code)
        if character.isspace() or unicodedata.category(character) in INVISIBLE_CATEGORIES:
            if ranges and ranges[-1][1] == code - 1:
                ranges[-1][1] = code
            else:
                ranges.append([code, code])
    return tuple((first, last) for first, last in ranges)


@functools.cache
def _classifiable() -> np.ndarray:
    """True, for each code point, when it is not one of :func:`invisible_ranges`."""
    table = np.ones(0x110000, dtype=bool)
    for first, last in invisible_ranges():
        table[first : last + 1] = False
    return table


def classifiable_pattern() -> str:
    """A regular expression (JSON Schema ``pattern``, which matches anywhere in the string) for a
    text with at least one character outside :func:`invisible_ranges`."""

    def char(code: int) -> str:
        return f"\\u{code:04x}" if code <= 0xFFFF else chr(code)  # astral: the character itself

    return "[^" + "".join(char(a) if a == b else f"{char(a)}-{char(b)}" for a, b in invisible_ranges()) + "]"


def check_text(text: Any, where: str, cut: Callable[[str], str]) -> str:
    """``text`` if the model can classify it, else InvalidInput naming the problem."""
    if not isinstance(text, str):
        raise InvalidInput(f"{where} must be a string, got {type(text).__name__}")
    read = cut(text)
    try:
        # UTF-32 gives one number per code point (vectorised below) and refuses lone surrogates,
        # which JSON's \\ud800 escapes can smuggle in and which the tokenizer cannot take.
        code_points = np.frombuffer(read.encode("utf-32-le"), dtype=np.uint32)
    except UnicodeEncodeError as error:
        raise InvalidInput(
            f"{where} holds a lone surrogate (U+{ord(read[error.start]):04X}) at character "
            f"{error.start}: not valid Unicode text"
        ) from None
    if not _classifiable()[code_points].any():
        raise InvalidInput(
            f"{where} is empty or holds only whitespace or invisible characters: there is nothing to classify"
        )
    return text


def check_texts(texts: Sequence[Any], rules: TextRules, where: str) -> list[str]:
    """The texts of one request, or InvalidInput naming the first problem."""
    if not texts:
        raise InvalidInput(f"{where} is empty: send at least one text")
    check_count(len(texts), rules, where)
    return [check_text(text, f"{where}[{index}]", rules.cut) for index, text in enumerate(texts)]


def check_count(count: int, rules: TextRules, where: str) -> None:
    if count > rules.max_instances:
        raise InvalidInput(f"{where} has {count} texts, more than the limit of {rules.max_instances} per request")


def parse_v1(body: Any, rules: TextRules) -> ParsedRequest:
    if isinstance(body, (bytes, str)):
        raise InvalidInput("request body must be JSON with Content-Type: application/json")
    if not isinstance(body, dict):
        raise InvalidInput(f'request body must be a JSON object with "instances", got a JSON {type(body).__name__}')
    if "instances" not in body:
        if "inputs" in body:
            raise InvalidInput(
                "request body is a V2 (Open Inference Protocol) request: POST it to "
                '/v2/models/NAME/infer, or send {"instances": ["text", ...]} here'
            )
        raise InvalidInput('request body has no "instances": send {"instances": ["text", ...]}')
    instances = body["instances"]
    if not isinstance(instances, list):
        raise InvalidInput(f'"instances" must be a list of texts, got {type(instances).__name__}')
    texts = [item["text"] if isinstance(item, dict) and "text" in item else item for item in instances]
    parameters = body.get("parameters", {})
    if not isinstance(parameters, dict):
        raise InvalidInput(f'"parameters" must be a JSON object, got {type(parameters).__name__}')
    return ParsedRequest(check_texts(texts, rules, "instances"), parameters=parameters)


def parse_v2(request: InferRequest, rules: TextRules) -> ParsedRequest:
    names = [each.name for each in request.inputs]
    if names != [V2_INPUT]:
        raise InvalidInput(f'V2 request needs exactly one input, named "{V2_INPUT}" (BYTES, shape [N]); got {names}')
    tensor = request.inputs[0]
    if tensor.datatype != "BYTES":
        raise InvalidInput(f'input "{V2_INPUT}" must have datatype BYTES, got {tensor.datatype}')
    if len(tensor.shape) != 1 or tensor.shape[0] < 0:
        raise InvalidInput(f'input "{V2_INPUT}" must have shape [N], got {tensor.shape}')
    check_count(math.prod(tensor.shape), rules, V2_INPUT)  # before the elements are decoded
    check_requested_outputs(request)
    try:
        values = tensor.as_numpy().reshape(-1).tolist()
    except (ValueError, TypeError) as error:
        raise InvalidInput(f'input "{V2_INPUT}" data does not match its shape {tensor.shape}: {error}') from None
    texts = []
    for index, value in enumerate(values):
        if isinstance(value, bytes):
            try:
                value = value.decode("utf-8")
            except UnicodeDecodeError as error:
                raise InvalidInput(f"{V2_INPUT}[{index}] is not UTF-8: {error}") from None
        texts.append(value)
    return ParsedRequest(check_texts(texts, rules, V2_INPUT), v2=request)


def check_requested_outputs(request: InferRequest) -> None:
    """Known output names, and ``binary_data_output`` / ``binary_data`` that are booleans."""
    flag = (request.parameters or {}).get("binary_data_output", False) if not request.from_grpc else False
    if not isinstance(flag, bool):
        raise InvalidInput(f'parameter "binary_data_output" must be true or false, got {flag!r}')
    for output in request.request_outputs or ():
        if output.name not in V2_OUTPUT_NAMES:
            raise InvalidInput(f"unknown output {output.name!r}: this model has outputs {list(V2_OUTPUT_NAMES)}")
        if not isinstance(output.binary_data, (bool, type(None))):
            raise InvalidInput(
                f'output "{output.name}" parameter "binary_data" must be true or false, got {output.binary_data!r}'
            )


def v1_response(predictions: Sequence[Prediction], labels: Sequence[str]) -> dict:
    return {
        "predictions": [
            {"label": p.label, "score": p.score, "probabilities": dict(zip(labels, p.probabilities))}
            for p in predictions
        ]
    }


def v2_response(request: InferRequest, model_name: str, predictions: Sequence[Prediction]) -> InferResponse:
    """The outputs the request asked for (all three by default, else those named, in its order),
    as JSON or binary: an output's own ``binary_data`` wins over the request's
    ``binary_data_output`` (Triton's rule); a gRPC request with raw inputs gets raw outputs."""
    count, width = len(predictions), len(predictions[0].probabilities)
    outputs = {
        "label": InferOutput("label", [count], "BYTES", data=[p.label for p in predictions]),
        "score": InferOutput("score", [count], "FP32", data=[p.score for p in predictions]),
        "probabilities": InferOutput(
            "probabilities", [count, width], "FP32", data=[value for p in predictions for value in p.probabilities]
        ),
    }
    requested = None
    if request.request_outputs:
        default = request.use_binary_outputs
        requested = [
            RequestedOutput(each.name, {"binary_data": default if each.binary_data is None else each.binary_data})
            for each in request.request_outputs
        ]
        outputs = {each.name: outputs[each.name] for each in requested}
    return InferResponse(
        response_id=request.id or "",
        model_name=model_name,
        infer_outputs=list(outputs.values()),
        use_binary_outputs=request.use_binary_outputs,
        requested_outputs=requested,
    )


def describe_problems(problems: Sequence[dict], skip: int = 0) -> str:
    """pydantic's validation errors as one line: ``inputs.0.name: Field required; ...``.
    ``skip`` drops leading location parts (FastAPI puts ``body`` first)."""
    described = []
    for problem in problems:
        location = tuple(problem.get("loc", ()))[skip:]
        if location[:1] == ("bytes",):  # V2's body is Union[InferenceRequest, bytes]: that branch is noise
            continue
        path = ".".join(str(part) for part in location if part != "InferenceRequest")
        described.append(f"{path}: {problem['msg']}" if path else problem["msg"])
    return "; ".join(described)
