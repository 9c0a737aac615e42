"""A local stand-in for KServe's logger agent, for demos and tests where no cluster runs.

In a cluster, KServe injects an agent container in front of the predictor that forwards each
call and sends its request and response to ``logger.url`` as CloudEvents. This proxy does the
same on loopback, following kserve ``pkg/logger`` (``handler.go``, ``worker.go``): one id per
call (the caller's ``Ce-Id`` header, else a new UUID), the request event sent whatever the
outcome, the response event only for a 200, binary mode, the request's ``Content-Type`` on
both, and the ``inferenceservicename``, ``namespace``, ``component``, ``endpoint`` and
``metadata`` extensions. Unlike the agent, it only logs POSTs (inference calls), not GETs.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime

import httpx
from fastapi import FastAPI, Request
from fastapi.responses import Response

from serving.monitor.events import REQUEST_TYPE, RESPONSE_TYPE

log = logging.getLogger("bench.logger_agent")

# Same bound as kserve's LoggerWorkerQueueSize: events in flight to the monitor at once.
MAX_IN_FLIGHT = 100


@dataclass(frozen=True)
class LoggerTarget:
    """Where events go and the names KServe would stamp on them."""

    url: str
    source: str
    inference_service: str
    namespace: str = "default"
    component: str = "predictor"
    endpoint: str = ""


def binary_event_headers(target: LoggerTarget, event_id: str, event_type: str, content_type: str) -> dict[str, str]:
    """Binary-mode CloudEvent headers as the Go CloudEvents SDK writes them for KServe's logger."""
    return {
        "Ce-Specversion": "1.0",
        "Ce-Id": event_id,
        "Ce-Type": event_type,
        "Ce-Source": target.source,
        "Ce-Time": datetime.now(UTC).isoformat().replace("+00:00", "Z"),
        "Ce-Inferenceservicename": target.inference_service,
        "Ce-Namespace": target.namespace,
        "Ce-Component": target.component,
        "Ce-Endpoint": target.endpoint,
        "Ce-Metadata": "{}",
        "Content-Type": content_type,
    }


def create_agent(upstream: str, target: LoggerTarget) -> FastAPI:
    """A proxy to ``upstream`` (the model server) that logs every POST to ``target``."""
    limit = asyncio.Semaphore(MAX_IN_FLIGHT)
    clients: dict[str, httpx.AsyncClient] = {}
    background: set[asyncio.Task] = set()

    @contextlib.asynccontextmanager
    async def lifespan(_: FastAPI):
        clients["upstream"] = httpx.AsyncClient(base_url=upstream, timeout=120.0)
        clients["logger"] = httpx.AsyncClient(timeout=10.0)
        yield
        await asyncio.gather(*background, return_exceptions=True)
        for client in clients.values():
            await client.aclose()

    app = FastAPI(title="logger agent stand-in", lifespan=lifespan)

    async def send(event_id: str, event_type: str, content_type: str, body: bytes) -> None:
        async with limit:
            try:
                headers = binary_event_headers(target, event_id, event_type, content_type)
                response = await clients["logger"].post(target.url, content=body, headers=headers)
                if response.status_code != 200:
                    log.warning(
                        "logger target answered %d for %s %s: %s",
                        response.status_code,
                        event_type,
                        event_id,
                        response.text[:200],
                    )
            except httpx.HTTPError as err:
                log.error("failed to send %s %s to %s: %s", event_type, event_id, target.url, err)

    def queue(*args) -> None:
        task = asyncio.create_task(send(*args))
        background.add(task)
        task.add_done_callback(background.discard)

    @app.api_route("/{path:path}", methods=["GET", "POST"])
    async def proxy(path: str, request: Request):
        body = await request.body()
        content_type = request.headers.get("content-type", "application/json")
        event_id = request.headers.get("ce-id") or str(uuid.uuid4())
        if request.method == "POST":
            queue(event_id, REQUEST_TYPE, content_type, body)
        upstream_response = await clients["upstream"].request(
            request.method,
            "/" + path,
            params=request.query_params,
            content=body,
            headers={"content-type": content_type},
        )
        if request.method == "POST" and upstream_response.status_code == 200:
            queue(event_id, RESPONSE_TYPE, content_type, upstream_response.content)
        return Response(
            upstream_response.content,
            status_code=upstream_response.status_code,
            media_type=upstream_response.headers.get("content-type"),
        )

    return app


def main(argv: list[str] | None = None) -> None:
    """``python -m bench.logger_agent --upstream URL --log_url URL``: proxy on loopback, events to the monitor."""
    import argparse

    import uvicorn

    parser = argparse.ArgumentParser(prog="python -m bench.logger_agent", description=__doc__)
    parser.add_argument("--upstream", required=True, help="model server base URL, e.g. http://127.0.0.1:8080")
    parser.add_argument("--log_url", required=True, help="where events go (the monitor)")
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8081)
    parser.add_argument("--inference_service", default="textclf")
    parser.add_argument("--namespace", default="default")
    parser.add_argument("--component", default="predictor")
    parser.add_argument("--endpoint", default="")
    args = parser.parse_args(argv)
    target = LoggerTarget(
        url=args.log_url,
        source=f"http://localhost:{args.port}/",
        inference_service=args.inference_service,
        namespace=args.namespace,
        component=args.component,
        endpoint=args.endpoint,
    )
    uvicorn.run(create_agent(args.upstream, target), host=args.host, port=args.port, log_level="warning")


if __name__ == "__main__":
    main()
