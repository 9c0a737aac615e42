"""The optimize step: artifacts built in the new Model directory, each backend measured on the validation
split against fp32, the choice recorded in serving.json, and the cost bounded."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest

from textclf.inference import InferenceSettings, load_engine
from textclf.optimize import OptimizeSettings, optimize, validation_batches


@pytest.fixture(scope="module")
def sample_tokenized(tokenized_dir):
    """The sample data tokenized with the tiny model's tokenizer, which the decisive model shares."""
    return tokenized_dir


@pytest.fixture(scope="module")
def optimized(decisive_model_dir, sample_tokenized, tmp_path_factory):
    out = tmp_path_factory.mktemp("optimized") / "model"
    return out, optimize(decisive_model_dir, sample_tokenized, str(out), OptimizeSettings())


def test_the_new_model_directory_holds_the_model_the_artifacts_and_serving_json(optimized, decisive_model_dir):
    out, result = optimized
    assert json.loads((out / "serving.json").read_text()) == {"format": "textclf-serving/v1", **result}
    for name in ("config.json", "model.safetensors", "tokenizer.json"):
        assert (out / name).read_bytes() == (Path(decisive_model_dir) / name).read_bytes()
    assert (out / "onnx" / "model.onnx").is_file() and (out / "onnx" / "model-int8.onnx").is_file()
    assert result["measured_on"]["threads"] >= 1 and result["measured_on"]["cpu"]


def test_every_backend_is_measured_on_the_whole_validation_split_against_fp32(optimized, sample_parquet):
    _, result = optimized
    validation_rows = sample_parquet[1]["rows"]["validation"]
    reference = result["backends"]["torch"]
    assert reference["texts"] == validation_rows and reference["label_flips"] == 0
    assert reference["max_probability_change"] == 0.0 and reference["texts_per_second"] > 0
    onnx = result["backends"]["onnx"]
    assert onnx["texts"] == validation_rows and onnx["label_flips"] == 0 and onnx["max_probability_change"] < 1e-4
    assert onnx["accuracy"] == reference["accuracy"]
    # On this tiny 32-wide model int8 changes labels: measured, and kept out of the choice.
    int8 = result["backends"]["onnx-int8"]
    assert int8["flip_rate"] > 0.005 and result["backend"] != "onnx-int8"
    assert result["backend"] in ("torch", "onnx") and result["reason"].startswith(result["backend"] + ": ")
    assert "the fastest" in result["reason"]


def test_the_measured_numbers_are_what_the_engine_gives(optimized, sample_tokenized):
    """Recompute onnx's agreement with fp32 through the engine: the step measured what serves."""
    out, result = optimized
    texts, labels = zip(
        *[pair for texts, labels in validation_batches(sample_tokenized, 10_000, 0) for pair in zip(texts, labels)]
    )
    reference = load_engine(out, InferenceSettings(backend="torch")).probabilities(texts)
    int8 = load_engine(out, InferenceSettings(backend="onnx-int8")).probabilities(texts)
    flips = int((int8.argmax(1) != reference.argmax(1)).sum())
    assert flips == result["backends"]["onnx-int8"]["label_flips"]
    assert np.abs(int8 - reference).max() == pytest.approx(
        result["backends"]["onnx-int8"]["max_probability_change"], abs=1e-6
    )
    assert (reference.argmax(1) == np.array(labels)).mean() == pytest.approx(result["backends"]["torch"]["accuracy"])


def test_a_cpu_without_native_bf16_leaves_torch_bf16_out_with_the_reason(optimized, monkeypatch, tmp_path):
    from textclf.inference import hardware

    _, result = optimized
    if not hardware.native_bf16():
        assert result["backends"]["torch-bf16"] == {
            "skipped": "no native bf16 on this CPU (AVX512-BF16 or AMX): emulated bf16 is slower than fp32"
        }
    else:
        assert "flip_rate" in result["backends"]["torch-bf16"]


def test_candidates_are_checked_and_the_reference_always_measured(decisive_model_dir, sample_tokenized, tmp_path):
    with pytest.raises(ValueError, match=r"candidate_backends: unknown \['openvino'\]"):
        OptimizeSettings(candidate_backends="onnx,openvino")
    assert OptimizeSettings(candidate_backends="onnx").candidates() == ["torch", "onnx"]
    result = optimize(
        decisive_model_dir,
        sample_tokenized,
        str(tmp_path / "out"),
        OptimizeSettings(candidate_backends="onnx-int8", max_agreement_texts=10),
    )
    assert set(result["backends"]) == {"torch", "onnx", "onnx-int8"}  # onnx built: int8 is made from it
    assert "flip_rate" not in result["backends"]["onnx"]  # built, not asked for: not measured
    assert 3 <= result["backends"]["torch"]["texts"] <= 25  # about 10 of the split's texts, a seeded sample


