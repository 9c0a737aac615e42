"""HTTP guards and metrics around kserve's FastAPI app.

kserve reads any body in full, answers some errors in FastAPI's own shapes, and lets FastAPI decide
from the Content-Type whether a V2 body is JSON. This module adds, as a pure ASGI middleware, on the
inference endpoints (V1 ``:predict``/``:explain``, V2 ``/infer``), all decided from the headers
before a byte of the body is read:

- 405 (``Allow: POST``) for any other method (a GET on ``:predict`` was a 404 "model not found");
- the body's encoding, from its headers (Triton's rules, which its clients rely on):
  ``Inference-Header-Content-Length`` present: the binary tensor extension (V2 only, 400 on V1);
  else JSON when the Content-Type is JSON, absent (tritonclient sends none) or, on V2,
  ``application/octet-stream`` (tritonclient's aio client in JSON mode); any other type: 415;
- 413 for a body over the limit (from Content-Length; a chunked body is read only up to it);
- 503 with ``Retry-After`` when the server's request queue (:class:`serving.batching.RequestQueue`)
  is full: the body is then read and dropped chunk by chunk, never held, so the client gets a
  clean answer and a burst of large bodies costs no memory;
- after a body of 1 MB or more, freed memory goes back to the OS (``serving.memory``);
- responses carry only the headers the protocol defines (never a request header echoed back),
  and a binary V2 response says ``Content-Type: application/octet-stream``;

and, everywhere: request counters by endpoint and status, an in-flight gauge, and JSON
``{"error": ...}`` bodies for FastAPI's validation errors, Starlette's 404/405 and a refused model
repository call (403).
"""

from __future__ import annotations

import asyncio
import re

from fastapi import FastAPI
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from prometheus_client import Counter, Gauge
from starlette.exceptions import HTTPException as StarletteHTTPException

from serving.batching import QueueFull, RequestQueue
from serving.binary import INFERENCE_HEADER
from serving.dataplane import RepositoryDisabled
from serving.memory import LARGE_BODY_BYTES, release_after
from serving.protocol import describe_problems

REQUESTS = Counter("textclf_http_requests", "HTTP requests by endpoint and status code", ["endpoint", "code"])
ERRORS = Counter(
    "textclf_http_errors", "HTTP responses with status >= 400 by endpoint and status code", ["endpoint", "code"]
)
IN_FLIGHT = Gauge("textclf_http_requests_in_flight", "HTTP requests being handled now")

# A fixed set of endpoint labels, so that arbitrary paths cannot grow the metrics without bound.
_ENDPOINTS = (
    ("v1_predict", re.compile(r"^/v1/models/[^/]+:predict$")),
    ("v1_explain", re.compile(r"^/v1/models/[^/]+:explain$")),
    ("v2_infer", re.compile(r"^/v2/models/[^/]+(/versions/[^/]+)?/infer$")),
    ("health", re.compile(r"^/$|^/v2/health/|^/v1/models/[^/:]+$|^/v2/models/[^/]+(/versions/[^/]+)?/ready$")),
    ("metrics", re.compile(r"^/metrics$")),
    ("metadata", re.compile(r"^/v1/models$|^/v2(/models(/[^/]+(/versions/[^/]+)?)?)?$")),
    ("repository", re.compile(r"^/v2/repository/")),
)
INFERENCE_ENDPOINTS = frozenset({"v1_predict", "v1_explain", "v2_infer"})
JSON_TYPES = frozenset({"application/json", "application/cloudevents+json"})
BINARY_TYPE = "application/octet-stream"
# What an inference response may carry: the body's own headers, the binary extension's, a 503's
# Retry-After, and the ce-* attributes kserve writes for a CloudEvent answer.
RESPONSE_HEADERS = frozenset(
    {
        b"content-type",
        b"content-length",
        b"content-encoding",
        b"transfer-encoding",
        b"allow",
        b"retry-after",
        b"inference-header-content-length",
    }
)
CLOUDEVENT_PREFIX = b"ce-"
SENT_AS = "textclf.sent_as"  # scope key: the Content-Type a JSON body came with, when it was not JSON


