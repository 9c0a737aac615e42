"""The served OpenAPI document (``/openapi.json``, and ``/docs`` with ``--enable_docs_url``), made
to describe this model: the real V1 and V2 bodies, the binary tensor extension, and the status
codes the server answers with (FastAPI's own document has empty bodies, a 422 the server never
sends, and kserve routes that always fail).

FastAPI's ``app.openapi`` is replaced (a public, documented way to customise the document); the
generated document is the base, so a route kserve adds later still shows up.
"""

from __future__ import annotations

import copy

import kserve

from serving.dataplane import DisabledRepositoryExtension
from serving.protocol import V2_OUTPUT_NAMES, classifiable_pattern

ERROR = {"$ref": "#/components/schemas/Error"}
BINARY_BODY = {"type": "string", "format": "binary"}


def _json(schema: dict, description: str) -> dict:
    return {"description": description, "content": {"application/json": {"schema": schema}}}


def _errors(*codes: int) -> dict:
    reasons = {
        400: "The request is malformed; the message names the problem. Only this request fails.",
        403: "The model repository extension is disabled on this server.",
        404: "No model with this name (or no such path).",
        405: "Wrong method: inference takes POST (the `Allow` header says which).",
        413: "The body is over the server's limit (decided before the body is read).",
        415: "Unsupported Content-Type: send application/json (or application/octet-stream with "
        "Inference-Header-Content-Length on V2).",
        429: "Too many :explain requests running or waiting (explain_max_pending); try again later.",
        503: "The model is not ready (loading, unloaded or shutting down).",
    }
    return {str(code): _json(ERROR, reasons[code]) for code in codes}


def _model_name(model) -> dict:
    """The ``{model_name}`` path parameter: this server's one model."""
    return {"name": "model_name", "in": "path", "required": True, "schema": {"type": "string", "enum": [model.name]}}


def _probabilities(labels: list) -> dict:
    return {"type": "object", "required": labels, "properties": {name: {"type": "number"} for name in labels}}


def _optional(schema: dict) -> dict:
    """kserve's request model takes null for an optional field."""
    return {"anyOf": [schema, {"type": "null"}]}


def _parameters(**properties: dict) -> dict:
    """An Open Inference Protocol ``parameters`` object: any names, scalar values; ``properties`` known."""
    schema: dict = {"type": "object", "additionalProperties": {"type": ["string", "number", "boolean"]}}
    return {**schema, "properties": properties} if properties else schema


def _schemas(model) -> dict:
    labels = list(model.engine.labels)
    text = {
        "type": "string",
        "pattern": classifiable_pattern(),
        "description": "A text to classify: at least one character that is not whitespace, a control or a "
        "format (zero-width) character. Long texts are cut as in training.",
    }
    return {
        "Error": {"type": "object", "required": ["error"], "properties": {"error": {"type": "string"}}},
        "Text": text,
        **_v1_schemas(model.max_instances, labels),
        "InferenceRequest": _inference_request(model.max_instances),
        "InferenceResponse": _inference_response(labels),
    }


def _v1_schemas(max_instances: int, labels: list) -> dict:
    return {
        "V1Request": {
            "type": "object",
            "required": ["instances"],
            "properties": {
                "instances": {
                    "type": "array",
                    "minItems": 1,
                    "maxItems": max_instances,
                    "items": {
                        "anyOf": [
                            {"$ref": "#/components/schemas/Text"},
                            {
                                "type": "object",
                                "required": ["text"],
                                "properties": {"text": {"$ref": "#/components/schemas/Text"}},
                            },
                        ]
                    },
                }
            },
            "example": {"instances": ["A wonderful film.", {"text": "Dreadful."}]},
        },
        "V1Response": {
            "type": "object",
            "required": ["predictions"],
            "properties": {
                "predictions": {
                    "type": "array",
                    "items": {
                        "type": "object",
                        "required": ["label", "score", "probabilities"],
                        "properties": {
                            "label": {"type": "string", "enum": labels},
                            "score": {"type": "number"},
                            "probabilities": _probabilities(labels),
                        },
                    },
                }
            },
        },
    }


