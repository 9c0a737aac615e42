"""The wire formats in-process, against kserve's own encoders as the independent side: the binary
tensor extension, and the one rule for "nothing to classify" that both the server and its OpenAPI
document use."""

from __future__ import annotations

import re

import numpy as np
import pytest
from kserve.errors import InvalidInput
from kserve.protocol.infer_type import InferInput, InferRequest, serialize_byte_tensor

from serving.binary import decode_rest_request, split_bytes_elements
from serving.protocol import TextRules, check_text, classifiable_pattern, parse_v2

TEXTS = ["hello world", "café", "", "日本語のテキスト", "emoji 😀"]


def test_split_reads_what_kserve_serialises():
    raw = serialize_byte_tensor(np.array([text.encode() for text in TEXTS], dtype=np.object_)).item()
    assert split_bytes_elements(raw, "text") == [text.encode() for text in TEXTS]
    with pytest.raises(InvalidInput, match="element 4 says it has 10 bytes, but only 9 follow"):
        split_bytes_elements(raw[:-1], "text")


def test_a_binary_request_is_the_request_its_json_form_is():
    texts = [text for text in TEXTS if text]
    binary = InferInput("text", [len(texts)], "BYTES")
    binary.set_data_from_numpy(np.array([text.encode() for text in texts], dtype=np.object_))
    body, json_length = InferRequest(
        model_name="m", infer_inputs=[binary], request_id="r", parameters={"binary_data_output": True}
    ).to_rest()
    request = decode_rest_request(body, str(json_length), "m")
    assert request.id == "r" and request.use_binary_outputs
    assert parse_v2(request, TextRules(8)).texts == texts


@pytest.mark.parametrize(
    "character",
    [
        " ",
        "\t",
        "\u00a0",
        "\u200b",
        "\ufeff",
        "\u2060",
        "\x85",
        "\x00",
        "\U000e0020",
        "a",
        "7",
        "!",
        "😀",
        "中",
        "\u0301",
        "\U0001d173",
    ],
)
def test_the_openapi_pattern_and_the_server_agree(character):
    accepted = True
    try:
        check_text(character * 3, "text[0]", lambda text: text)
    except InvalidInput:
        accepted = False
    assert accepted == bool(re.search(classifiable_pattern(), character * 3))
