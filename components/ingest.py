"""Ingest step: labelled texts in, a folder of Parquet shards (text, label, split) and a data card out."""

from kfp import dsl

from components.step import step
from textclf.ingest import IngestSettings

SOURCE_VERSION_HELP = (
    "Digest of the data behind source (the source-version step); part of the cache key, "
    "so a changed file at the same URI is read again."
)


# kfp builds the component from this signature, so each setting is named here once more, with its
# type; components/step.py checks the names and types against IngestSettings and adds defaults and help.
@step(IngestSettings, wired={"source_version": (SOURCE_VERSION_HELP, "")})
def ingest_op(
    source: str,
    text_column: str,
    label_column: str,
    split_column: str,
    label_names: str,
    validation_fraction: float,
    test_fraction: float,
    seed: int,
    sample_size: int,
    encoding: str,
    source_version: str,
    dataset: dsl.Output[dsl.Dataset],
    data_card: dsl.Output[dsl.Markdown],
):
    """Reads labelled texts in chunks, maps labels to ids, splits them and writes Parquet shards plus a data card.

    Args:
        dataset: Folder of Parquet shards ({split}-00000.parquet, ...) with columns text, label (0..K-1)
            and split (train/validation/test).
        data_card: Markdown with classes, counts, text lengths, duplicates and bad rows, with plots.
    """
    import logging

    from textclf.ingest import IngestSettings, ingest
    from textclf.settings import from_values

    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    result = ingest(from_values(IngestSettings, locals()), dataset.path, data_card.path)
    dataset.metadata.update({**result.metadata, "source_version": source_version})