def _inference_request(max_instances: int) -> dict:
    return {
        "type": "object",
        "required": ["inputs"],
        "description": 'One BYTES input "text" of shape [N], N = the number of texts. With '
        "`parameters.binary_data_output` (or an output's `parameters.binary_data`) true, the "
        "answer uses the binary tensor extension.",
        "properties": {
            "id": _optional({"type": "string"}),
            "parameters": _optional(_parameters(binary_data_output={"type": "boolean"})),
            "inputs": {
                "type": "array",
                "minItems": 1,
                "maxItems": 1,
                "items": {
                    "type": "object",
                    "required": ["name", "shape", "datatype", "data"],
                    "properties": {
                        "name": {"const": "text"},
                        "datatype": {"const": "BYTES"},
                        "shape": {
                            "type": "array",
                            "minItems": 1,
                            "maxItems": 1,
                            "items": {"type": "integer", "minimum": 1, "maximum": max_instances},
                        },
                        "data": {
                            "type": "array",
                            "minItems": 1,
                            "maxItems": max_instances,
                            "items": {"$ref": "#/components/schemas/Text"},
                        },
                        "parameters": _optional(_parameters()),
                    },
                },
            },
            "outputs": _optional(
                {
                    "type": "array",
                    "items": {
                        "type": "object",
                        "required": ["name"],
                        "properties": {
                            "name": {"enum": list(V2_OUTPUT_NAMES)},
                            "parameters": _optional(_parameters(binary_data={"type": "boolean"})),
                        },
                    },
                }
            ),
        },
        "example": {
            "inputs": [{"name": "text", "datatype": "BYTES", "shape": [2], "data": ["A wonderful film.", "Dreadful."]}]
        },
    }


def _inference_response(labels: list) -> dict:
    tensor_data = {"type": "array", "items": {"anyOf": [{"type": "string"}, {"type": "number"}]}}
    return {
        "type": "object",
        "required": ["model_name", "outputs"],
        "description": f"Outputs label (BYTES [N], one of {labels}), score (FP32 [N]) and probabilities "
        f"(FP32 [N, {len(labels)}], in the label order above); only those requested, when "
        "`outputs` is given. An output sent in binary has `parameters.binary_data_size` "
        "instead of `data`.",
        "properties": {
            "model_name": {"type": "string"},
            "model_version": {"type": ["string", "null"]},
            "id": {"type": "string"},
            "parameters": _optional(_parameters()),
            "outputs": {
                "type": "array",
                "items": {
                    "type": "object",
                    "required": ["name", "shape", "datatype"],
                    "properties": {
                        "name": {"enum": list(V2_OUTPUT_NAMES)},
                        "datatype": {"enum": ["BYTES", "FP32"]},
                        "shape": {"type": "array", "items": {"type": "integer"}},
                        "data": tensor_data,
                        "parameters": _optional(_parameters()),
                    },
                },
            },
        },
    }


def _inference_operations(model, max_body_bytes: int) -> dict:
    name = _model_name(model)
    body_note = f" Bodies over {max_body_bytes} bytes get 413."
    v1 = {
        "tags": ["V1"],
        "summary": "Classify texts (V1)",
        "operationId": "v1_predict",
        "parameters": [name],
        "description": "Answers in request order." + body_note,
        "requestBody": {
            "required": True,
            "content": {"application/json": {"schema": {"$ref": "#/components/schemas/V1Request"}}},
        },
        "responses": {
            "200": _json({"$ref": "#/components/schemas/V1Response"}, "One prediction per text."),
            **_errors(400, 404, 405, 413, 415, 503),
        },
    }
    v2 = {
        "tags": ["V2"],
        "summary": "Classify texts (Open Inference Protocol)",
        "operationId": "v2_infer",
        "parameters": [name],
        "description": (
            "A JSON request, or the same in the binary tensor extension: `Content-Type: application/octet-stream` "
            "(or none) and the header `Inference-Header-Content-Length: N`; the first N bytes of the body are the "
            "JSON request, whose input has `parameters.binary_data_size` instead of `data`, followed by the texts, "
            "each as a 4-byte little-endian length and its UTF-8 bytes. (OpenAPI cannot tie a header to one body "
            "type, so only the JSON form is in the schema below.) Without that header a body is read as JSON, "
            "whatever its Content-Type is among application/json, application/octet-stream and none." + body_note
        ),
        "requestBody": {
            "required": True,
            "content": {"application/json": {"schema": {"$ref": "#/components/schemas/InferenceRequest"}}},
        },
        "responses": {
            "200": {
                "description": "The outputs; binary (with an Inference-Header-Content-Length header) when asked.",
                "headers": {"Inference-Header-Content-Length": {"schema": {"type": "integer"}}},
                "content": {
                    "application/json": {"schema": {"$ref": "#/components/schemas/InferenceResponse"}},
                    "application/octet-stream": {"schema": BINARY_BODY},
                },
            },
            **_errors(400, 404, 405, 413, 415, 503),
        },
    }
    return {"/v1/models/{model_name}:predict": {"post": v1}, "/v2/models/{model_name}/infer": {"post": v2}}


