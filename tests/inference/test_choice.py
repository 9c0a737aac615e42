"""Which backend serves: the documented rule on the optimize step's measurements."""

import json
import math

import pytest

from textclf.inference import choose, resolve_backend
from textclf.inference.choice import served_backend


def measured(speed, flips=0, texts=1000):
    return {"texts": texts, "label_flips": flips, "flip_rate": flips / texts, "texts_per_second": speed}


def test_the_fastest_backend_within_the_flip_bound_serves():
    backends = {
        "torch": measured(20.0),
        "onnx": measured(25.0, flips=1),
        "onnx-int8": measured(50.0, flips=6),
        "torch-bf16": {"skipped": "no native bf16 on this CPU"},
    }
    name, reason = choose(backends, max_flip_rate=0.005)
    assert name == "onnx"
    assert reason.startswith("onnx: the fastest (texts/s: onnx 25.0, torch 20.0) of the backends within 0.50%")
    assert "over the bound: onnx-int8 (6 flips, 0.60%)" in reason
    assert choose(backends, max_flip_rate=0.006)[0] == "onnx-int8"


def test_a_torch_free_backend_tied_with_the_fastest_serves_so_pods_start_without_torch():
    """On AVX2 CPUs torch fp32 and ONNX fp32 run within the measurement's noise of each other; the
    ONNX one serves, because its pods start about 8 s sooner (no torch import)."""
    tied = {"torch": measured(17.9), "onnx": measured(17.4), "torch-bf16": measured(17.95)}
    name, reason = choose(tied, max_flip_rate=0.005)
    assert name == "onnx"
    assert reason.startswith(
        "onnx: within 5% of the fastest, torch-bf16 (texts/s: torch-bf16 17.9, torch 17.9, onnx 17.4)"
    )
    assert "starts without torch" in reason
    assert choose({"torch": measured(17.9), "onnx": measured(16.9)}, 0.005)[0] == "torch"  # 94%: not a tie
    assert choose({"torch": measured(17.9), "onnx": measured(17.4, flips=9)}, 0.005)[0] == "torch"  # over the bound
    assert choose({"torch": measured(17.9), "onnx": measured(18.0)}, 0.005)[0].startswith("onnx")


def test_fp32_pytorch_serves_when_nothing_else_qualifies_and_must_have_been_measured():
    assert choose({"torch": measured(1.0), "onnx": measured(9.0, flips=500)}, 0.005)[0] == "torch"
    assert choose({"torch": measured(1.0), "onnx": {**measured(9.0), "flip_rate": math.nan}}, 0.005)[0] == "torch"
    with pytest.raises(ValueError, match="reference backend 'torch' was not measured"):
        choose({"onnx": measured(9.0)}, 0.005)


def test_names_resolve_as_given_and_auto_through_serving_json(tmp_path):
    assert resolve_backend(tmp_path, "onnx-int8") == "onnx-int8"
    assert resolve_backend(tmp_path, "auto") == "torch"
    (tmp_path / "serving.json").write_text(json.dumps({"backend": "onnx-int8"}))
    assert resolve_backend(tmp_path, "auto") == "onnx-int8" and resolve_backend(tmp_path, "torch") == "torch"
    with pytest.raises(ValueError, match="expected one of torch, torch-bf16, onnx, onnx-int8"):
        resolve_backend(tmp_path, "openvino")


def test_a_deployed_models_backend_is_its_serving_json_or_fp32_from_before(tmp_path):
    assert served_backend(str(tmp_path)) == "torch"
    (tmp_path / "serving.json").write_text(json.dumps({"backend": "onnx"}))
    assert served_backend(str(tmp_path) + "/") == "onnx"
