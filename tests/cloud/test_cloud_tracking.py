"""textclf.tracking: real wandb in offline mode (it writes a run folder), no server needed.

The W&B server's public API (the champion's metrics, moving the ``production`` alias) cannot run
here: ``FakeWandb`` stands in for it at the level of ``wandb.Api`` and its artifact objects.
"""

import base64
import json
import logging
import os
import threading
from http.server import BaseHTTPRequestHandler, HTTPServer
from pathlib import Path
from types import SimpleNamespace

import pytest

from tests.cloud import wandb_records
from tests.cloud.conftest import free_port
from textclf import tracking
from textclf.platform import secret_manager, wandb_client


@pytest.fixture
def no_key(monkeypatch):
    """No key anywhere and no mode forced: what a fresh machine or CI looks like."""
    monkeypatch.delenv("WANDB_API_KEY", raising=False)
    monkeypatch.delenv("WANDB_MODE", raising=False)


@pytest.fixture
def model_dir(tmp_path):
    path = tmp_path / "model"
    path.mkdir()
    (path / "config.json").write_text('{"id2label": {"0": "negative", "1": "positive"}}')
    (path / "model.safetensors").write_bytes(b"\0" * 1024)
    return str(path)


def test_settings_reject_bad_values():
    with pytest.raises(ValueError, match="unknown W&B mode 'onlin'"):
        tracking.TrackingSettings(mode="onlin")
    with pytest.raises(ValueError, match="project"):
        tracking.TrackingSettings(wandb_project="")
    assert tracking.TrackingSettings(mode="dryrun").mode == "offline"


def test_mode_resolution(no_key, monkeypatch, caplog):
    assert tracking.resolve_mode(tracking.TrackingSettings()) == "offline"
    with caplog.at_level(logging.WARNING):
        assert tracking.resolve_mode(tracking.TrackingSettings(mode="online")) == "offline"
    assert "no API key" in caplog.text
    monkeypatch.setenv("WANDB_API_KEY", "k" * 40)
    assert tracking.resolve_mode(tracking.TrackingSettings()) == "online"
    assert tracking.resolve_mode(tracking.TrackingSettings(mode="offline")) == "offline"
    monkeypatch.setenv("WANDB_MODE", "disabled")  # the environment's kill switch wins
    assert tracking.resolve_mode(tracking.TrackingSettings(mode="online")) == "disabled"


def test_offline_run_records_config_metrics_matrix_and_model(no_key, tmp_path, model_dir):
    settings = tracking.TrackingSettings(wandb_project="textclf-test", dir=str(tmp_path / "tracking"))
    with tracking.start(
        settings, job_type="train", config={"learning_rate": 5e-5, "epochs": 2}, group="pipeline-run-1"
    ) as run:
        assert run.mode == "offline"
        for step, loss in ((10, 0.69), (20, 0.41)):
            run.log({"train/loss": loss}, step=step)
        run.log({"eval/f1": 0.8}, step=30)
        run.log_confusion_matrix(["negative", "positive"], [[2, 0], [1, 1]])
        run.log_model(model_dir, metadata={"metrics": {"f1": 0.8}})
        run.set_summary({"f1": 0.8})

    run_dir = Path(run.run_dir)
    assert run_dir.parent == tmp_path / "tracking" / "wandb" and run_dir.name.startswith("offline-run-")
    records = wandb_records.read_records(str(run_dir))
    assert json.loads(wandb_records.config(records)["learning_rate"]) == 5e-5
    rows = wandb_records.history(records)
    assert [(r["_step"], r["train/loss"]) for r in rows if "train/loss" in r] == [("10", "0.69"), ("20", "0.41")]
    assert any(r.get("eval/f1") == "0.8" for r in rows)
    (table_path,) = {json.loads(r["confusion_matrix_table/path"]) for r in rows if "confusion_matrix_table/path" in r}
    table = json.loads((run_dir / "files" / table_path).read_text())
    assert table["columns"] == ["Actual", "Predicted", "nPredictions"]
    assert table["data"] == [
        ["negative", "negative", 2],
        ["negative", "positive", 0],
        ["positive", "negative", 1],
        ["positive", "positive", 1],
    ]
    (model,) = [a for a in wandb_records.artifacts(records) if a.type == "model"]
    assert model.name == "textclf-model" and "candidate" in model.aliases
    assert json.loads(model.metadata) == {"metrics": {"f1": 0.8}}
    assert sorted(e.path for e in model.manifest.contents) == ["config.json", "model.safetensors"]


