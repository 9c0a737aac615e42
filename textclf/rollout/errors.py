"""Named errors of the rollout commands: each says what went wrong and what to do about it."""

from __future__ import annotations


class RolloutError(Exception):
    """Base class: every failure of a rollout command is one of these."""


class ClusterUnreachableError(RolloutError):
    """No Kubernetes API server answered (no kubeconfig, no in-cluster config, or no connection)."""


class CRDNotInstalledError(RolloutError):
    """The cluster has no ``serving.kserve.io/v1beta1`` API: KServe is not installed."""


class InferenceServiceNotFoundError(RolloutError):
    """The named InferenceService does not exist in the namespace."""


class ConflictError(RolloutError):
    """The object changed between our read and our write (409), or already exists."""


class PermissionDeniedError(RolloutError):
    """The API server refused the request (401/403): check the service account's RBAC."""


class InvalidManifestError(RolloutError):
    """The manifest is not an InferenceService this tool can apply."""


class NoCanaryError(RolloutError):
    """The command needs a canary in progress, and there is none."""


class WaitTimeoutError(RolloutError):
    """The InferenceService did not become ready in time."""


class AnalysisError(RolloutError):
    """Canary analysis could not get its numbers (Prometheus or probe requests failed)."""
