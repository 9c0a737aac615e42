"""The engine's backends against fp32 PyTorch, batch invariance, and what a process loads (and does not).

Tolerances (max |probability difference| against torch fp32): ONNX fp32 1e-4; with the real MiniLM
and a random head scaled to confident answers (integration): ONNX int8 0.1 and bf16 0.05, labels
equal wherever fp32's margin exceeds twice the tolerance. The scaled random head magnifies rounding;
the optimize step measures each backend on the model's own validation split.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from tests.serving.conftest import TEXTS
from textclf.inference import BACKENDS, InferenceSettings, MissingArtifactError, load_engine

ROOT = Path(__file__).resolve().parents[2]


def engine(model_dir, **settings):
    return load_engine(model_dir, InferenceSettings(**{"backend": "torch", **settings}))


def assert_agrees(reference: np.ndarray, other: np.ndarray, tolerance: float) -> None:
    assert np.abs(other - reference).max() <= tolerance
    margin = np.abs(reference[:, 1] - reference[:, 0])
    clear = margin > 2 * tolerance
    assert clear.sum() >= len(reference) // 2, "too few clear-cut texts to compare labels"
    assert (other.argmax(1)[clear] == reference.argmax(1)[clear]).all()


def test_onnx_fp32_matches_torch_with_padding(built_model_dir):
    # A small token budget and a high cost per pass force several padded batches of mixed lengths.
    torch_fp32 = engine(built_model_dir, max_batch_tokens=200, pass_cost_tokens=10_000).probabilities(TEXTS)
    onnx = engine(built_model_dir, backend="onnx", max_batch_tokens=200, pass_cost_tokens=10_000)
    assert_agrees(torch_fp32, onnx.probabilities(TEXTS), tolerance=1e-4)


@pytest.mark.parametrize("backend", ["torch", "onnx"])
def test_batch_composition_changes_answers_by_rounding_only(built_model_dir, backend):
    model = engine(built_model_dir, backend=backend, max_batch_tokens=300, pass_cost_tokens=10_000)
    together = model.probabilities(TEXTS)
    alone = np.concatenate([model.probabilities([text]) for text in TEXTS])
    assert np.abs(together - alone).max() < 1e-4


def test_int8_answers_do_not_depend_on_the_batch(built_model_dir):
    """Dynamic int8 scales activations by the whole input: batched with others (and padded) a text
    would get other numbers. The engine runs it text by text, so any grouping gives the same bits."""
    int8 = engine(built_model_dir, backend="onnx-int8")
    assert int8.batching.max_texts == 1
    together = int8.probabilities(TEXTS)
    alone = np.concatenate([int8.probabilities([text]) for text in TEXTS])
    shuffled = int8.probabilities(TEXTS[::-1])[::-1]
    assert np.array_equal(together, alone) and np.array_equal(together, shuffled)
    # What batching would do to it: one padded pass of all texts moves the numbers.
    input_ids, mask = __import__("textclf.inference.batching", fromlist=["pad"]).pad(int8.encoder.encode(TEXTS), 0)
    batched = int8.backend.logits(input_ids, mask)
    assert np.abs(batched - int8.logits_of_ids(int8.encoder.encode(TEXTS))).max() > 1e-4


def test_a_backend_without_its_artifact_names_the_optimize_step(decisive_model_dir):
    with pytest.raises(MissingArtifactError, match="optimize step builds it .*never exports at start"):
        engine(decisive_model_dir, backend="onnx-int8")
    with pytest.raises(ValueError, match="unknown backend 'onnx-fp8'"):
        engine(decisive_model_dir, backend="onnx-fp8")


def test_loading_writes_nothing_into_the_model_directory(built_model_dir):
    before = sorted((path.name, path.stat().st_mtime_ns) for path in built_model_dir.rglob("*"))
    for name in ("torch", "onnx", "onnx-int8"):
        engine(built_model_dir, backend=name).probabilities(TEXTS[:2])
    assert sorted((path.name, path.stat().st_mtime_ns) for path in built_model_dir.rglob("*")) == before


def test_auto_serves_what_serving_json_names_and_fp32_without_one(built_model_dir, decisive_model_dir, tmp_path):
    assert engine(decisive_model_dir, backend="auto").name == "torch"  # never optimized
    chosen = tmp_path / "chosen"
    chosen.mkdir()
    for path in built_model_dir.iterdir():
        (chosen / path.name).symlink_to(path)
    (chosen / "serving.json").write_text(json.dumps({"backend": "onnx"}))
    assert engine(chosen, backend="auto").name == "onnx"
    (chosen / "serving.json").write_text(json.dumps({"backend": "tensorrt"}))
    with pytest.raises(ValueError, match="names backend 'tensorrt', which this code does not have"):
        engine(chosen, backend="auto")


def test_an_onnx_server_never_imports_torch(built_model_dir):
    """The server's modules and an ONNX engine, in a fresh interpreter: torch stays out (seconds of
    every cold start); the PyTorch backend, asked for, brings it in."""
    code = (
        "import sys; import serving.model, serving.__main__; from textclf.inference import InferenceSettings, "
        "load_engine; e = load_engine(sys.argv[1], InferenceSettings(backend=sys.argv[2])); "
        "e.probabilities(['a fine film']); print('torch' in sys.modules, 'transformers.models' in sys.modules)"
    )
    for backend, loaded in (("onnx-int8", "False False"), ("torch", "True True")):
        done = subprocess.run(
            [sys.executable, "-c", code, str(built_model_dir), backend],
            cwd=ROOT,
            capture_output=True,
            text=True,
            timeout=300,
        )
        assert done.returncode == 0, done.stderr[-3000:]
        assert done.stdout.strip().splitlines()[-1] == loaded, backend


def test_the_registry_has_one_entry_per_backend_and_each_knows_its_artifact():
    assert list(BACKENDS) == ["torch", "torch-bf16", "onnx", "onnx-int8"]
    assert {name: kind.artifact for name, kind in BACKENDS.items()} == {
        "torch": None,
        "torch-bf16": None,
        "onnx": "onnx/model.onnx",
        "onnx-int8": "onnx/model-int8.onnx",
    }
    assert BACKENDS["onnx-int8"].requires == ("onnx",)


@pytest.mark.integration
def test_all_backends_agree_with_torch_fp32_on_minilm(tmp_path):
    """The real offline MiniLM with a classifier head scaled up to give confident answers."""
    import torch
    from transformers import AutoModelForSequenceClassification, AutoTokenizer

    from textclf.base_model import resolve_base_model
    from textclf.optimize import build_artifacts

    torch.manual_seed(0)
    model = AutoModelForSequenceClassification.from_pretrained(
        resolve_base_model(),
        num_labels=2,
        id2label={0: "negative", 1: "positive"},
        label2id={"negative": 0, "positive": 1},
    )
    with torch.no_grad():
        model.classifier.weight.mul_(50.0)
    model.save_pretrained(tmp_path / "model")
    AutoTokenizer.from_pretrained(resolve_base_model()).save_pretrained(tmp_path / "model")
    build_artifacts(tmp_path / "model", ["onnx", "onnx-int8"])

    reference = engine(tmp_path / "model").probabilities(TEXTS)
    assert_agrees(reference, engine(tmp_path / "model", backend="onnx").probabilities(TEXTS), 1e-4)
    assert_agrees(reference, engine(tmp_path / "model", backend="onnx-int8").probabilities(TEXTS), 0.1)
    bf16 = load_engine(tmp_path / "model", InferenceSettings(backend="torch-bf16"))  # emulated where not native
    assert_agrees(reference, bf16.probabilities(TEXTS), 0.05)