def test_disabled_writes_nothing(no_key, monkeypatch, tmp_path, model_dir):
    monkeypatch.setenv("WANDB_MODE", "disabled")
    monkeypatch.chdir(tmp_path)
    settings = tracking.TrackingSettings(dir=str(tmp_path / "tracking"))
    with tracking.start(settings, job_type="evaluate", config={"a": 1}) as run:
        run.log({"f1": 1.0}, step=0)
        run.log_confusion_matrix(["negative", "positive"], [[1, 0], [0, 1]])
        run.log_model(model_dir)
    tracking.approve(settings, model_dir, {"f1": 1.0})
    assert run.mode == "disabled" and run.run_dir is None
    assert sorted(p.name for p in tmp_path.iterdir()) == ["model"]
    assert tracking.champion_metrics(settings) is None


def test_bad_model_folder_or_matrix_is_refused(no_key, monkeypatch, tmp_path):
    monkeypatch.setenv("WANDB_MODE", "disabled")
    run = tracking.start(tracking.TrackingSettings(), "train")
    with pytest.raises(NotADirectoryError, match="nope"):
        run.log_model(str(tmp_path / "nope"))
    with pytest.raises(ValueError, match="must be 2x2"):
        run.log_confusion_matrix(["negative", "positive"], [[1, 0]])


def test_unreachable_server_falls_back_to_offline(no_key, monkeypatch, tmp_path):
    """A key but no reachable W&B server (a closed loopback port): the step still tracks, offline."""
    monkeypatch.setenv("WANDB_API_KEY", "k" * 40)
    monkeypatch.setenv("WANDB_BASE_URL", f"http://127.0.0.1:{free_port()}")
    monkeypatch.setattr(wandb_client, "INIT_TIMEOUT_S", 3)
    run = tracking.start(tracking.TrackingSettings(dir=str(tmp_path)), job_type="train")
    run.log({"loss": 1.0}, step=0)
    run.finish()
    assert run.mode == "offline"
    assert Path(run.run_dir).name.startswith("offline-run-")


class _FakeSecretManager(BaseHTTPRequestHandler):
    """Stands in for the Secret Manager REST API (cannot run here): ``GET /v1/{name}:access``."""

    secrets = {"projects/p/secrets/wandb-api-key/versions/latest": "s3cr3t-key-from-secret-manager\n"}

    def do_GET(self):
        name = self.path.removeprefix("/v1/").removesuffix(":access")
        if name not in self.secrets:
            self.send_response(404)
            self.end_headers()
            return
        body = json.dumps(
            {"name": name, "payload": {"data": base64.b64encode(self.secrets[name].encode()).decode()}}
        ).encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args):
        pass


def test_api_key_from_secret_manager(no_key, monkeypatch, caplog):
    import google.auth
    from google.auth.credentials import AnonymousCredentials

    server = HTTPServer(("127.0.0.1", 0), _FakeSecretManager)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    monkeypatch.setattr(secret_manager, "SECRET_MANAGER_URL", f"http://127.0.0.1:{server.server_port}")
    monkeypatch.setattr(google.auth, "default", lambda scopes=None: (AnonymousCredentials(), "p"))
    try:
        missing = tracking.TrackingSettings(wandb_api_key_secret="projects/p/secrets/other/versions/1")
        with caplog.at_level(logging.WARNING):
            assert tracking.api_key(missing) == ""
            assert tracking.resolve_mode(missing) == "offline"
        assert "projects/p/secrets/other/versions/1" in caplog.text

        settings = tracking.TrackingSettings(wandb_api_key_secret="projects/p/secrets/wandb-api-key/versions/latest")
        assert tracking.resolve_mode(settings) == "online"
        assert os.environ["WANDB_API_KEY"] == "s3cr3t-key-from-secret-manager"
    finally:
        server.shutdown()
        server.server_close()


class FakeWandb:
    """Stands in for the W&B server behind ``wandb.Api`` (cannot run here), at the public API's
    level as test_champion_metrics has always done: model collections whose versions carry
    metadata and aliases, an alias on at most one version of a collection (W&B moves it to the
    newest holder on ``save()``). Patch it in with ``monkeypatch.setattr(wandb, "Api", fake.Api)``.
    """

    default_entity = "team"

    def __init__(self):
        self.collections: dict[str, list[SimpleNamespace]] = {}
        self.asked: list[tuple] = []
        fake = self

        class Api:
            def __init__(self, api_key=None, timeout=None):
                assert api_key and timeout
                self.default_entity = fake.default_entity

            def artifact_exists(self, name, type=None):  # noqa: A002 - wandb.Api names it so
                fake.asked.append((name, type))
                return fake.resolve(name) is not None

            def artifact(self, name, type=None):  # noqa: A002 - wandb.Api names it so
                return fake.resolve(name)

            def artifacts(self, type_name, name, per_page=50):
                fake.asked.append(("artifacts", type_name, name))
                return list(fake.collections.get(name, []))

        self.Api = Api

    def log(self, collection: str, metadata: dict, aliases=()) -> SimpleNamespace:
        """A version as a run's ``log_artifact`` would leave it."""
        versions = self.collections.setdefault(collection, [])
        version = SimpleNamespace(version=f"v{len(versions)}", metadata=metadata, aliases=[], saves=0)
        version.save = lambda: self._save(collection, version)
        versions.append(version)
        version.aliases.extend(aliases)
        self._save(collection, version)
        version.saves = 0
        return version

    def _save(self, collection: str, saved: SimpleNamespace) -> None:
        saved.saves += 1
        for other in self.collections[collection]:
            if other is not saved:
                other.aliases[:] = [a for a in other.aliases if a not in saved.aliases]

    def resolve(self, ref: str):
        collection, alias = ref.rsplit(":", 1)
        return next((v for v in self.collections.get(collection, []) if alias in v.aliases or alias == v.version), None)


