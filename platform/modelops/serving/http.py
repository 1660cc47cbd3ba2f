"""Request and response models built from the manifest, and the guard in front of the API.

The request of ``POST /predict`` is the entity key and the request-time fields, flat, typed as
Feast declares them; ``POST /predict_batch`` takes ``{"entities": [...]}`` of the same items.
Every model forbids extra keys, is strict (``"7"`` is not an integer, ``7.0`` is not an
integer, ``true`` is not a number) and refuses NaN and infinities.

:class:`RequestGuard` (an ASGI middleware) answers every malformed request itself, before
BentoML sees it, with one JSON shape naming the field::

    {"error": "field 'entities.3.amount': Input should be a finite number",
     "field": "entities.3.amount", "detail": [{"field": ..., "type": ..., "message": ...}]}

- 415: a body that is not ``application/json``;
- 400: malformed JSON (``field`` is ``(body)``);
- 413: a body or a batch larger than allowed (``serving.max_batch``);
- 422: missing, extra or mistyped fields, non-finite numbers.
"""

from __future__ import annotations

import json
from collections.abc import Awaitable, Callable, MutableMapping
from dataclasses import dataclass
from typing import Annotated, Any

from pydantic import BaseModel, ConfigDict, Field, ValidationError, create_model

from modelops.serving.manifest import InputField, Manifest

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]
ASGIApp = Callable[[Scope, Receive, Send], Awaitable[None]]

INT64 = (-(2**63), 2**63 - 1)
MAX_STRING = 256
REQUEST_ID = r"^[A-Za-z0-9._:-]{1,64}$"
RESERVED = ("request_id", "entities", "project", "model_version", "score", "decision")
ITEM_BYTES = 4096  # a generous upper bound of one batch item's JSON


def _strict(name: str, example: dict[str, Any] | None = None) -> ConfigDict:
    config = ConfigDict(extra="forbid", strict=True, allow_inf_nan=False, title=name)
    if example is not None:
        config["json_schema_extra"] = {"example": example}  # OpenAPI 3.0 (BentoML)
    return config


def _annotation(spec: InputField) -> Any:
    description = spec.description or None
    if spec.type == "int":
        return Annotated[int, Field(ge=INT64[0], le=INT64[1], description=description)]
    if spec.type == "float":
        return Annotated[float, Field(description=description)]
    if spec.type == "bool":
        return Annotated[bool, Field(description=description)]
    return Annotated[str, Field(min_length=1, max_length=MAX_STRING, description=description)]


def _output(spec: InputField) -> Any:
    return {"int": int, "float": float, "bool": bool, "str": str}[spec.type]


@dataclass(frozen=True)
class ApiModels:
    predict_request: type[BaseModel]
    batch_item: type[BaseModel]
    batch_request: type[BaseModel]
    predict_response: type[BaseModel]
    batch_response: type[BaseModel]
    max_batch: int


def build_models(manifest: Manifest) -> ApiModels:
    """The pydantic models of the API a release publishes."""
    inputs = (manifest.entity, *manifest.request_fields)
    clash = [f.name for f in inputs if f.name in RESERVED]
    if clash:
        raise ValueError(f"input fields {clash} clash with the API's own fields")
    fields: dict[str, Any] = {f.name: (_annotation(f), ...) for f in inputs}
    request_id: Any = (
        Annotated[str | None, Field(pattern=REQUEST_ID, description="Your id for this request.")],
        None,
    )
    example = manifest.example
    item: Any = create_model("BatchItem", __config__=_strict("BatchItem", example), **fields)
    predict = create_model(
        "PredictRequest",
        __config__=_strict("PredictRequest", example),
        request_id=request_id,
        **fields,
    )
    max_batch = manifest.serving.max_batch
    entities: Any = Annotated[
        list[item],
        Field(
            min_length=1,
            max_length=max_batch,
            description=f"At most {max_batch} entities (serving.max_batch).",
        ),
    ]
    batch = create_model(
        "PredictBatchRequest",
        __config__=_strict(
            "PredictBatchRequest", None if example is None else {"entities": [example]}
        ),
        request_id=request_id,
        entities=(entities, ...),
    )
    key = manifest.entity
    outcome: dict[str, Any] = {
        key.name: (_output(key), ...),
        "score": (
            float | None,
            Field(description="Probability of the positive outcome; null for a fallback."),
        ),
        "decision": (str, Field(description="One of: " + ", ".join(_actions(manifest)))),
        "fallback": (bool, Field(description="True: no online features, the fallback decision.")),
        "reason": (str | None, Field(None, description="Why a fallback was answered.")),
    }
    frozen = ConfigDict(extra="forbid")
    common: dict[str, Any] = {
        "request_id": (str, ...),
        "project": (str, ...),
        "model_version": (str, ...),
    }
    predict_response = create_model("PredictResponse", __config__=frozen, **common, **outcome)
    batch_prediction: Any = create_model(
        "BatchPrediction", __config__=frozen, request_id=(str, ...), **outcome
    )
    predictions: Any = list[batch_prediction]
    batch_response = create_model(
        "PredictBatchResponse", __config__=frozen, **common, predictions=(predictions, ...)
    )
    return ApiModels(predict, item, batch, predict_response, batch_response, max_batch)


