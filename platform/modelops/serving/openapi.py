"""The service's OpenAPI document, built from the same pydantic models that validate requests.

BentoML generates an OpenAPI 3.0 document from the API's models but flattens every optional
type to its non-null half (``score`` and ``reason`` typed number and string although a fallback
answers null) and lists only 200, 400, 404 and 500. A client generated from it rejected the
service's own answers. This document is OpenAPI 3.1, whose schemas are the JSON Schema pydantic
writes (``null`` kept), and lists every status the service answers with its body:

- ``POST /predict`` and ``/predict_batch``: 200; 400, 408, 413, 415, 422 (the request guard),
  404 (no online features, ``serving.missing_features: error``), 422 (an input the model cannot
  score, a feature outside its training range), 503 (the online store), each with the one error
  shape ``{"error", "field", "detail"}``; 431 (the edge, before any route);
- ``GET /healthz``, ``/livez``, ``/readyz``: 200 or 503, plain text; ``GET /metrics``: 200,
  Prometheus text.

Out-of-range refusal (``serving.out_of_range: refuse``) is part of the request schema: a request
field's ``minimum``/``maximum`` are its training range widened by the margin.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from pydantic import BaseModel

from modelops.core.ranges import bounds
from modelops.serving.http import ApiModels, build_models
from modelops.serving.manifest import Manifest

REF = "#/components/schemas/{model}"
DOCUMENT_PATH = "/docs.json"
ERROR_SCHEMA: dict[str, Any] = {
    "title": "Error",
    "type": "object",
    "required": ["error", "field", "detail"],
    "additionalProperties": False,
    "properties": {
        "error": {"type": "string", "description": "What was refused, in one line."},
        "field": {
            "type": ["string", "null"],
            "description": "The request field at fault (dotted for batch items, '(body)' for "
            "the body, 'content-type', 'headers', '(path)'); null when no field is.",
        },
        "detail": {
            "type": "array",
            "description": "Every validation error (empty for other refusals).",
            "items": {
                "type": "object",
                "required": ["field", "type", "message"],
                "additionalProperties": False,
                "properties": {
                    "field": {"type": "string"},
                    "type": {"type": "string"},
                    "message": {"type": "string"},
                },
            },
        },
    },
}
_ERRORS = {
    "400": "Malformed JSON.",
    "404": "No online features for the entity (serving.missing_features: error).",
    "408": "The request's headers or body did not arrive in time; the connection is closed.",
    "413": "A body or batch larger than allowed (serving.max_batch).",
    "415": "A body that is not application/json.",
    "422": "Missing, extra or mistyped fields, non-finite numbers, a feature outside its "
    "training range (serving.out_of_range: refuse), or an input the model cannot score.",
    "431": "Request line and headers too large, or too many header fields.",
    "503": "The online store did not answer.",
}
_EDGE = {"408": _ERRORS["408"], "431": _ERRORS["431"]}


def _error(description: str) -> dict[str, Any]:
    schema = {"$ref": REF.format(model="Error")}
    return {"description": description, "content": {"application/json": {"schema": schema}}}


def _text(description: str, media: str = "text/plain") -> dict[str, Any]:
    return {"description": description, "content": {media: {"schema": {"type": "string"}}}}


def _schemas(models: list[type[BaseModel]]) -> dict[str, Any]:
    found: dict[str, Any] = {"Error": ERROR_SCHEMA}
    for model in models:
        schema = model.model_json_schema(ref_template=REF)
        found.update(schema.pop("$defs", {}))
        found[model.__name__] = schema
    return found


def _prediction(name: str, summary: str, request: str, response: str) -> dict[str, Any]:
    ref = {"$ref": REF.format(model=request)}
    return {
        "post": {
            "operationId": name,
            "summary": summary,
            "requestBody": {"required": True, "content": {"application/json": {"schema": ref}}},
            "responses": {
                "200": {
                    "description": "The prediction.",
                    "content": {
                        "application/json": {"schema": {"$ref": REF.format(model=response)}}
                    },
                },
                **{status: _error(text) for status, text in _ERRORS.items()},
            },
        }
    }


def _probe(name: str, summary: str, unhealthy: str | None) -> dict[str, Any]:
    responses: dict[str, Any] = {"200": _text("Healthy.")}
    if unhealthy:
        responses["503"] = _text(unhealthy)
    responses.update({status: _error(text) for status, text in _EDGE.items()})
    return {"get": {"operationId": name, "summary": summary, "responses": responses}}


def openapi_document(api: ApiModels, title: str, version: str, description: str) -> dict[str, Any]:
    """The OpenAPI 3.1 document of a service publishing ``api``."""
    metrics: dict[str, Any] = {
        "get": {
            "operationId": "metrics",
            "summary": "Prometheus metrics of this worker.",
            "responses": {
                "200": _text("Prometheus text exposition.", "text/plain; version=0.0.4"),
                **{status: _error(text) for status, text in _EDGE.items()},
            },
        }
    }
    return {
        "openapi": "3.1.0",
        "info": {"title": title, "version": version, "description": description},
        "paths": {
            "/predict": _prediction(
                "predict", "Score one entity.", "PredictRequest", "PredictResponse"
            ),
            "/predict_batch": _prediction(
                "predict_batch",
                "Score many entities with one online read.",
                "PredictBatchRequest",
                "PredictBatchResponse",
            ),
            "/healthz": _probe("healthz", "The process answers.", "The prediction log died."),
            "/livez": _probe("livez", "The process answers.", "The prediction log died."),
            "/readyz": _probe(
                "readyz", "Models loaded and the online store answering.", "Not ready."
            ),
            "/metrics": metrics,
        },
        "components": {
            "schemas": _schemas(
                [
                    api.predict_request,
                    api.batch_request,
                    api.predict_response,
                    api.batch_response,
                ]
            )
        },
    }


def encode(document: dict[str, Any]) -> bytes:
    return json.dumps(document, separators=(",", ":")).encode()


@dataclass(frozen=True)
class Contract:
    """What the request guard enforces and publishes for one release: the request models (with
    the training ranges in ``refuse`` mode) and the OpenAPI document built from them."""

    api: ApiModels
    routes: Mapping[str, type[BaseModel]]
    documents: Mapping[str, bytes]


def contract(manifest: Manifest, title: str) -> Contract:
    """The contract of a release; request fields carry their ranges when the project refuses
    values outside them and the served version recorded them."""
    serving = manifest.serving
    ranges = manifest.model.feature_ranges
    limits = None
    if serving.out_of_range == "refuse" and ranges:
        names = [f.name for f in manifest.request_fields if f.type in ("int", "float")]
        limits = bounds(ranges, serving.range_margin, names)
    api = build_models(manifest, limits)
    description = (
        f"Predictions of {manifest.registered_model} v{manifest.model.version} "
        f"(project {manifest.project}) from the online features of "
        f"{manifest.feature_service}."
    )
    document = openapi_document(api, title, manifest.model.version, description)
    return Contract(
        api=api,
        routes={"/predict": api.predict_request, "/predict_batch": api.batch_request},
        documents={DOCUMENT_PATH: encode(document)},
    )
