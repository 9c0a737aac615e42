"""``ingest_op`` runs as a real kfp component through ``kfp.local`` (SubprocessRunner, no Docker)."""

from pathlib import Path

import pandas as pd
import pytest
from kfp import local

from components.ingest import ingest_op


# Our component image is not a "python" image by name; the local runner warns about that.
@pytest.mark.filterwarnings("ignore:You may be attemping to run a task that uses custom:RuntimeWarning")
def test_ingest_op_writes_dataset_with_metadata_and_data_card(tmp_path):
    local.init(runner=local.SubprocessRunner(use_venv=False), pipeline_root=str(tmp_path))
    task = ingest_op(source="sample:200", seed=3, validation_fraction=0.2)

    dataset, card = task.outputs["dataset"], task.outputs["data_card"]
    frame = pd.read_parquet(dataset.path)  # the artifact is a folder of shards; pandas reads them all
    assert list(frame.columns) == ["text", "label", "split"] and len(frame) == 200
    assert sorted(p.name for p in Path(dataset.path).iterdir()) == [
        "test-00000.parquet",
        "train-00000.parquet",
        "validation-00000.parquet",
    ]
    assert dataset.metadata["labels"] == ["negative", "positive"]
    # kfp stores metadata as a protobuf Struct: numbers come back as floats.
    assert dataset.metadata["rows"] == frame["split"].value_counts().to_dict()
    assert 25 <= dataset.metadata["rows"]["validation"] <= 55, "about validation_fraction=0.2 of 200 rows"
    assert len(dataset.metadata["fingerprint"]) == 64
    assert dataset.metadata["source"] == "sample:200"
    text = Path(card.path).read_text(encoding="utf-8")
    assert text.startswith("# Data card") and "data:image/png;base64," in text