def endpoint_of(path: str) -> str:
    for name, pattern in _ENDPOINTS:
        if pattern.search(path):
            return name
    return "other"


class RequestGuard:
    """ASGI middleware: method, body encoding and limit, response headers, counters. See the
    module docstring."""

    def __init__(self, app, max_body_bytes: int, request_queue: RequestQueue):
        self.app = app
        self.max_body_bytes = max_body_bytes
        self.request_queue = request_queue

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http":
            return await self.app(scope, receive, send)
        endpoint = endpoint_of(scope["path"])
        status = {"code": 500}  # if the app dies before answering, uvicorn sends a 500

        async def counting_send(message):
            if message["type"] == "http.response.start":
                status["code"] = message["status"]
                if endpoint in INFERENCE_ENDPOINTS:
                    message = _clean_response_start(message)
            await send(message)

        received = {"bytes": 0}
        read_body = receive

        async def counting_receive():
            message = await read_body()
            received["bytes"] += len(message.get("body", b""))
            return message

        receive = counting_receive
        IN_FLIGHT.inc()
        queued = False
        try:
            if endpoint in INFERENCE_ENDPOINTS:
                rejection, scope, receive = await self._check_request(scope, receive, endpoint)
                if rejection is None:
                    rejection, queued = await self._enter_queue(receive)
                if rejection is not None:
                    return await rejection(scope, receive, counting_send)
            await self.app(scope, receive, counting_send)
        finally:
            if queued:
                self.request_queue.leave()
            IN_FLIGHT.dec()
            code = str(status["code"])
            REQUESTS.labels(endpoint, code).inc()
            if status["code"] >= 400:
                ERRORS.labels(endpoint, code).inc()
            if received["bytes"] >= LARGE_BODY_BYTES:  # its objects are freed by now: return the pages
                await asyncio.to_thread(release_after, received["bytes"])

    async def _enter_queue(self, receive):
        """(None, True) with a place in the request queue, else (a 503 response, False)."""
        try:
            self.request_queue.enter()
        except QueueFull as full:
            await _discard_body(receive)
            return error(503, str(full), headers={"Retry-After": str(full.retry_after_seconds)}), False
        return None, True

    async def _check_request(self, scope, receive, endpoint: str):
        """(an error response or None, the scope and receive callable the app should use)."""
        if scope["method"] != "POST":
            return (
                error(
                    405, f"{scope['method']} is not allowed here: send the request with POST", headers={"Allow": "POST"}
                ),
                scope,
                receive,
            )
        headers = {key.decode("latin-1").lower(): value.decode("latin-1") for key, value in scope["headers"]}
        rejection, scope = _decide_encoding(scope, headers, v2=endpoint == "v2_infer")
        if rejection is not None:
            return rejection, scope, receive
        rejection, receive = await self._check_size(headers, receive)
        return rejection, scope, receive

    async def _check_size(self, headers: dict, receive):
        length = headers.get("content-length")
        if length is not None:
            if not length.isdigit():
                return error(400, f"Content-Length {length!r} is not a number"), receive
            if int(length) > self.max_body_bytes:
                return self._too_large(int(length)), receive
            return None, receive
        # Chunked: read at most the limit, then hand the buffered body on.
        chunks, size, more = [], 0, True
        while more:
            message = await receive()
            if message["type"] == "http.disconnect":
                return None, _replay([message])
            chunks.append(message.get("body", b""))
            size += len(chunks[-1])
            if size > self.max_body_bytes:
                return self._too_large(size, at_least=True), receive
            more = message.get("more_body", False)
        return None, _replay([{"type": "http.request", "body": b"".join(chunks), "more_body": False}])

    def _too_large(self, size: int, at_least: bool = False) -> JSONResponse:
        prefix = "more than " if at_least else ""
        return error(413, f"request body is {prefix}{size} bytes, over the limit of {self.max_body_bytes} bytes")


