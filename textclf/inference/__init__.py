"""The one inference engine: backends (one registry of names), length-grouped batching, the
agreement check, and which backend serves a model. No kfp, no kserve; torch only in the backends
that run it.

    engine = load_engine(model_dir, InferenceSettings(backend="onnx-int8"))
    engine.probabilities(["a fine film"])  # [1, K]
"""

from textclf.inference.agreement import Agreement
from textclf.inference.backends import (
    AUTO,
    BACKENDS,
    REFERENCE,
    Backend,
    BackendKind,
    MissingArtifactError,
    TorchBackend,
)
from textclf.inference.batching import MAX_BATCH_TOKENS, PASS_COST_TOKENS, Batching
from textclf.inference.choice import SERVING_FILE, choose, measurement, read_serving_file, resolve_backend
from textclf.inference.engine import Engine, InferenceSettings, Prediction, load_engine, model_labels

__all__ = [
    "AUTO",
    "Agreement",
    "BACKENDS",
    "Backend",
    "BackendKind",
    "Batching",
    "Engine",
    "InferenceSettings",
    "MAX_BATCH_TOKENS",
    "MissingArtifactError",
    "PASS_COST_TOKENS",
    "Prediction",
    "REFERENCE",
    "SERVING_FILE",
    "TorchBackend",
    "choose",
    "load_engine",
    "measurement",
    "model_labels",
    "read_serving_file",
    "resolve_backend",
]
