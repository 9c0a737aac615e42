"""Backends agree with torch fp32 on fixed texts; truncation and batching keep texts apart.

Tolerances (max |probability difference| against torch fp32): ONNX fp32 1e-4; with the real
MiniLM and a random head scaled to confident answers (integration): ONNX int8 0.1 and bf16 0.05,
labels equal wherever fp32's margin exceeds twice the tolerance. The scaled random head magnifies
rounding; bench/serve.py measures the accuracy effect on the fine-tuned model.
"""

from __future__ import annotations

import asyncio
import time

import numpy as np
import pytest

from serving.batching import DynamicBatcher
from serving.classifier import InferenceSettings, TextClassifier
from tests.serving.conftest import TEXTS


def classifier(model_dir, tmp_path, **settings) -> TextClassifier:
    return TextClassifier(model_dir, InferenceSettings(cache_dir=str(tmp_path / "onnx-cache"), **settings))


def assert_agrees(reference: np.ndarray, other: np.ndarray, tolerance: float) -> None:
    assert np.abs(other - reference).max() <= tolerance
    margin = np.abs(reference[:, 1] - reference[:, 0])
    clear = margin > 2 * tolerance
    assert clear.sum() >= len(reference) // 2, "too few clear-cut texts to compare labels"
    assert (other.argmax(1)[clear] == reference.argmax(1)[clear]).all()


def test_onnx_fp32_matches_torch_with_padding(decisive_model_dir, tmp_path):
    # A small token budget forces several padded batches of mixed lengths.
    torch_fp32 = classifier(decisive_model_dir, tmp_path, bf16="off", max_batch_tokens=200).probabilities(TEXTS)
    onnx = classifier(decisive_model_dir, tmp_path, backend="onnx", max_batch_tokens=200)
    assert_agrees(torch_fp32, onnx.probabilities(TEXTS), tolerance=1e-4)
    # The export is cached: a second load reuses it instead of exporting again.
    exported = list((tmp_path / "onnx-cache").glob("*/model.onnx"))
    assert len(exported) == 1
    mtime = exported[0].stat().st_mtime_ns
    classifier(decisive_model_dir, tmp_path, backend="onnx")
    assert exported[0].stat().st_mtime_ns == mtime


def test_batch_composition_does_not_change_answers(decisive_model_dir, tmp_path):
    model = classifier(decisive_model_dir, tmp_path, bf16="off", max_batch_tokens=300)
    together = model.probabilities(TEXTS)
    alone = np.concatenate([model.probabilities([text]) for text in TEXTS])
    assert np.abs(together - alone).max() < 1e-3


def test_head_and_head_tail_truncation(decisive_model_dir, tmp_path):
    words = " ".join(f"w{i}" for i in range(100))
    head = classifier(decisive_model_dir, tmp_path, bf16="off", max_length=12)
    head_tail = classifier(decisive_model_dir, tmp_path, bf16="off", max_length=12, truncation="head_tail",
                           head_tokens=4)
    [head_ids], [head_tail_ids] = head.encoder.encode([words]), head_tail.encoder.encode([words])
    body = head.tokenizer(words, add_special_tokens=False)["input_ids"]
    cls, sep = head.tokenizer.cls_token_id, head.tokenizer.sep_token_id
    assert head_ids == [cls, *body[:10], sep]
    assert head_tail_ids == [cls, *body[:4], *body[-6:], sep]
    assert head.encoder.encode(["short"])[0] == [cls, *head.tokenizer("short", add_special_tokens=False)["input_ids"], sep]


def test_max_length_above_the_model_limit_is_refused(decisive_model_dir, tmp_path):
    with pytest.raises(ValueError, match="max_length 100000 is outside 3..512"):
        classifier(decisive_model_dir, tmp_path, max_length=100_000)


@pytest.mark.parametrize("workers", [1, 2])
def test_batcher_merges_and_keeps_each_request_its_results(workers):
    batches = []

    def infer(items):
        batches.append(list(items))
        time.sleep(0.01)
        return [item * 10 for item in items]

    batcher = DynamicBatcher(infer, max_batch_size=8, max_delay=0.05, workers=workers)

    async def main():
        return await asyncio.gather(*(batcher.submit([i, i + 100]) for i in range(10)))

    results = asyncio.run(main())
    batcher.close()
    assert results == [[i * 10, (i + 100) * 10] for i in range(10)]
    assert all(len(batch) <= 8 for batch in batches)
    assert len(batches) < 10  # merged
    assert sorted(item for batch in batches for item in batch) == sorted(x for i in range(10) for x in (i, i + 100))


def test_batcher_failure_fails_only_the_request_that_caused_it_and_it_keeps_working():
    calls = []

    def infer(items):
        calls.append(list(items))
        if "boom" in items:
            raise RuntimeError("backend failed")
        return [len(item) for item in items]

    batcher = DynamicBatcher(infer, max_batch_size=8, max_delay=0.2)

    async def main():
        together = await asyncio.gather(batcher.submit(["a"]), batcher.submit(["boom", "xx"]), batcher.submit(["ccc"]),
                                        return_exceptions=True)
        return together, await batcher.submit(["ok!"])

    (first, failed, last), after = asyncio.run(main())
    batcher.close()
    assert first == [1] and last == [3] and after == [3]
    assert isinstance(failed, RuntimeError) and str(failed) == "backend failed"
    # One merged batch, then each request on its own.
    assert calls[:4] == [["a", "boom", "xx", "ccc"], ["a"], ["boom", "xx"], ["ccc"]]


def test_batcher_reports_its_workers_alive_until_closed():
    batcher = DynamicBatcher(lambda items: items, max_batch_size=2, max_delay=0.0, workers=2)
    assert batcher.alive()
    batcher.close()
    assert not batcher.alive()


@pytest.mark.integration
def test_all_backends_agree_with_torch_fp32_on_minilm(tmp_path):
    """The real offline MiniLM with a classifier head scaled up to give confident answers."""
    import torch
    from transformers import AutoModelForSequenceClassification, AutoTokenizer

    from textclf.base_model import resolve_base_model

    torch.manual_seed(0)
    model = AutoModelForSequenceClassification.from_pretrained(
        resolve_base_model(), num_labels=2, id2label={0: "negative", 1: "positive"},
        label2id={"negative": 0, "positive": 1})
    with torch.no_grad():
        model.classifier.weight.mul_(50.0)
    model.save_pretrained(tmp_path / "model")
    AutoTokenizer.from_pretrained(resolve_base_model()).save_pretrained(tmp_path / "model")

    reference = classifier(tmp_path / "model", tmp_path, bf16="off").probabilities(TEXTS)
    assert_agrees(reference, classifier(tmp_path / "model", tmp_path, backend="onnx").probabilities(TEXTS), 1e-4)
    assert_agrees(reference, classifier(tmp_path / "model", tmp_path, backend="onnx-int8").probabilities(TEXTS), 0.1)
    assert_agrees(reference, classifier(tmp_path / "model", tmp_path, bf16="on").probabilities(TEXTS), 0.05)
