"""Optimize step: the serving backends' artifacts built and measured against fp32 (``textclf.optimize``)."""

from kfp import dsl

from components.step import step
from textclf.optimize import OptimizeSettings


# Settings named again for kfp (see components/step.py, which checks them against the dataclasses).
@step(OptimizeSettings)
def optimize_op(
    candidate_backends: str,
    max_backend_flip_rate: float,
    max_agreement_texts: int,
    seed: int,
    model: dsl.Input[dsl.Model],
    tokenized: dsl.Input[dsl.Dataset],
    optimized: dsl.Output[dsl.Model],
):
    """Build each serving backend's artifact beside the model and measure it against fp32 PyTorch on the
    validation split; the output is the Model directory that evaluate scores and deploy serves.

    Args:
        model: The trained Model directory.
        tokenized: Tokenized splits; the validation split is scored by every backend.
        optimized: The trained model's files plus onnx/ and serving.json (agreement, speed, the chosen backend).
    """
    import logging

    from textclf.optimize import OptimizeSettings, optimize
    from textclf.settings import from_values

    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(message)s")
    result = optimize(model.path, tokenized.path, optimized.path, from_values(OptimizeSettings, locals()))
    optimized.metadata.update(
        {
            **{k: model.metadata[k] for k in ("labels", "base_model", "data_fingerprint") if k in model.metadata},
            "serving_backend": result["backend"],
            "serving_reason": result["reason"],
        }
    )
    for name, measured in result["backends"].items():
        if "flip_rate" in measured:
            optimized.metadata[f"{name}_flip_rate"] = measured["flip_rate"]
            optimized.metadata[f"{name}_texts_per_second"] = measured["texts_per_second"]
