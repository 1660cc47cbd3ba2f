"""Request and response models built from the manifest, and the guard in front of the API.

The request of ``POST /predict`` is the entity key and the request-time fields, flat, typed as
Feast declares them; ``POST /predict_batch`` takes ``{"entities": [...]}`` of the same items.
Every model forbids extra keys, is strict (``"7"`` is not an integer, ``7.5`` is not an
integer, ``true`` is not a number) and refuses NaN and infinities. ``7.0`` is the integer 7, as
JSON Schema (and so the OpenAPI document) has it.

:class:`RequestGuard` (an ASGI middleware) answers every malformed request itself, before
BentoML sees it, with one JSON shape naming the field::

    {"error": "field 'entities.3.amount': Input should be a finite number",
     "field": "entities.3.amount", "detail": [{"field": ..., "type": ..., "message": ...}]}

- 415: a body that is not ``application/json``;
- 400: malformed JSON (``field`` is ``(body)``);
- 408: a body not received within the body timeout (the connection is closed);
- 413: a body or a batch larger than allowed (``serving.max_batch``);
- 422: missing, extra or mistyped fields, non-finite numbers, a request field outside its
  training range (``serving.out_of_range: refuse``).

A valid request is handed to ``answer`` when one is given (the service's fast path: the
predictor called on the event loop with the model the guard validated, the answer written as
JSON); else, or when ``answer`` declines, the request (its body replayed) goes on to BentoML.

It also answers ``GET`` of the service's own OpenAPI document (:mod:`modelops.serving.openapi`)
in place of BentoML's, whose generator drops ``null`` from every optional type.
"""

from __future__ import annotations

import asyncio
import json
import math
import time
from collections.abc import Awaitable, Callable, Mapping, MutableMapping
from dataclasses import dataclass
from typing import Annotated, Any

from pydantic import (
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    ValidationError,
    create_model,
)
from pydantic_core import to_json

from modelops.serving.manifest import InputField, Manifest

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]
ASGIApp = Callable[[Scope, Receive, Send], Awaitable[None]]
Answer = Callable[[str, BaseModel], tuple[int, dict[str, Any]] | None]
"""``(path, validated request) -> (status, JSON body)``, or None to pass the request on."""

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


Bounds = Mapping[str, tuple[float, float]]


def _annotation(spec: InputField, bounds: tuple[float, float] | None = None) -> Any:
    description = spec.description or None
    if spec.type == "int":
        low, high = INT64
        if bounds is not None:
            low, high = max(low, math.ceil(bounds[0])), min(high, math.floor(bounds[1]))
        return Annotated[
            int, Field(ge=low, le=high, description=description), BeforeValidator(_integral)
        ]
    if spec.type == "float":
        if bounds is not None:
            return Annotated[float, Field(ge=bounds[0], le=bounds[1], description=description)]
        return Annotated[float, Field(description=description)]
    if spec.type == "bool":
        return Annotated[bool, Field(description=description)]
    return Annotated[str, Field(min_length=1, max_length=MAX_STRING, description=description)]


def _integral(value: Any) -> Any:
    """A float with no fractional part is the integer JSON Schema says it is (``7.0`` → 7)."""
    if isinstance(value, float) and value.is_integer():
        return int(value)
    return value


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


def build_models(manifest: Manifest, bounds: Bounds | None = None) -> ApiModels:
    """The pydantic models of the API a release publishes.

    ``bounds`` (request field → [low, high]) adds the training ranges a request field must keep
    (``serving.out_of_range: refuse``) to the request models: the request guard then refuses a
    value outside with 422 naming the field, and the OpenAPI document states the range.
    """
    inputs = (manifest.entity, *manifest.request_fields)
    clash = [f.name for f in inputs if f.name in RESERVED]
    if clash:
        raise ValueError(f"input fields {clash} clash with the API's own fields")
    limits = bounds or {}
    fields: dict[str, Any] = {manifest.entity.name: (_annotation(manifest.entity), ...)}
    for spec in manifest.request_fields:
        fields[spec.name] = (_annotation(spec, limits.get(spec.name)), ...)
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
        "reason": (
            str | None,
            Field(description="Why a fallback was answered; null for a score."),
        ),
        "out_of_range": (
            list[str],
            Field(
                description="Features outside their training range, scored anyway "
                "(serving.out_of_range: flag); empty otherwise."
            ),
        ),
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


async def respond(send: Send, status: int, body: dict[str, Any], *, close: bool = False) -> None:
    """Send a complete JSON response (``close``: and end the connection after it)."""
    await send_json(send, status, json.dumps(body).encode(), close=close)


