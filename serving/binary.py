"""The Open Inference Protocol's binary tensor extension, parsed strictly.

REST: the body is a JSON inference request of ``Inference-Header-Content-Length`` bytes, followed
by the data of each input whose ``parameters.binary_data_size`` says so, in input order. gRPC:
``raw_input_contents``, one entry per input. A BYTES tensor in binary form is each element as a
4-byte little-endian length and then that many bytes (Triton's and kserve's serialisation).

kserve 0.21 parses both itself, and a malformed body ends in a 500 or gRPC INTERNAL (``struct.error``,
``KeyError``). Here every problem is an InvalidInput (400, INVALID_ARGUMENT) that names it, and a
REST binary request becomes exactly the request its JSON form would be, so that both then take
the same path (``InferRequest.from_inference_request``).
"""

from __future__ import annotations

import struct

import numpy as np
import orjson
import pydantic
from kserve.errors import InvalidInput
from kserve.protocol.grpc import grpc_predict_v2_pb2 as pb
from kserve.protocol.infer_type import InferRequest
from kserve.protocol.rest.v2_datamodels import InferenceRequest
from kserve.utils.numpy_codec import to_np_dtype

from serving.protocol import describe_problems

INFERENCE_HEADER = "inference-header-content-length"
_LENGTH = struct.Struct("<I")


def bytes_element_spans(raw: bytes, where: str):
    """(offset, length) of each element of a binary BYTES tensor; InvalidInput when a length prefix does not fit."""
    offset, index = 0, 0
    while offset < len(raw):
        if len(raw) - offset < _LENGTH.size:
            raise InvalidInput(
                f"{where}: binary BYTES data ends inside the 4-byte length of element "
                f"{index} ({len(raw) - offset} bytes left)"
            )
        (length,) = _LENGTH.unpack_from(raw, offset)
        offset += _LENGTH.size
        if length > len(raw) - offset:
            raise InvalidInput(
                f"{where}: binary BYTES element {index} says it has {length} bytes, but only {len(raw) - offset} follow"
            )
        yield offset, length
        offset, index = offset + length, index + 1


def split_bytes_elements(raw: bytes, where: str) -> list[bytes]:
    """The elements of a binary BYTES tensor, or InvalidInput when a length prefix does not fit."""
    view = memoryview(raw)
    return [bytes(view[offset : offset + length]) for offset, length in bytes_element_spans(raw, where)]


def check_tensor_bytes(raw: bytes, datatype: str, where: str):
    """InvalidInput unless ``raw`` is a whole binary tensor of ``datatype``; its numpy dtype (None for BYTES)."""
    if datatype == "BYTES":
        for _ in bytes_element_spans(raw, where):
            pass
        return None
    dtype = to_np_dtype(datatype)
    if dtype is None:
        raise InvalidInput(f"{where}: unknown datatype {datatype!r}")
    if len(raw) % np.dtype(dtype).itemsize:
        raise InvalidInput(f"{where}: {len(raw)} bytes is not a whole number of {datatype} values")
    return dtype


def tensor_values(raw: bytes, datatype: str, where: str) -> list:
    """A binary tensor's elements as the list its JSON ``data`` would hold."""
    if datatype == "BYTES":
        return split_bytes_elements(raw, where)
    return np.frombuffer(raw, dtype=check_tensor_bytes(raw, datatype, where)).tolist()


def decode_rest_request(body: bytes, header_length: str | None, model_name: str) -> InferRequest:
    """A REST body in the binary tensor extension -> the InferRequest of its JSON form."""
    if header_length is None:
        raise InvalidInput(
            "a binary request body needs the Inference-Header-Content-Length header (the byte length of its JSON part)"
        )
    if not header_length.strip().isdigit():
        raise InvalidInput(f"Inference-Header-Content-Length must be a byte count, got {header_length!r}")
    json_length = int(header_length)
    if json_length > len(body):
        raise InvalidInput(f"Inference-Header-Content-Length is {json_length}, but the body has only {len(body)} bytes")
    try:
        header = orjson.loads(body[:json_length])
    except orjson.JSONDecodeError as error:
        raise InvalidInput(
            f"the first {json_length} bytes of the body (Inference-Header-Content-Length) are not JSON: {error}"
        ) from None
    if not isinstance(header, dict) or not isinstance(header.get("inputs"), list):
        raise InvalidInput('the JSON part of a binary request must be an object with a list of "inputs"')
    offset = json_length
    for index, tensor in enumerate(header["inputs"]):
        offset = _fill_binary_input(tensor, body, offset, f"inputs[{index}]")
    if offset != len(body):
        raise InvalidInput(
            f"{len(body) - offset} bytes follow the last input's binary data: "
            "binary_data_size values do not add up to the body"
        )
    try:
        request = InferenceRequest.model_validate(header)
    except pydantic.ValidationError as error:
        raise InvalidInput("invalid request body: " + describe_problems(error.errors())) from None
    return InferRequest.from_inference_request(request, model_name)


def _fill_binary_input(tensor, body: bytes, offset: int, where: str) -> int:
    """Move an input's binary data (if it has any) into its ``data``; returns the next offset."""
    parameters = tensor.get("parameters") if isinstance(tensor, dict) else None
    if not isinstance(parameters, dict) or "binary_data_size" not in parameters:
        return offset  # a JSON input: validated with the rest of the request
    size = parameters.pop("binary_data_size")
    if not isinstance(size, int) or isinstance(size, bool) or size < 0:
        raise InvalidInput(f"{where}: binary_data_size must be a byte count, got {size!r}")
    if "data" in tensor:
        raise InvalidInput(f'{where} has both "data" and binary_data_size: send one of them')
    if size > len(body) - offset:
        raise InvalidInput(
            f"{where}: binary_data_size is {size}, but only {len(body) - offset} bytes are left in the body"
        )
    tensor["data"] = tensor_values(body[offset : offset + size], str(tensor.get("datatype", "")).upper(), where)
    return offset + size


def check_raw_input_contents(request: pb.ModelInferRequest) -> None:
    """gRPC ``raw_input_contents``: one entry per input, and BYTES elements whose lengths fit."""
    if not request.raw_input_contents:
        return
    if len(request.raw_input_contents) != len(request.inputs):
        raise InvalidInput(
            f"{len(request.raw_input_contents)} raw_input_contents for {len(request.inputs)} inputs: send one per input"
        )
    for tensor, raw in zip(request.inputs, request.raw_input_contents):
        if tensor.HasField("contents"):
            raise InvalidInput(f'input "{tensor.name}" has both contents and raw_input_contents: send one of them')
        # Checked without decoding: kserve decodes the request itself afterwards.
        check_tensor_bytes(raw, tensor.datatype.upper(), f'input "{tensor.name}"')
