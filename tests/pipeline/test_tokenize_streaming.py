"""The tokenize step streams: its files are what ``datasets`` itself would save, batch size does not
change the data, and splits read back in batches equal ``load_from_disk``'s view."""

import json
from pathlib import Path

import datasets
import pandas as pd
import pytest
from transformers import AutoTokenizer

from textclf.data.tokenized import SplitWriter, encoded_table, features, iter_batches, write_dataset_dict
from textclf.encoding import TextEncoder
from textclf.tokenize import TokenizeSettings, tokenize


@pytest.fixture(scope="module")
def tokenized_small_batches(sample_parquet, tiny_model_dir, tmp_path_factory):
    out = tmp_path_factory.mktemp("tok-small-batches")
    tokenize(sample_parquet[0], str(out), TokenizeSettings(base_model=tiny_model_dir, max_length=64), batch_rows=7)
    return str(out)


def test_batch_size_does_not_change_the_tokenized_data(tokenized_small_batches, tokenized_dir):
    small, large = datasets.load_from_disk(tokenized_small_batches), datasets.load_from_disk(tokenized_dir)
    for split in ("train", "validation", "test"):
        assert small[split].to_list() == large[split].to_list()
    assert json.loads(Path(tokenized_small_batches, "tokenize.json").read_text()) == json.loads(
        Path(tokenized_dir, "tokenize.json").read_text()
    )


def test_files_match_what_datasets_save_to_disk_writes(tokenized_dir, sample_parquet, tiny_model_dir, tmp_path):
    """The reference is the library's own writer, fed the way tokenize worked before it streamed."""
    frame = pd.read_parquet(sample_parquet[0])
    encoder = TextEncoder(AutoTokenizer.from_pretrained(tiny_model_dir), 64)
    reference = {}
    for split in ("train", "validation", "test"):
        part = frame[frame["split"] == split]
        ids = encoder.encode(part["text"].tolist())
        reference[split] = datasets.Dataset.from_dict(
            {
                "input_ids": ids,
                "attention_mask": [[1] * len(i) for i in ids],
                "label": part["label"].tolist(),
                "text": part["text"].tolist(),
            }
        )
    datasets.DatasetDict(reference).save_to_disk(str(tmp_path / "ref"))

    ours = datasets.load_from_disk(tokenized_dir)
    library = datasets.load_from_disk(str(tmp_path / "ref"))
    for split in ("train", "validation", "test"):
        assert ours[split].features == library[split].features
        assert ours[split].to_list() == library[split].to_list()
        for name in ("state.json", "dataset_info.json"):
            mine = json.loads(Path(tokenized_dir, split, name).read_text())
            theirs = json.loads((tmp_path / "ref" / split / name).read_text())
            assert mine.keys() == theirs.keys()
            if name == "dataset_info.json":
                assert mine == theirs
    assert json.loads((tmp_path / "ref" / "dataset_dict.json").read_text()) == json.loads(
        Path(tokenized_dir, "dataset_dict.json").read_text()
    )


def test_a_split_in_several_arrow_files_loads_and_streams_in_order(tmp_path):
    writer = SplitWriter(tmp_path / "test", shard_rows=10)
    ids = [[101, *range(1000, 1000 + n % 7), 102] for n in range(25)]
    for start in range(0, 25, 4):
        writer.write(
            encoded_table(
                ids[start : start + 4],
                list(range(start, min(start + 4, 25))),
                [f"text {i}" for i in range(start, min(start + 4, 25))],
            )
        )
    writer.close()
    write_dataset_dict(tmp_path, ["test"])
    assert sorted(p.name for p in (tmp_path / "test").glob("*.arrow")) == [
        "data-00000-of-00003.arrow",
        "data-00001-of-00003.arrow",
        "data-00002-of-00003.arrow",
    ]
    loaded = datasets.load_from_disk(str(tmp_path))["test"]
    assert loaded.features == features() and loaded["input_ids"] == ids and loaded["label"] == list(range(25))
    streamed = [
        row for batch in iter_batches(str(tmp_path), ["label", "text"], batch_rows=3) for row in batch.to_pylist()
    ]
    assert streamed == loaded.select_columns(["label", "text"]).to_list()
    from_dataset = [row for batch in iter_batches(loaded, ["label"], batch_rows=6) for row in batch.to_pylist()]
    assert from_dataset == [{"label": i} for i in range(25)]


def test_an_empty_split_is_a_readable_empty_dataset(tmp_path):
    SplitWriter(tmp_path / "test").close()
    write_dataset_dict(tmp_path, ["test"])
    empty = datasets.load_from_disk(str(tmp_path))["test"]
    assert len(empty) == 0 and empty.features == features()