def test_a_larger_split_is_sampled_by_a_seeded_order_free_coin(sample_tokenized):
    first = [text for texts, _ in validation_batches(sample_tokenized, 10, seed=1) for text in texts]
    again = [text for texts, _ in validation_batches(sample_tokenized, 10, seed=1) for text in texts]
    other = [text for texts, _ in validation_batches(sample_tokenized, 10, seed=2) for text in texts]
    everything = [text for texts, _ in validation_batches(sample_tokenized, 10_000, seed=1) for text in texts]
    assert first == again and first != other and set(first) < set(everything)


def test_a_model_outside_the_pipeline_is_measured_on_its_probe_texts(decisive_model_dir, tmp_path):
    from textclf.probe import write_probe_texts

    model = tmp_path / "model"
    shutil.copytree(decisive_model_dir, model)
    write_probe_texts(
        model, [{"text": f"review number {i}", "label": ("negative", "positive")[i % 2]} for i in range(12)]
    )
    result = optimize(str(model), None, str(tmp_path / "out"), OptimizeSettings(candidate_backends="onnx"))
    assert result["split"] == "probe" and result["backends"]["onnx"]["texts"] == 12


class Timed:
    """A stand-in backend: label (sum of a text's ids) % 2, flipped on every ``flip_every``-th sum,
    taking ``seconds_per_text``: what the screening decides on, without a model."""

    def __init__(self, seconds_per_text: float, flip_every: int = 0):
        self.seconds_per_text, self.flip_every = seconds_per_text, flip_every

    def logits(self, input_ids, attention_mask):
        import time

        time.sleep(self.seconds_per_text * len(input_ids))
        sums = (input_ids * attention_mask).sum(axis=1)
        labels = sums % 2
        if self.flip_every:
            labels = np.where(sums % self.flip_every == 0, 1 - labels, labels)
        return np.stack([1.0 - labels, labels.astype(float)], axis=1).astype(np.float32) * 4


def test_the_screen_sends_only_the_likely_choice_through_the_whole_split(decisive_model_dir):
    """Every backend scores the first 256 texts; then the fastest (too many flips) stops at the bound,
    the next one scores everything and is chosen, and the slowest is never taken further."""
    from textclf.encoding import TextEncoder
    from textclf.inference import Batching, Engine, choose
    from textclf.optimize import screen_then_confirm

    encoder = TextEncoder.for_model(decisive_model_dir)
    speeds = {
        "torch": Timed(0.002),
        "fast-but-wrong": Timed(0.0, flip_every=7),
        "good": Timed(0.0005),
        "slow": Timed(0.004),
    }
    engines = {
        name: Engine(backend, name, ["a", "b"], Batching(), encoder.pad_id, encoder) for name, backend in speeds.items()
    }
    texts = [f"text number {i} with {'word ' * (i % 13)}" for i in range(1500)]
    results = screen_then_confirm(engines, texts, [i % 2 for i in range(1500)], max_flip_rate=0.005)
    assert results["torch"]["texts"] == results["good"]["texts"] == 1500
    assert results["torch"]["complete"] and results["good"]["complete"] and results["good"]["label_flips"] == 0
    assert (
        not results["fast-but-wrong"]["complete"] and "over the bound already" in results["fast-but-wrong"]["stopped"]
    )
    assert results["fast-but-wrong"]["texts"] == 256 and results["fast-but-wrong"]["label_flips"] > 7.5
    assert results["slow"]["texts"] == 256 and "slower than fp32 PyTorch" in results["slow"]["stopped"]
    assert choose(results, 0.005)[0] == "good"


def test_the_screen_also_confirms_a_torch_free_backend_tied_with_a_torch_one_that_passed(decisive_model_dir):
    """torch-bf16 is fastest and passes; ONNX, about as fast, is confirmed too (the rule prefers it:
    its pods start without torch) and chosen; onnx-int8, clearly slower, stays at the screen."""
    from textclf.encoding import TextEncoder
    from textclf.inference import Batching, Engine, choose
    from textclf.optimize import screen_then_confirm

    encoder = TextEncoder.for_model(decisive_model_dir)
    speeds = {"torch": Timed(0.003), "torch-bf16": Timed(0.001), "onnx": Timed(0.00101), "onnx-int8": Timed(0.0016)}
    engines = {
        name: Engine(backend, name, ["a", "b"], Batching(), encoder.pad_id, encoder) for name, backend in speeds.items()
    }
    texts = [f"text number {i} with {'word ' * (i % 13)}" for i in range(600)]
    results = screen_then_confirm(engines, texts, [i % 2 for i in range(600)], max_flip_rate=0.005)
    assert results["torch-bf16"]["complete"] and results["onnx"]["complete"]
    assert results["onnx-int8"]["texts"] == 256 and "slower than torch-bf16" in results["onnx-int8"]["stopped"]
    assert choose(results, 0.005)[0] == "onnx"
