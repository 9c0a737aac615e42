"""Integration: the real offline all-MiniLM-L6-v2 fine-tuned on a few hundred sample reviews."""

import json

import pytest

from textclf.evaluate import evaluate
from textclf.ingest import IngestSettings, ingest
from textclf.tokenize import TokenizeSettings, tokenize
from textclf.train import TrainSettings, train

pytestmark = pytest.mark.integration


def test_minilm_learns_the_sample_reviews(tmp_path):
    data = ingest(IngestSettings(source="sample:400", seed=7), str(tmp_path / "data"))
    tokenize(str(tmp_path / "data"), str(tmp_path / "tok"), TokenizeSettings(max_length=64))
    summary = train(
        str(tmp_path / "tok"),
        str(tmp_path / "model"),
        TrainSettings(epochs=2, batch_size=16),
        {**data.metadata, "max_length": 64},
    )
    assert summary["history"][-1]["val_accuracy"] >= 0.85
    result = evaluate(str(tmp_path / "model"), str(tmp_path / "tok"), str(tmp_path / "eval"))
    assert result["accuracy"] >= 0.85 and result["roc_auc"] >= 0.9
    behaviour = json.loads((tmp_path / "eval" / "metrics.json").read_text())["behaviour"]
    assert behaviour["roles"] == {"sentiment": {"positive": "positive", "negative": "negative"}}
    assert behaviour["pass_rates"]["mft"] > 0.5 and "neutral_typos" in behaviour["pass_rates"]
