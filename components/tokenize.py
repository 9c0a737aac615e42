"""Tokenize step: the ingested dataset -> token ids per split, with the tokenizer (``textclf.tokenize``)."""

from kfp import dsl

from components.step import step
from textclf.tokenize import TokenizeSettings


# Settings named again for kfp (see components/step.py, which checks them against TokenizeSettings).
@step(TokenizeSettings)
def tokenize_op(
    base_model: str,
    max_length: int,
    truncation: str,
    dataset: dsl.Input[dsl.Dataset],
    tokenized: dsl.Output[dsl.Dataset],
):
    """Tokenize the ingested dataset with the base model's tokenizer.

    Args:
        dataset: Ingested Parquet dataset (text, label, split).
        tokenized: Tokenized splits (datasets save_to_disk) plus the tokenizer files.
    """
    import logging

    from textclf.settings import from_values
    from textclf.tokenize import TokenizeSettings, tokenize

    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(message)s")
    tokenized.metadata.update(tokenize(dataset.path, tokenized.path, from_values(TokenizeSettings, locals())))
