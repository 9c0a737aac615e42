"""Canary rollout of the text classifier's InferenceService on KServe.

``python -m serving.rollout apply|status|promote|rollback|wait|analyze ...``; the pipeline's deploy
step calls ``apply_inference_service``. Imports neither torch nor kserve.
"""

from serving.rollout.errors import (
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
from serving.rollout.kube import InferenceServiceAPI
from serving.rollout.operations import (
    RolloutStatus,
    apply_inference_service,
    get_status,
    promote,
    rollback,
    wait_ready,
)

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