def _actions(manifest: Manifest) -> list[str]:
    d = manifest.decisions
    actions = [d.positive, d.review, d.negative]
    fallback = manifest.serving.fallback_decision
    if manifest.serving.missing_features == "fallback" and fallback and fallback not in actions:
        actions.append(fallback)
    return actions


def _dotted(loc: tuple[Any, ...]) -> str:
    return ".".join(str(part) for part in loc) or "(body)"


def validation_body(exc: ValidationError) -> tuple[int, dict[str, Any]]:
    """The status and JSON body of a request that failed its model."""
    errors = exc.errors(include_url=False, include_input=False, include_context=False)
    detail = [
        {"field": _dotted(tuple(e["loc"])), "type": e["type"], "message": e["msg"]} for e in errors
    ]
    first = detail[0]
    if first["type"] == "json_invalid":
        return 400, {
            "error": f"malformed JSON: {first['message']}",
            "field": "(body)",
            "detail": detail,
        }
    status = 422
    if any(d["type"] == "too_long" and d["field"] == "entities" for d in detail):
        status = 413
    message = f"field '{first['field']}': {first['message']}"
    if len(detail) > 1:
        message += f" (and {len(detail) - 1} more)"
    return status, {"error": message, "field": first["field"], "detail": detail}


def error_body(message: str, field: str | None) -> dict[str, Any]:
    return {"error": message, "field": field, "detail": []}


async def _respond(send: Send, status: int, body: dict[str, Any]) -> None:
    payload = json.dumps(body).encode()
    await send(
        {
            "type": "http.response.start",
            "status": status,
            "headers": [
                (b"content-type", b"application/json"),
                (b"content-length", str(len(payload)).encode()),
            ],
        }
    )
    await send({"type": "http.response.body", "body": payload})


class RequestGuard:
    """Validates the body of ``POST`` requests to the prediction routes before BentoML does.

    Args:
        app: the ASGI app behind (BentoML's).
        routes: path → the request model of that path.
        max_body: bytes per path; a larger body is refused with 413 before it is parsed.
        on_reject: called with the path and status of every refused request (metrics).
    """

    def __init__(
        self,
        app: ASGIApp,
        routes: dict[str, type[BaseModel]],
        max_body: dict[str, int],
        on_reject: Callable[[str, int], None] | None = None,
    ) -> None:
        self.app = app
        self.routes = routes
        self.max_body = max_body
        self.on_reject = on_reject or (lambda path, status: None)

    async def _refuse(self, send: Send, path: str, status: int, body: dict[str, Any]) -> None:
        self.on_reject(path, status)
        await _respond(send, status, body)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        path = scope.get("path", "")
        if scope.get("type") != "http" or scope.get("method") != "POST" or path not in self.routes:
            await self.app(scope, receive, send)
            return
        headers = dict(scope.get("headers") or [])
        content_type = headers.get(b"content-type", b"").decode("latin-1")
        media = content_type.split(";")[0].strip().lower()
        if media != "application/json":
            shown = media or "none"
            await self._refuse(
                send,
                path,
                415,
                error_body(
                    f"content type '{shown}' is not accepted; send application/json",
                    "content-type",
                ),
            )
            return
        limit = self.max_body[path]
        chunks: list[bytes] = []
        size = 0
        more = True
        while more:
            message = await receive()
            if message["type"] == "http.disconnect":
                return
            chunk = message.get("body", b"")
            size += len(chunk)
            if size > limit:
                await self._refuse(
                    send, path, 413, error_body(f"request body exceeds {limit} bytes", "(body)")
                )
                return
            chunks.append(chunk)
            more = message.get("more_body", False)
        body = b"".join(chunks)
        try:
            self.routes[path].model_validate_json(body)
        except ValidationError as exc:
            status, payload = validation_body(exc)
            await self._refuse(send, path, status, payload)
            return
        sent = False

        async def replay() -> Message:
            nonlocal sent
            if not sent:
                sent = True
                return {"type": "http.request", "body": body, "more_body": False}
            return await receive()

        await self.app(scope, replay, send)
