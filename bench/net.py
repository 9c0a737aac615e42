"""Loopback helpers shared by the benchmarks and the tests that start servers."""

from __future__ import annotations

import socket
import sys


def free_port() -> int:
    """A TCP port on 127.0.0.1 that nothing listens on right now."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def serving_args(
    model_dir: str, port: int, *flags: str, model_name: str = "bench", grpc_port: int | None = None
) -> list[str]:
    """``serving``'s module arguments on 127.0.0.1:``port`` for ``model_dir`` as ``model_name``; gRPC on
    ``grpc_port``, or off without one."""
    grpc = ["--grpc_port", str(grpc_port)] if grpc_port else ["--enable_grpc", "false"]
    return [
        "serving",
        "--model_dir",
        model_dir,
        "--model_name",
        model_name,
        "--host",
        "127.0.0.1",
        "--http_port",
        str(port),
        *grpc,
        *flags,
    ]


def serving_command(model_dir: str, port: int, *flags: str) -> list[str]:
    """``python -m serving`` on 127.0.0.1:``port`` for ``model_dir`` as model ``bench``, REST only."""
    return [sys.executable, "-m", *serving_args(model_dir, port, *flags)]