async def send_json(send: Send, status: int, payload: bytes, *, close: bool = False) -> None:
    """Send ``payload``, a JSON document, as a complete response."""
    headers = [
        (b"content-type", b"application/json"),
        (b"content-length", str(len(payload)).encode()),
    ]
    if close:
        headers.append((b"connection", b"close"))
    await send({"type": "http.response.start", "status": status, "headers": headers})
    await send({"type": "http.response.body", "body": payload})


class _BodyTimeout(Exception):
    pass


class RequestGuard:
    """Validates the body of ``POST`` requests to the prediction routes before BentoML does.

    Args:
        app: the ASGI app behind (BentoML's).
        routes: path → the request model of that path, or a function returning that mapping
            (read per request, so a reload can change the models).
        max_body: bytes per path; a larger body is refused with 413 before it is parsed.
        on_reject: called with the path and status of every refused request (metrics).
        body_timeout: seconds the whole body may take to arrive once the app has the request.
        documents: a function returning ``GET`` path → JSON document the guard answers itself.
        answer: answers a valid request itself (:data:`Answer`); None passes it on.
        threaded: paths whose ``answer`` runs in a thread rather than on the event loop
            (a batch: a long call would hold every other request, probes too).
    """

    def __init__(
        self,
        app: ASGIApp,
        routes: Mapping[str, type[BaseModel]] | Callable[[], Mapping[str, type[BaseModel]]],
        max_body: dict[str, int],
        on_reject: Callable[[str, int], None] | None = None,
        body_timeout: float = 10.0,
        documents: Callable[[], Mapping[str, bytes]] | None = None,
        answer: Answer | None = None,
        threaded: frozenset[str] = frozenset(),
    ) -> None:
        self.app = app
        self._routes = routes if callable(routes) else (lambda: routes)
        self.max_body = max_body
        self.on_reject = on_reject or (lambda path, status: None)
        self.body_timeout = body_timeout
        self._documents = documents or (lambda: {})
        self._answer = answer
        self._threaded = threaded

    @property
    def routes(self) -> Mapping[str, type[BaseModel]]:
        return self._routes()

    async def _refuse(
        self, send: Send, path: str, status: int, body: dict[str, Any], close: bool = False
    ) -> None:
        self.on_reject(path, status)
        await respond(send, status, body, close=close)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        path = scope.get("path", "")
        if scope.get("type") != "http":
            await self.app(scope, receive, send)
            return
        if scope.get("method") in ("GET", "HEAD"):
            document = self._documents().get(path)
            if document is not None:
                await _document(send, document, scope["method"] == "HEAD")
                return
        routes = self.routes
        if scope.get("method") != "POST" or path not in routes:
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
        try:
            body = await self._read(receive, self.max_body[path])
        except _BodyTimeout:
            message = f"request body not received within {self.body_timeout:g} s"
            await self._refuse(send, path, 408, error_body(message, "(body)"), close=True)
            return
        if body is None:  # the client went away
            return
        if isinstance(body, int):
            await self._refuse(
                send, path, 413, error_body(f"request body exceeds {body} bytes", "(body)")
            )
            return
        try:
            request = routes[path].model_validate_json(body)
        except ValidationError as exc:
            status, payload = validation_body(exc)
            await self._refuse(send, path, status, payload)
            return
        answered = None
        if self._answer is not None:
            if path in self._threaded:
                import anyio.to_thread

                answered = await anyio.to_thread.run_sync(self._answer, path, request)
            else:
                answered = self._answer(path, request)
        if answered is not None:
            status, answer = answered
            # serialised as BentoML's response models were: pydantic's serialiser, in Rust
            await send_json(send, status, to_json(answer, inf_nan_mode="null"))
            return
        sent = False

        async def replay() -> Message:
            nonlocal sent
            if not sent:
                sent = True
                return {"type": "http.request", "body": body, "more_body": False}
            return await receive()

        await self.app(scope, replay, send)

    async def _read(self, receive: Receive, limit: int) -> bytes | int | None:
        """The body; ``limit`` itself when it is larger; None on a disconnect.

        Raises:
            _BodyTimeout: the body did not arrive within ``body_timeout``.
        """
        deadline = time.monotonic() + self.body_timeout
        chunks: list[bytes] = []
        size = 0
        more = True
        while more:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise _BodyTimeout
            try:
                message = await asyncio.wait_for(receive(), remaining)
            except TimeoutError:
                raise _BodyTimeout from None
            if message["type"] == "http.disconnect":
                return None
            chunk = message.get("body", b"")
            size += len(chunk)
            if size > limit:
                return limit
            chunks.append(chunk)
            more = message.get("more_body", False)
        return b"".join(chunks)


async def _document(send: Send, payload: bytes, head: bool) -> None:
    await send(
        {
            "type": "http.response.start",
            "status": 200,
            "headers": [
                (b"content-type", b"application/json"),
                (b"content-length", str(len(payload)).encode()),
            ],
        }
    )
    await send({"type": "http.response.body", "body": b"" if head else payload})
