"""HTTP guards and metrics around kserve's FastAPI app.

kserve reads any body in full and answers some errors in FastAPI's own shapes; this module adds,
as a pure ASGI middleware: 415 for a non-JSON inference request, 413 for a body over the limit
(decided from Content-Length before a byte of it is read; a chunked body is read only up to the
limit), request counters by endpoint and status, an in-flight gauge; and JSON ``{"error": ...}``
bodies for FastAPI's validation errors and Starlette's 404/405.
"""

from __future__ import annotations

import re

from fastapi import FastAPI
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from prometheus_client import Counter, Gauge
from starlette.exceptions import HTTPException as StarletteHTTPException

REQUESTS = Counter("textclf_http_requests", "HTTP requests by endpoint and status code", ["endpoint", "code"])
ERRORS = Counter("textclf_http_errors", "HTTP responses with status >= 400 by endpoint and status code",
                 ["endpoint", "code"])
IN_FLIGHT = Gauge("textclf_http_requests_in_flight", "HTTP requests being handled now")

# A fixed set of endpoint labels, so that arbitrary paths cannot grow the metrics without bound.
_ENDPOINTS = (
    ("v1_predict", re.compile(r"^/v1/models/[^/]+:predict$")),
    ("v1_explain", re.compile(r"^/v1/models/[^/]+:explain$")),
    ("v2_infer", re.compile(r"^/v2/models/[^/]+(/versions/[^/]+)?/infer$")),
    ("health", re.compile(r"^/$|^/v2/health/|^/v1/models/[^/:]+$|^/v2/models/[^/]+(/versions/[^/]+)?/ready$")),
    ("metrics", re.compile(r"^/metrics$")),
    ("metadata", re.compile(r"^/v1/models$|^/v2(/models(/[^/]+(/versions/[^/]+)?)?)?$")),
)
INFERENCE_ENDPOINTS = frozenset({"v1_predict", "v1_explain", "v2_infer"})
JSON_TYPES = frozenset({"application/json", "application/cloudevents+json"})


def endpoint_of(path: str) -> str:
    for name, pattern in _ENDPOINTS:
        if pattern.search(path):
            return name
    return "other"


class RequestGuard:
    """ASGI middleware: body limit, content type, counters. See the module docstring."""

    def __init__(self, app, max_body_bytes: int):
        self.app = app
        self.max_body_bytes = max_body_bytes

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http":
            return await self.app(scope, receive, send)
        endpoint = endpoint_of(scope["path"])
        status = {"code": 500}  # if the app dies before answering, uvicorn sends a 500

        async def counting_send(message):
            if message["type"] == "http.response.start":
                status["code"] = message["status"]
            await send(message)

        IN_FLIGHT.inc()
        try:
            if scope["method"] == "POST" and endpoint in INFERENCE_ENDPOINTS:
                rejection, receive = await self._check_body(scope, receive)
                if rejection is not None:
                    return await rejection(scope, receive, counting_send)
            await self.app(scope, receive, counting_send)
        finally:
            IN_FLIGHT.dec()
            code = str(status["code"])
            REQUESTS.labels(endpoint, code).inc()
            if status["code"] >= 400:
                ERRORS.labels(endpoint, code).inc()

    async def _check_body(self, scope, receive):
        """(an error response or None, the receive callable the app should use)."""
        headers = {key.decode("latin-1"): value.decode("latin-1") for key, value in scope["headers"]}
        content_type = headers.get("content-type", "").split(";")[0].strip().lower()
        if content_type not in JSON_TYPES:
            return error(415, f"Content-Type must be application/json, got {content_type or 'none'!r}"), receive
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


def _replay(messages):
    pending = list(messages)

    async def receive():
        return pending.pop(0) if pending else {"type": "http.disconnect"}

    return receive


def error(status: int, message: str) -> JSONResponse:
    return JSONResponse(status_code=status, content={"error": message})


async def _validation_error(_, exc: RequestValidationError) -> JSONResponse:
    problems = exc.errors()
    broken_json = [problem for problem in problems if problem.get("type") == "json_invalid"]
    if broken_json:
        reason = broken_json[0].get("ctx", {}).get("error", "")
        return error(400, f"request body is not valid JSON: {reason}".rstrip(": "))
    # V2's body is declared as Union[InferenceRequest, bytes]; the bytes branch only adds noise.
    described = [
        f"{'.'.join(str(part) for part in problem['loc'][1:] if part != 'InferenceRequest')}: {problem['msg']}"
        for problem in problems
        if tuple(problem.get("loc", ()))[1:2] != ("bytes",)
    ]
    return error(400, "invalid request body: " + "; ".join(described or [str(exc)]))


async def _http_error(_, exc: StarletteHTTPException) -> JSONResponse:
    return JSONResponse(status_code=exc.status_code, content={"error": str(exc.detail)}, headers=exc.headers)


def install(app: FastAPI, max_body_bytes: int) -> None:
    """Add the guard middleware and JSON error handlers to kserve's app (before it starts)."""
    app.add_middleware(RequestGuard, max_body_bytes=max_body_bytes)
    app.add_exception_handler(RequestValidationError, _validation_error)
    app.add_exception_handler(StarletteHTTPException, _http_error)
