"""Train step: fine-tune the base model on the tokenized splits (``textclf.train``), on a GPU in the cloud."""

from kfp import dsl

from components.step import gpu_step
from textclf.tracking import TrackingSettings
from textclf.train import TrainSettings


# Settings named again for kfp (see components/step.py, which checks them against the dataclasses).
@gpu_step(TrainSettings, TrackingSettings)
def train_op(
    base_model: str, epochs: int, learning_rate: float, batch_size: int, grad_accum_steps: int,
    warmup_ratio: float, weight_decay: float, group_by_length: bool, precision: str,
    early_stopping_patience: int, max_steps: int, seed: int, torch_compile: bool, attention_dropout: float,
    eval_batch_size: int, log_every: int, wandb_project: str, wandb_entity: str, wandb_api_key_secret: str,
    dataset: dsl.Input[dsl.Dataset], tokenized: dsl.Input[dsl.Dataset], model: dsl.Output[dsl.Model],
):
    """Fine-tune the base model as a sequence classifier.

    Args:
        dataset: Ingested dataset (its metadata gives the label names and the data fingerprint).
        tokenized: Tokenized splits from the tokenize step.
        model: Hugging Face model directory (config with id2label, safetensors, tokenizer, training.json).
    """
    import logging
    from dataclasses import asdict

    from textclf import tracking
    from textclf.settings import from_values
    from textclf.train import TrainSettings, train

    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(message)s")
    settings = from_values(TrainSettings, locals())
    config = {**asdict(settings), "data_fingerprint": dataset.metadata.get("fingerprint"), "data_source": dataset.metadata.get("source")}
    with tracking.start(from_values(tracking.TrackingSettings, locals()), job_type="train", config=config) as run:
        summary = train(tokenized.path, model.path, settings, {**dataset.metadata, **tokenized.metadata}, log_metrics=run.log)
    model.metadata.update({k: summary[k] for k in ("labels", "base_model", "data_fingerprint", "precision", "code_version")})
