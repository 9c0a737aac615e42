"""The training pipeline's definition and its command line (``python -m pipelines``)."""