def _decide_encoding(scope, headers: dict, v2: bool):
    """(an error response or None, the scope with the Content-Type kserve must see: FastAPI hands
    V2 bodies to kserve as JSON only when the Content-Type says JSON, and as bytes otherwise)."""
    content_type = headers.get("content-type", "").split(";")[0].strip().lower()
    if INFERENCE_HEADER in headers:
        if not v2:
            return error(
                400,
                "the binary tensor extension (Inference-Header-Content-Length) is part of the V2 "
                "protocol: POST it to /v2/models/NAME/infer",
            ), scope
        if content_type not in JSON_TYPES | {"", BINARY_TYPE}:
            return _unsupported(content_type), scope
        return None, _with_content_type(scope, BINARY_TYPE)
    if content_type in JSON_TYPES:
        return None, scope
    if content_type == "" or (v2 and content_type == BINARY_TYPE):
        scope = _with_content_type(scope, "application/json")
        scope[SENT_AS] = content_type or "no Content-Type"
        return None, scope
    return _unsupported(content_type), scope


def _unsupported(content_type: str) -> JSONResponse:
    return error(
        415,
        f"Content-Type must be application/json (or, on V2, application/octet-stream with "
        f"Inference-Header-Content-Length for binary tensors), got {content_type!r}",
    )


def _with_content_type(scope, content_type: str):
    headers = [(key, value) for key, value in scope["headers"] if key.lower() != b"content-type"]
    return dict(scope, headers=headers + [(b"content-type", content_type.encode())])


def _clean_response_start(message):
    """Only the headers of :data:`RESPONSE_HEADERS`; a binary V2 body says it is octet-stream."""
    headers = [
        (key, value)
        for key, value in message.get("headers", [])
        if key.lower() in RESPONSE_HEADERS or key.lower().startswith(CLOUDEVENT_PREFIX)
    ]
    names = {key.lower() for key, _ in headers}
    if b"inference-header-content-length" in names and b"content-type" not in names:
        headers.append((b"content-type", BINARY_TYPE.encode()))
    return dict(message, headers=headers)


async def _discard_body(receive) -> None:
    """Read the request body to its end, keeping none of it (the guard has checked its size)."""
    more = True
    while more:
        message = await receive()
        more = message["type"] == "http.request" and message.get("more_body", False)


def _replay(messages):
    pending = list(messages)

    async def receive():
        return pending.pop(0) if pending else {"type": "http.disconnect"}

    return receive


def error(status: int, message: str, headers: dict | None = None) -> JSONResponse:
    return JSONResponse(status_code=status, content={"error": message}, headers=headers)


async def _validation_error(request, exc: RequestValidationError) -> JSONResponse:
    problems = exc.errors()
    broken_json = [problem for problem in problems if problem.get("type") == "json_invalid"]
    if broken_json:
        reason = broken_json[0].get("ctx", {}).get("error", "")
        message = f"request body is not valid JSON: {reason}".rstrip(": ")
        if request.scope.get(SENT_AS):
            message += _binary_hint(request.scope[SENT_AS])
        return error(400, message)
    return error(400, "invalid request body: " + (describe_problems(problems, skip=1) or str(exc)))


async def _repository_disabled(_, exc: RepositoryDisabled) -> JSONResponse:
    return error(403, str(exc))


async def _http_error(request, exc: StarletteHTTPException) -> JSONResponse:
    message = str(exc.detail)
    if exc.status_code == 400 and request.scope.get(SENT_AS):  # FastAPI could not even decode it as text
        message = "request body is not valid JSON" + _binary_hint(request.scope[SENT_AS])
    return JSONResponse(status_code=exc.status_code, content={"error": message}, headers=exc.headers)


def _binary_hint(sent_as: str) -> str:
    return (
        f" (it came with {sent_as}, read as JSON; a body in the binary tensor extension needs the "
        "Inference-Header-Content-Length header)"
    )


def install(app: FastAPI, max_body_bytes: int, request_queue: RequestQueue) -> None:
    """Add the guard middleware and JSON error handlers to kserve's app (before it starts)."""
    app.add_middleware(RequestGuard, max_body_bytes=max_body_bytes, request_queue=request_queue)
    app.add_exception_handler(RequestValidationError, _validation_error)
    app.add_exception_handler(StarletteHTTPException, _http_error)
    app.add_exception_handler(RepositoryDisabled, _repository_disabled)
