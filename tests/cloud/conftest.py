"""Fixtures for the cloud tests: a real Cloud Storage emulator on loopback."""

import socket
import uuid

import pytest


def free_port() -> int:
    """A TCP port on 127.0.0.1 that nothing listens on right now."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@pytest.fixture(scope="session")
def gcs_emulator_url():
    """``gcp-storage-emulator`` (in memory) on a free loopback port, for the whole session.

    It speaks the GCS JSON API that ``google-cloud-storage`` uses; it ignores generation
    preconditions, so no test relies on them.
    """
    from gcp_storage_emulator.server import create_server

    port = free_port()
    server = create_server("127.0.0.1", port, in_memory=True)
    server.start()
    yield f"http://127.0.0.1:{port}"
    server.stop()


@pytest.fixture
def gcs_bucket(gcs_emulator_url, monkeypatch):
    """A fresh bucket in the emulator, with ``STORAGE_EMULATOR_HOST`` pointing the client at it."""
    from google.cloud import storage

    monkeypatch.setenv("STORAGE_EMULATOR_HOST", gcs_emulator_url)
    monkeypatch.setenv("GOOGLE_CLOUD_PROJECT", "test-project")
    return storage.Client().create_bucket(f"test-{uuid.uuid4().hex[:12]}")
