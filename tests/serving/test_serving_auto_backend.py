"""``--backend auto`` picks the fastest backend that keeps predictions; passes are grouped by length."""

from __future__ import annotations

import random

import numpy as np
import pytest

from serving import classifier as classifier_module
from serving.classifier import InferenceSettings, TextClassifier, plan_passes
from tests.serving.conftest import TEXTS


def padded_tokens(lengths, passes):
    return sum((end - start) * lengths[end - 1] for start, end in passes)


def greedy_passes(lengths, budget):
    """The grouping used before: fill each pass until the next text would break the budget."""
    passes, start = [], 0
    while start < len(lengths):
        end = start + 1
        while end < len(lengths) and (end - start + 1) * lengths[end] <= budget:
            end += 1
        passes.append((start, end))
        start = end
    return passes


def test_passes_cover_every_text_once_within_the_budget():
    rng = random.Random(0)
    for _ in range(200):
        lengths = sorted(rng.choice([rng.randint(8, 256), 256]) for _ in range(rng.randint(1, 40)))
        passes = plan_passes(lengths, 2048, 32)
        assert [index for start, end in passes for index in range(start, end)] == list(range(len(lengths)))
        assert all((end - start) * lengths[end - 1] <= 2048 for start, end in passes)
        # Never dearer than the greedy grouping, in the cost it minimises.
        greedy = greedy_passes(lengths, 2048)
        assert (padded_tokens(lengths, passes) + 32 * len(passes)
                <= padded_tokens(lengths, greedy) + 32 * len(greedy))


def test_short_texts_are_not_padded_to_long_ones():
    lengths = [12, 12, 14, 15, 250, 256, 256, 256]
    assert plan_passes(lengths, 2048, 32) == [(0, 4), (4, 8)]
    # Equal lengths fill passes up to the budget; a text over the budget runs alone.
    assert sorted(end - start for start, end in plan_passes([100] * 10, 400, 32)) == [2, 4, 4]
    assert plan_passes([10, 600], 400, 32) == [(0, 1), (1, 2)]
    # Without a cost per pass, no padding at all: one pass per distinct length.
    assert plan_passes([5, 5, 6, 7, 7], 2048, 0) == [(0, 2), (2, 3), (3, 5)]


@pytest.fixture(scope="module")
def onnx_cache(tmp_path_factory):
    return str(tmp_path_factory.mktemp("onnx-cache"))


def test_auto_serves_with_the_fastest_backend_that_keeps_predictions(decisive_model_dir, onnx_cache, monkeypatch,
                                                                     caplog):
    caplog.set_level("INFO", logger="serving.classifier")
    timings = {"torch": 4.0, "onnx": 2.0, "onnx-int8": 1.0}
    monkeypatch.setattr(TextClassifier, "_seconds_per_batch",
                        lambda self, backend, give_up_after: timings[backend_name(backend)])
    reference = TextClassifier(decisive_model_dir, InferenceSettings(backend="torch", bf16="off")).probabilities(TEXTS)

    chosen = TextClassifier(decisive_model_dir, InferenceSettings(bf16="off", cache_dir=onnx_cache))
    # int8 would be fastest, but on this tiny 32-wide model it changes the probe texts' labels.
    assert "onnx-int8 rejected: probe labels changed" in caplog.text
    assert chosen.settings.backend == "auto" and chosen.backend_name == "onnx"
    assert np.abs(chosen.probabilities(TEXTS) - reference).max() <= 1e-4
    # The fp32 PyTorch model stays available to :explain whichever backend serves.
    assert chosen.torch_model is not None

    timings["torch"] = 1.5
    assert TextClassifier(decisive_model_dir, InferenceSettings(bf16="off", cache_dir=onnx_cache)).backend_name == "torch"


def test_auto_times_the_real_backends(decisive_model_dir, onnx_cache, caplog):
    caplog.set_level("INFO", logger="serving.classifier")
    chosen = TextClassifier(decisive_model_dir, InferenceSettings(bf16="off", cache_dir=onnx_cache))
    assert chosen.backend_name in {"torch", "onnx"}  # int8 changes this tiny model's labels (above)
    [decision] = [record.getMessage() for record in caplog.records if record.getMessage().startswith("backend auto:")]
    assert decision.startswith(f"backend auto: {chosen.backend_name} (ms for {len(classifier_module.TIMING_TEXTS)} texts")
    assert "torch " in decision and "onnx " in decision


def backend_name(backend) -> str:
    if hasattr(backend, "path"):
        return "onnx-int8" if backend.path.name == "model-int8.onnx" else "onnx"
    return "torch-bf16" if backend.bf16 else "torch"
