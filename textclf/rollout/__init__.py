"""The InferenceService on a cluster: apply, status, promote, rollback, wait (canary rollouts).

The pipeline's deploy step calls ``apply_inference_service``; ``python -m serving.rollout`` is the
command line over these operations (plus the canary analysis). Imports neither torch nor kserve.
"""

from textclf.rollout.errors import (
    AnalysisError,
    ClusterUnreachableError,
    ConflictError,
    CRDNotInstalledError,
    InferenceServiceNotFoundError,
    InvalidManifestError,
    NoCanaryError,
    PermissionDeniedError,
    RolloutError,
    WaitTimeoutError,
)

# Loaded when first named: the Kubernetes client (textclf.platform.kube) raises this package's errors,
# so importing it must not import the operations, which import it back.
_LAZY = {
    "InferenceServiceAPI": "textclf.platform.kube",
    **dict.fromkeys(
        ("RolloutStatus", "apply_inference_service", "get_status", "promote", "rollback", "wait_ready"),
        "textclf.rollout.operations",
    ),
}


def __getattr__(name: str):
    if name not in _LAZY:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    import importlib

    return getattr(importlib.import_module(_LAZY[name]), name)


__all__ = [
    "AnalysisError",
    "ClusterUnreachableError",
    "ConflictError",
    "CRDNotInstalledError",
    "InferenceServiceAPI",
    "InferenceServiceNotFoundError",
    "InvalidManifestError",
    "NoCanaryError",
    "PermissionDeniedError",
    "RolloutError",
    "RolloutStatus",
    "WaitTimeoutError",
    "apply_inference_service",
    "get_status",
    "promote",
    "rollback",
    "wait_ready",
]
