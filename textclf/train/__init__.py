"""Fine-tuning: settings, the loop and its parts (batches, precision, model, checkpoints, output)."""

from textclf.train.loop import train
from textclf.train.settings import TrainSettings

__all__ = ["TrainSettings", "train"]
