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

from kfp import dsl

from components.base_model import DEFAULT_BASE_MODEL, resolve_base_model
from components.images import cpu_step

log = logging.getLogger(__name__)

TRUNCATION_MODES = ("head", "head_tail")
SPLITS = ("train", "validation", "test")
TOKENIZER_SUBDIR = "tokenizer"
HEAD_SHARE = 0.25  # head+tail keeps the first quarter and the last three quarters (Sun et al., 2019)


@dataclass
class TokenizeSettings:
    """How texts become token ids.

    Attributes:
        base_model: model whose tokenizer is used (``offline:all-MiniLM-L6-v2``, a local dir or a hub id).
        max_length: longest sequence in tokens, special tokens included.
        truncation: ``head`` keeps the start of long texts; ``head_tail`` keeps the start and the end
            (long reviews often give their verdict at the end).
    """

    base_model: str = DEFAULT_BASE_MODEL
    max_length: int = 256
    truncation: str = "head"

    def __post_init__(self):
        if self.truncation not in TRUNCATION_MODES:
            raise ValueError(f"truncation must be one of {TRUNCATION_MODES}, got {self.truncation!r}")
        if self.max_length < 8:
            raise ValueError(f"max_length must be at least 8 tokens, got {self.max_length}")


def load_tokenizer(base_model: str):
    from transformers import AutoTokenizer

    return AutoTokenizer.from_pretrained(resolve_base_model(base_model))


def special_token_counts(tokenizer) -> tuple[int, int]:
    """How many special tokens the tokenizer puts before and after a text ([CLS] ... [SEP] -> 1, 1)."""
    plain = tokenizer("x", add_special_tokens=False)["input_ids"]
    full = tokenizer("x")["input_ids"]
    prefix = next(i for i in range(len(full)) if full[i : i + len(plain)] == plain)
    return prefix, len(full) - prefix - len(plain)


def encode(tokenizer, texts: list[str], max_length: int, truncation: str = "head") -> dict[str, list]:
    """Token ids and attention masks for ``texts``, unpadded, at most ``max_length`` long.

    The server calls this too, so training and serving truncate the same way.
    """
    if truncation == "head":
        enc = tokenizer(texts, truncation=True, max_length=max_length)
        return {"input_ids": enc["input_ids"], "attention_mask": enc["attention_mask"]}
    n_prefix, n_suffix = special_token_counts(tokenizer)
    budget = max_length - n_prefix - n_suffix
    head = int(budget * HEAD_SHARE)
    input_ids = []
    for ids in tokenizer(texts)["input_ids"]:
        if len(ids) > max_length:
            body = ids[n_prefix : len(ids) - n_suffix]
            ids = ids[:n_prefix] + body[:head] + body[len(body) - (budget - head) :] + ids[len(ids) - n_suffix :]
        input_ids.append(ids)
    return {"input_ids": input_ids, "attention_mask": [[1] * len(ids) for ids in input_ids]}


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
    start = time.perf_counter()
    splits, stats = {}, {}
    for split in SPLITS:
        part = frame[frame["split"] == split]
        texts = part["text"].tolist()
        enc = encode(tokenizer, texts, settings.max_length, settings.truncation)
        lengths = [len(ids) for ids in enc["input_ids"]]
        splits[split] = datasets.Dataset.from_dict(
            {**enc, "label": part["label"].astype("int64").tolist(), "text": texts}
        )
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


@cpu_step
def tokenize_op(
    dataset: dsl.Input[dsl.Dataset],
    base_model: str,
    max_length: int,
    truncation: str,
    tokenized: dsl.Output[dsl.Dataset],
):
    """Tokenize the ingested dataset with the base model's tokenizer.

    Args:
        dataset: Ingested Parquet dataset (text, label, split).
        base_model: Model whose tokenizer is used: offline:all-MiniLM-L6-v2, a hub id or a path.
        max_length: Longest sequence in tokens; longer texts are truncated.
        truncation: head (keep the start) or head_tail (keep the start and the end).
        tokenized: Tokenized splits (datasets save_to_disk) plus the tokenizer files.
    """
    import logging

    from components.tokenize import TokenizeSettings, tokenize

    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(message)s")
    settings = TokenizeSettings(base_model=base_model, max_length=max_length, truncation=truncation)
    tokenized.metadata.update(tokenize(dataset.path, tokenized.path, settings))