def _explain_schemas(model) -> dict:
    labels = list(model.engine.labels)
    settings = model.explain_settings
    word = {
        "type": "object",
        "required": ["word", "start", "end", "attribution"],
        "properties": {
            "word": {"type": "string", "description": "text[start:end], a word of the original text"},
            "start": {"type": "integer"},
            "end": {"type": "integer"},
            "attribution": {"type": "number", "description": "share of the explained label's log-odds"},
        },
    }
    explanation = {
        "type": "object",
        "required": [
            "label",
            "score",
            "probabilities",
            "explained_label",
            "words",
            "truncated",
            "log_odds",
            "baseline_log_odds",
            "convergence_delta",
        ],
        "properties": {
            "label": {"enum": labels},
            "score": {"type": "number"},
            "explained_label": {"enum": labels},
            "probabilities": _probabilities(labels),
            "words": {"type": "array", "items": word},
            "truncated": {"type": "boolean"},
            "log_odds": {"type": "number"},
            "baseline_log_odds": {"type": "number"},
            "convergence_delta": {"type": "number"},
        },
    }
    request = copy.deepcopy(_schemas(model)["V1Request"])
    request["properties"]["parameters"] = {
        "type": "object",
        "additionalProperties": False,
        "properties": {
            "steps": {
                "type": "integer",
                "minimum": 1,
                "maximum": settings.explain_max_steps,
                "description": f"integration steps (default {settings.explain_steps})",
            },
            "label": {
                "enum": [*labels, None],
                "description": "the label to explain (default or null: the predicted one)",
            },
        },
    }
    return {
        "V1ExplainRequest": request,
        "V1ExplainResponse": {
            "type": "object",
            "required": ["method", "attributes", "steps", "explanations"],
            "properties": {
                "method": {"const": "integrated_gradients"},
                "attributes": {"const": "log_odds"},
                "steps": {"type": "integer"},
                "explanations": {"type": "array", "items": explanation},
            },
        },
    }


def _explain_operation(model, max_body_bytes: int) -> dict:
    name = _model_name(model)
    settings = model.explain_settings
    return {
        "/v1/models/{model_name}:explain": {
            "post": {
                "tags": ["V1"],
                "summary": "Explain predictions (V1): each word's attribution",
                "operationId": "v1_explain",
                "parameters": [name],
                "description": (
                    "Integrated gradients over the word embeddings, toward the label's log-odds, on the same "
                    f"encoding as predictions. At most {settings.explain_max_steps} steps and "
                    f"{settings.explain_max_tokens} tokens per request (400 above); at most "
                    f"{settings.explain_max_pending} requests at once (429 above). Bodies over {max_body_bytes} "
                    "bytes get 413."
                ),
                "requestBody": {
                    "required": True,
                    "content": {"application/json": {"schema": {"$ref": "#/components/schemas/V1ExplainRequest"}}},
                },
                "responses": {
                    "200": _json({"$ref": "#/components/schemas/V1ExplainResponse"}, "One explanation per text."),
                    **_errors(400, 404, 405, 413, 415, 429, 503),
                },
            }
        }
    }


