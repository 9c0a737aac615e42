"""Tokenize step: the ingested Parquet -> a ``datasets`` directory of token ids per split.

Texts are tokenized once here so that a retried or re-tuned train step does not pay for it again,
and so the cache of this step is shared by every run with the same data and tokenizer settings.
Sequences are *not* padded: the train step pads per batch (dynamic padding), which is most of the
speed on long-tailed review lengths.
"""


import json
import logging
import time
from dataclasses import asdict, dataclass
from pathlib import Path

from textclf.base_model import resolve_base_model
from textclf.encoding import TRUNCATION_MODES, TextEncoder
from textclf.settings import base_model_setting, setting

log = logging.getLogger(__name__)

SPLITS = ("train", "validation", "test")
TOKENIZER_SUBDIR = "tokenizer"


@dataclass
class TokenizeSettings:
    """How texts become token ids (``textclf.encoding``)."""

    base_model: str = base_model_setting()
    max_length: int = setting(256, "Longest input in tokens, special tokens included; longer texts are truncated.")
    truncation: str = setting("head", "head keeps the start of long texts; head_tail keeps the start and the end "
                              "(long reviews often give their verdict at the end).", choices=TRUNCATION_MODES)

    def __post_init__(self):
        if self.truncation not in TRUNCATION_MODES:
            raise ValueError(f"truncation must be one of {TRUNCATION_MODES}, got {self.truncation!r}")
        if self.max_length < 8:
            raise ValueError(f"max_length must be at least 8 tokens, got {self.max_length}")


def load_tokenizer(base_model: str):
    from transformers import AutoTokenizer

    return AutoTokenizer.from_pretrained(resolve_base_model(base_model))


def tokenize(dataset_path: str, output_dir: str, settings: TokenizeSettings) -> dict:
    """Tokenize every split of the ingested dataset and save it with its tokenizer.

    Args:
        dataset_path: the ingest step's Parquet file (columns ``text``, ``label``, ``split``).
        output_dir: where the ``DatasetDict`` (``save_to_disk``) and ``tokenizer/`` go.
        settings: tokenizer, max length and truncation.

    Returns:
        Metadata for the artifact: base model, max length, truncation, rows and truncated rows per split.
    """
    import datasets
    import pandas as pd

    frame = pd.read_parquet(dataset_path)
    tokenizer = load_tokenizer(settings.base_model)
    encoder = TextEncoder(tokenizer, settings.max_length, settings.truncation)
    start = time.perf_counter()
    splits, stats = {}, {}
    for split in SPLITS:
        part = frame[frame["split"] == split]
        texts = part["text"].tolist()
        input_ids = encoder.encode(texts)
        lengths = [len(ids) for ids in input_ids]
        splits[split] = datasets.Dataset.from_dict({
            "input_ids": input_ids, "attention_mask": [[1] * n for n in lengths],
            "label": part["label"].astype("int64").tolist(), "text": texts,
        })
        stats[split] = {
            "rows": len(texts),
            "truncated": sum(n >= settings.max_length for n in lengths),
            "mean_tokens": round(sum(lengths) / max(len(lengths), 1), 1),
        }
    elapsed = time.perf_counter() - start
    log.info("tokenized %d texts in %.1fs (%.0f texts/s)", len(frame), elapsed, len(frame) / max(elapsed, 1e-9))

    out = Path(output_dir)
    datasets.DatasetDict(splits).save_to_disk(str(out))
    tokenizer.save_pretrained(str(out / TOKENIZER_SUBDIR))
    metadata = {**asdict(settings), "splits": stats}
    (out / "tokenize.json").write_text(json.dumps(metadata, indent=2))
    return metadata