@pytest.fixture
def fake_wandb(monkeypatch):
    import wandb

    fake = FakeWandb()
    monkeypatch.setattr(wandb, "Api", fake.Api)
    return fake


def test_champion_metrics_reads_the_production_alias(no_key, monkeypatch, fake_wandb):
    settings = tracking.TrackingSettings(wandb_project="textclf-test")
    assert tracking.champion_metrics(settings) is None  # offline: no server to ask

    monkeypatch.setenv("WANDB_API_KEY", "k" * 40)
    assert tracking.champion_metrics(settings) is None  # no champion yet
    assert fake_wandb.asked[-1] == ("team/textclf-test/textclf-model:production", "model")

    fake_wandb.log(
        "team/textclf-test/textclf-model", {"metrics": {"f1": 0.91, "accuracy": 0.93}}, aliases=["production"]
    )
    assert tracking.champion_metrics(settings) == {"f1": 0.91, "accuracy": 0.93}


COLLECTION = "team/textclf-test/textclf-model"


def test_production_moves_to_the_version_of_the_promoted_model(no_key, monkeypatch, fake_wandb):
    monkeypatch.setenv("WANDB_API_KEY", "k" * 40)
    settings = tracking.TrackingSettings(wandb_project="textclf-test")
    old = fake_wandb.log(
        COLLECTION, tracking.model_metadata({"f1": 0.80}, "gs://b/run-1/model"), ["approved", "production"]
    )
    new = fake_wandb.log(COLLECTION, tracking.model_metadata({"f1": 0.90}, "gs://b/run-2/model"), ["approved"])
    fake_wandb.log(COLLECTION, tracking.model_metadata({"f1": 0.70}, "gs://b/run-3/model"), ["candidate"])
    assert old.aliases == ["production"]  # "approved" moved to the newest approved version

    line = tracking.set_production_alias(settings, "gs://b/run-2/model")

    assert line == f"W&B: {COLLECTION}:v1 (gs://b/run-2/model) is now production"
    assert fake_wandb.asked[-1] == ("artifacts", "model", COLLECTION)
    assert new.aliases == ["approved", "production"] and old.aliases == []
    assert tracking.champion_metrics(settings) == {"f1": 0.90}  # the gate's champion follows
    tracking.set_production_alias(settings, "gs://b/run-2/model")
    assert new.saves == 1  # already production: nothing saved again


@pytest.mark.parametrize(
    "setup, expected",
    [
        (lambda mp, fake: None, "W&B offline: no production alias set"),
        (lambda mp, fake: mp.setenv("WANDB_MODE", "disabled"), "W&B disabled: no production alias set"),
        (
            lambda mp, fake: mp.setenv("WANDB_API_KEY", "k" * 40),
            "no version of team/textclf-test/textclf-model records model_uri gs://b/unknown",
        ),
        (
            lambda mp, fake: (mp.setenv("WANDB_API_KEY", "k" * 40), mp.setattr(fake, "collections", None)),
            "could not set the production alias (AttributeError",
        ),
    ],
)
def test_no_alias_is_said_and_never_raised(no_key, monkeypatch, fake_wandb, setup, expected):
    setup(monkeypatch, fake_wandb)
    line = tracking.set_production_alias(tracking.TrackingSettings(wandb_project="textclf-test"), "gs://b/unknown")
    assert expected in line


def test_approve_records_the_model_uri(no_key, tmp_path, model_dir):
    settings = tracking.TrackingSettings(wandb_project="textclf-test", dir=str(tmp_path / "tracking"))
    tracking.approve(settings, model_dir, {"f1": 0.9}, model_uri="gs://b/run-2/model")
    [run_dir] = (tmp_path / "tracking" / "wandb").glob("offline-run-*")
    (model,) = [a for a in wandb_records.artifacts(wandb_records.read_records(str(run_dir))) if a.type == "model"]
    assert json.loads(model.metadata) == {"metrics": {"f1": 0.9}, "model_uri": "gs://b/run-2/model"}
    assert "approved" in model.aliases