def _health_operations(model) -> dict:
    name = _model_name(model)
    ready = {
        "type": "object",
        "required": ["name", "ready"],
        "properties": {"name": {"type": "string"}, "ready": {"type": "boolean"}},
    }
    return {
        "/": {
            "get": {
                "summary": "Liveness",
                "operationId": "live",
                "responses": {"200": _json({"type": "object", "properties": {"status": {"const": "alive"}}}, "Alive.")},
            }
        },
        "/metrics": {
            "get": {
                "summary": "Prometheus metrics",
                "operationId": "metrics",
                "responses": {
                    "200": {
                        "description": "Prometheus text format.",
                        "content": {"text/plain": {"schema": {"type": "string"}}},
                    }
                },
            }
        },
        "/v1/models/{model_name}": {
            "get": {
                "tags": ["V1"],
                "summary": "Model readiness (V1)",
                "operationId": "v1_model_ready",
                "parameters": [name],
                "responses": {"200": _json(ready, "Ready."), **_errors(404, 503)},
            }
        },
        "/v2/health/ready": {
            "get": {
                "tags": ["V2"],
                "summary": "Server readiness",
                "operationId": "v2_ready",
                "description": "Ready only while every model is loaded and ready.",
                "responses": {
                    "200": _json({"$ref": "#/components/schemas/ServerReadyResponse"}, "Ready."),
                    **_errors(503),
                },
            }
        },
        "/v2/models/{model_name}": {
            "get": {
                "tags": ["V2"],
                "summary": "Model metadata",
                "operationId": "v2_model_metadata",
                "parameters": [name],
                "responses": {
                    "200": _json({"$ref": "#/components/schemas/ModelMetadataResponse"}, "Inputs and outputs."),
                    **_errors(404, 503),
                },
            }
        },
        "/v2/models/{model_name}/ready": {
            "get": {
                "tags": ["V2"],
                "summary": "Model readiness",
                "operationId": "v2_model_ready",
                "parameters": [name],
                "responses": {"200": _json(ready, "Ready."), **_errors(404, 503)},
            }
        },
    }


def _repository_operations(model) -> dict:
    name = _model_name(model)

    def operation(action: str) -> dict:
        done = {"type": "object", "properties": {"name": {"type": "string"}, action: {"type": "boolean"}}}
        return {
            "post": {
                "tags": ["V2"],
                "summary": f"{action.capitalize()} the model (cluster-internal)",
                "parameters": [name],
                "operationId": f"repository_{action}",
                "responses": {"200": _json(done, f"{action.capitalize()}ed."), **_errors(404, 503)},
            }
        }

    return {f"/v2/repository/models/{{model_name}}/{action}": operation(action) for action in ("load", "unload")}


# kserve routes this server does not offer in any useful way: versions are not supported (501).
HIDDEN_PATHS = ("/v2/models/{model_name}/versions/{model_version}/ready",)


def document(base: dict, model, max_body_bytes: int, repository_enabled: bool) -> dict:
    """``base`` (FastAPI's document) rewritten for ``model``."""
    spec = copy.deepcopy(base)
    paths = spec["paths"]
    for path in HIDDEN_PATHS + ("/v2/repository/models/{model_name}/load", "/v2/repository/models/{model_name}/unload"):
        paths.pop(path, None)
    paths.pop("/v1/models/{model_name}:explain", None)  # 501 unless the model explains (below)
    paths.update(_health_operations(model))
    paths.update(_inference_operations(model, max_body_bytes))
    explains = type(model).explain is not kserve.Model.explain and getattr(model, "explainer", None) is not None
    if explains:
        paths.update(_explain_operation(model, max_body_bytes))
    if repository_enabled:
        paths.update(_repository_operations(model))
    for operations in paths.values():
        for operation in operations.values():
            operation.get("responses", {}).pop("422", None)  # the guards answer 400 instead
            if "parameters" in operation:  # kserve's model_version query parameter only ever gives 501
                operation["parameters"] = [p for p in operation["parameters"] if p.get("name") != "model_version"]
    schemas = spec.setdefault("components", {}).setdefault("schemas", {})
    for unused in ("HTTPValidationError", "ValidationError", "RequestInput", "RequestOutput"):
        schemas.pop(unused, None)
    schemas.update(_schemas(model))
    if explains:
        schemas.update(_explain_schemas(model))
    spec["info"]["title"] = f"Text classifier {model.name!r} (KServe model server)"
    spec["info"]["description"] = (
        f"Classifies texts into {list(model.engine.labels)} over V1 and the Open "
        "Inference Protocol (V2; gRPC on the gRPC port). Errors are JSON "
        '`{"error": "..."}` naming the problem.'
    )
    return spec


def install(app, models, max_body_bytes: int, repository_extension) -> None:
    """Serve :func:`document` for the (single) model as ``/openapi.json``."""
    generate = app.openapi
    cached = {}

    def openapi() -> dict:
        if "spec" not in cached:
            cached["spec"] = document(
                generate(), models[0], max_body_bytes, not isinstance(repository_extension, DisabledRepositoryExtension)
            )
        return cached["spec"]

    app.openapi = openapi
