"""Fixtures for the cloud tests: real Cloud Storage and S3 emulators on loopback."""

import uuid
from collections.abc import Callable
from dataclasses import dataclass

import pytest

from bench.net import free_port


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
def s3_emulator_url():
    """moto's S3 server (in memory, the real S3 REST API) on a free loopback port, for the whole session."""
    from moto.server import ThreadedMotoServer

    port = free_port()
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=port, verbose=False)
    server.start()
    yield f"http://127.0.0.1:{port}"
    server.stop()


@pytest.fixture
def s3_client(s3_emulator_url, monkeypatch):
    """boto3's S3 client on the emulator, with the AWS SDKs' own variables pointing every client there
    (``AWS_ENDPOINT_URL_S3``: s3fs reads it through botocore, as it would for MinIO)."""
    import boto3

    for name, value in {
        "AWS_ENDPOINT_URL_S3": s3_emulator_url,
        "AWS_ACCESS_KEY_ID": "testing",
        "AWS_SECRET_ACCESS_KEY": "testing",
        "AWS_DEFAULT_REGION": "us-east-1",
    }.items():
        monkeypatch.setenv(name, value)
    for name in ("AWS_PROFILE", "AWS_SESSION_TOKEN"):
        monkeypatch.delenv(name, raising=False)
    return boto3.client("s3")


@pytest.fixture
def s3_bucket(s3_client) -> str:
    """A fresh bucket on the S3 emulator; its name."""
    name = f"test-{uuid.uuid4().hex[:12]}"
    s3_client.create_bucket(Bucket=name)
    return name


@dataclass
class Bucket:
    """A fresh bucket on one store, seen through the store's own client (not the storage module)."""

    uri: str  # gs://name or s3://name
    put: Callable[[str, bytes], None]  # writes an object
    names: Callable[[], list[str]]  # every object's name, sorted


@pytest.fixture(params=["gs", "s3"])
def bucket(request) -> Bucket:
    """The same test on Cloud Storage (gcp-storage-emulator, google-cloud-storage) and S3 (moto, boto3)."""
    if request.param == "gs":
        gcs = request.getfixturevalue("gcs_bucket")
        return Bucket(
            f"gs://{gcs.name}",
            lambda key, data: gcs.blob(key).upload_from_string(data),
            lambda: sorted(b.name for b in gcs.list_blobs()),
        )
    client, name = request.getfixturevalue("s3_client"), request.getfixturevalue("s3_bucket")
    return Bucket(
        f"s3://{name}",
        lambda key, data: client.put_object(Bucket=name, Key=key, Body=data),
        lambda: sorted(o["Key"] for o in client.list_objects_v2(Bucket=name).get("Contents", [])),
    )


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
        def tiny(
            source: str = "sample:10",
            epochs: int = 1,
            learning_rate: float = 1e-4,
            apply: bool = False,
            wandb_project: str = "textclf",
        ):
            task = echo(source=source, epochs=epochs, learning_rate=learning_rate, apply=apply)
            if target == "kubeflow":
                kubernetes.use_secret_as_env(
                    task, secret_name="wandb", secret_key_to_env={"api-key": "WANDB_API_KEY"}, optional=True
                )

        return tiny

    out = tmp_path_factory.mktemp("packages")
    packages = {}
    for target in ("kubeflow", "vertex"):
        packages[target] = str(out / f"pipeline-{target}.yaml")
        compiler.Compiler().compile(build(target), packages[target])
    return packages
