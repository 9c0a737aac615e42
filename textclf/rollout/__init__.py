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
from textclf.rollout.kube import InferenceServiceAPI
from textclf.rollout.operations import (
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
