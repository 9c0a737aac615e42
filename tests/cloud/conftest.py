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


@pytest.fixture(scope="session")
def tiny_packages(tmp_path_factory):
    """A two-parameter-types pipeline compiled for both targets, as the real one is: the
    kubeflow package carries the W&B secret reference (kfp-kubernetes platform spec), the vertex
    one does not. Compiling it takes a second, the real pipeline much longer."""
    from kfp import compiler, dsl, kubernetes

    @dsl.component(base_image="python:3.11-slim")
    def echo(source: str, epochs: int, learning_rate: float, apply: bool) -> str:
        return f"{source} {epochs} {learning_rate} {apply}"

    def build(target: str):
        @dsl.pipeline(name="textclf-train")
        def tiny(source: str = "sample:10", epochs: int = 1, learning_rate: float = 1e-4, apply: bool = False, wandb_project: str = "textclf"):
            task = echo(source=source, epochs=epochs, learning_rate=learning_rate, apply=apply)
            if target == "kubeflow":
                kubernetes.use_secret_as_env(task, secret_name="wandb", secret_key_to_env={"api-key": "WANDB_API_KEY"}, optional=True)

        return tiny

    out = tmp_path_factory.mktemp("packages")
    packages = {}
    for target in ("kubeflow", "vertex"):
        packages[target] = str(out / f"pipeline-{target}.yaml")
        compiler.Compiler().compile(build(target), packages[target])
    return packages
