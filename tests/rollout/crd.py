"""KServe's own InferenceService CRD schema (v0.20.0, tests/fixtures/kserve/) as validators.

``problems`` is the check every InferenceService the project writes must pass: the strict schema
(a misspelt field fails, see ``strictify``), the apiVersion/kind, and the deployment-mode
annotation's value. The fake API server (fake_kube.py) uses ``schema`` to type server-side apply
and ``loose_validator`` / ``unknown_fields`` as kube-apiserver does for a CRD.
"""

from __future__ import annotations

import copy
import json
from functools import lru_cache
from pathlib import Path

import jsonschema

KSERVE_VERSION = "v0.20.0"
SCHEMA_PATH = (
    Path(__file__).resolve().parents[1] / "fixtures" / "kserve" / f"inferenceservice-crd-{KSERVE_VERSION}.schema.json"
)
API_VERSION = "serving.kserve.io/v1beta1"
MODE_ANNOTATION = "serving.kserve.io/deploymentMode"
# The values KServe v0.20.0 parses (pkg/constants/constants.go: DeploymentModeType, ParseDeploymentMode);
# Serverless and RawDeployment are its deprecated names for Knative and Standard.
KSERVE_DEPLOYMENT_MODES = ("Serverless", "Knative", "RawDeployment", "Standard", "ModelMesh")


@lru_cache(maxsize=1)
def schema() -> dict:
    return json.loads(SCHEMA_PATH.read_text())


def strictify(node):
    """Add ``additionalProperties: false`` where Kubernetes leaves objects open.

    Structural schemas never close an object; the API server prunes unknown fields (or refuses
    them with ``fieldValidation=Strict``). Every object with ``properties`` and neither
    ``additionalProperties`` nor ``x-kubernetes-preserve-unknown-fields`` is closed here.
    """
    if isinstance(node, dict):
        if (
            "properties" in node
            and "additionalProperties" not in node
            and not node.get("x-kubernetes-preserve-unknown-fields")
        ):
            node["additionalProperties"] = False
        for value in node.values():
            strictify(value)
    elif isinstance(node, list):
        for value in node:
            strictify(value)
    return node


@lru_cache(maxsize=1)
def strict_validator() -> jsonschema.Draft7Validator:
    return jsonschema.Draft7Validator(strictify(copy.deepcopy(schema())))


@lru_cache(maxsize=1)
def loose_validator() -> jsonschema.Draft7Validator:
    """Types, required fields and bounds as the API server checks them (unknown fields pass)."""
    return jsonschema.Draft7Validator(schema())


def _path(error: jsonschema.ValidationError) -> str:
    return "." + ".".join(str(p) for p in error.absolute_path) if error.absolute_path else "."


def problems(isvc: dict) -> list[str]:
    """Everything KServe's CRD (and the deployment-mode annotation) would refuse, as readable lines."""
    found = [f"{_path(e)}: {e.message}" for e in strict_validator().iter_errors(isvc)]
    if isvc.get("apiVersion") != API_VERSION or isvc.get("kind") != "InferenceService":
        found.append(f"not a {API_VERSION} InferenceService: {isvc.get('apiVersion')} {isvc.get('kind')}")
    if not isvc.get("metadata", {}).get("name"):
        found.append(".metadata.name: missing")
    mode = isvc.get("metadata", {}).get("annotations", {}).get(MODE_ANNOTATION)
    if mode is not None and mode not in KSERVE_DEPLOYMENT_MODES:
        found.append(f".metadata.annotations.{MODE_ANNOTATION}: {mode!r} is not one of {KSERVE_DEPLOYMENT_MODES}")
    return found


def unknown_fields(obj: dict) -> list[str]:
    """Paths of fields the schema does not declare (what ``fieldValidation=Strict`` refuses)."""
    return [
        f"{_path(e)}.{name}".replace("..", ".")
        for e in strict_validator().iter_errors(obj)
        if e.validator == "additionalProperties"
        for name in sorted(set(e.instance) - set(e.schema.get("properties", {})))
    ]
