"""The one private kserve attribute this project uses (serving/kserve_adapter.py) is still where the
adapter reads it; these tests fail loudly after a kserve upgrade until someone has re-read kserve.

Runs kserve's real ``ModelServer.start`` sequence in-process up to the point where the servers
would run (``asyncio.run`` and the signal handlers are stubbed, nothing binds a port), and checks
the real server's listening sockets.
"""

from __future__ import annotations

import asyncio
import ipaddress
from importlib import metadata

import kserve
import psutil
import pytest

from serving import kserve_adapter
from serving.server import TextServer


def test_kserve_is_the_version_the_adapter_was_reviewed_against():
    installed = metadata.version("kserve")
    assert installed == kserve_adapter.REVIEWED_KSERVE, (
        f"kserve {installed} is not {kserve_adapter.REVIEWED_KSERVE}: re-read the kserve code named in "
        "serving/kserve_adapter.py, adapt the adapter, then bump REVIEWED_KSERVE"
    )


class ReadyModel(kserve.Model):
    def __init__(self):
        super().__init__("ready")
        self.ready = True
        self.max_instances = 1


def test_start_binds_rest_and_grpc_to_the_host(monkeypatch):
    ran = []

    def fake_run(coroutine):  # the servers would run here: record what would run, run nothing
        ran.append(coroutine)
        coroutine.close()

    monkeypatch.setattr(asyncio, "run", fake_run)
    monkeypatch.setattr(TextServer, "register_signal_handler", lambda self: None)
    server = TextServer(host="127.0.0.2", max_body_bytes=1000, max_queued_requests=4, http_port=18080, grpc_port=18081)
    server.start([ReadyModel()])
    for coroutine in server.servers:
        coroutine.close()
    assert len(ran) == 1
    assert server._rest_server.config.host == "127.0.0.2"  # what uvicorn will bind
    assert server.grpc_frontend.address == "127.0.0.2:18081"
    assert len(server.servers) == 2  # REST and gRPC


def test_adapter_fails_loudly_when_kserve_moves_the_rest_server():
    class Elsewhere:
        _rest_server = None

    with pytest.raises(kserve_adapter.KserveChanged, match="re-check serving/kserve_adapter.py"):
        kserve_adapter.bind_rest_server(Elsewhere(), "127.0.0.1")


def ipv4(address: str) -> str:
    """``::ffff:127.0.0.1`` (gRPC's dual-stack socket bound to 127.0.0.1) -> ``127.0.0.1``."""
    ip = ipaddress.ip_address(address)
    return str(ip.ipv4_mapped if ip.version == 6 and ip.ipv4_mapped else ip)


def test_the_running_server_listens_only_on_its_host(server):
    listening = {
        (ipv4(connection.laddr.ip), connection.laddr.port)
        for connection in psutil.Process(server.process.pid).connections(kind="inet")
        if connection.status == psutil.CONN_LISTEN
    }
    assert listening == {("127.0.0.1", server.http_port), ("127.0.0.1", server.grpc_port)}
