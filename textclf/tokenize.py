"""Tokenize step: the ingested Parquet shards -> a ``datasets`` directory of token ids per split.

Texts are tokenized once here so that a retried or re-tuned train step does not pay for it again,
and so the cache of this step is shared by every run with the same data and tokenizer settings.
Sequences are *not* padded: the train step pads per batch (dynamic padding), which is most of the
speed on long-tailed review lengths.

Memory does not grow with the data: each split streams through in batches of ``batch_rows`` texts
(Parquet batch -> ``TextEncoder`` -> Arrow batch appended to the split's files), so what is resident
is one batch. The tokenizer's Rust backend encodes a batch on all cores (unless
``TOKENIZERS_PARALLELISM=false``); one process is enough.
"""

import json
import logging
import time
from dataclasses import asdict, dataclass
from pathlib import Path

from textclf.base_model import resolve_base_model
from textclf.data.splits import SPLITS
from textclf.encoding import TRUNCATION_MODES, TextEncoder
from textclf.settings import base_model_setting, setting

log = logging.getLogger(__name__)

TOKENIZER_SUBDIR = "tokenizer"
BATCH_ROWS = 1024  # texts per encode call: large enough for the Rust backend's threads, small in memory


@dataclass
class TokenizeSettings:
    """How texts become token ids (``textclf.encoding``)."""

    base_model: str = base_model_setting()
    max_length: int = setting(256, "Longest input in tokens, special tokens included; longer texts are truncated.")
    truncation: str = setting(
        "head",
        "head keeps the start of long texts; head_tail keeps the start and the end "
        "(long reviews often give their verdict at the end).",
        choices=TRUNCATION_MODES,
    )

    def __post_init__(self):
        if self.truncation not in TRUNCATION_MODES:
            raise ValueError(f"truncation must be one of {TRUNCATION_MODES}, got {self.truncation!r}")
        if self.max_length < 8:
            raise ValueError(f"max_length must be at least 8 tokens, got {self.max_length}")


def load_tokenizer(base_model: str):
    from transformers import AutoTokenizer

    return AutoTokenizer.from_pretrained(resolve_base_model(base_model, weights=False))


def tokenize(dataset_path: str, output_dir: str, settings: TokenizeSettings, batch_rows: int = BATCH_ROWS) -> dict:
    """Tokenize every split of the ingested dataset and save it with its tokenizer.

    Args:
        dataset_path: the ingest step's folder of Parquet shards (or one Parquet file with a ``split``
            column): columns ``text``, ``label``, ``split``.
        output_dir: where the ``DatasetDict`` (``save_to_disk`` layout) and ``tokenizer/`` go.
        settings: tokenizer, max length and truncation.
        batch_rows: texts per batch.

    Returns:
        Metadata for the artifact: base model, max length, truncation, rows, truncated rows and mean
        tokens per split.
    """
    import datasets.arrow_writer  # noqa: F401 - imported before the clock starts, so the logged rate is the work's

    from textclf.data.shards import iter_split
    from textclf.data.tokenized import SplitWriter, encoded_table, write_dataset_dict

    tokenizer = load_tokenizer(settings.base_model)
    encoder = TextEncoder(tokenizer, settings.max_length, settings.truncation)
    out = Path(output_dir)
    start = time.perf_counter()
    stats = {}
    for split in SPLITS:
        writer = SplitWriter(out / split)
        tokens = truncated = 0
        for batch in iter_split(dataset_path, split, ("text", "label"), batch_rows):
            texts = batch.column("text")
            input_ids = encoder.encode(texts.to_pylist())
            lengths = [len(ids) for ids in input_ids]
            tokens += sum(lengths)
            truncated += sum(n >= settings.max_length for n in lengths)
            writer.write(encoded_table(input_ids, batch.column("label"), texts))
        writer.close(fingerprint_of=json.dumps([str(dataset_path), asdict(settings)]))
        stats[split] = {
            "rows": writer.rows,
            "truncated": truncated,
            "mean_tokens": round(tokens / max(writer.rows, 1), 1),
        }
    write_dataset_dict(out, SPLITS)
    rows = sum(s["rows"] for s in stats.values())
    elapsed = time.perf_counter() - start
    log.info("tokenized %d texts in %.1fs (%.0f texts/s)", rows, elapsed, rows / max(elapsed, 1e-9))
    tokenizer.save_pretrained(str(out / TOKENIZER_SUBDIR))
    metadata = {**asdict(settings), "splits": stats}
    (out / "tokenize.json").write_text(json.dumps(metadata, indent=2))
    return metadata
