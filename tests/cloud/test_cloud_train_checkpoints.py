"""Training whose data, model and checkpoints are on Cloud Storage, as a TrainJob's pods run it.

``python -m textclf.train`` (its ``main``, in this process) reads the tokenized splits from
``gs://``, writes its resume points to the model's ``gs://...checkpoints`` prefix, is killed in
the middle of an epoch, is started again, resumes from Cloud Storage and uploads the model.
The bucket is a real Cloud Storage emulator (gcp-storage-emulator) on loopback.
"""

import json

import pytest
import torch

from textclf.platform import storage
from textclf.train import TrainSettings, loop, train
from textclf.train.__main__ import main
from textclf.train.launch import settings_arguments

LABELS = {"labels": ["negative", "positive"]}


class Preempted(Exception):
    pass


@pytest.fixture(scope="module")
def tokenized(sample_parquet, tiny_model_dir, tmp_path_factory):
    from textclf.tokenize import TokenizeSettings, tokenize

    out = tmp_path_factory.mktemp("tokenized")
    tokenize(sample_parquet[0], str(out), TokenizeSettings(base_model=tiny_model_dir, max_length=64))
    return str(out)


def weights(model_dir: str) -> dict:
    from safetensors.torch import load_file

    return load_file(f"{model_dir}/model.safetensors")


def test_a_run_killed_mid_epoch_resumes_from_cloud_storage_with_the_same_weights(
    tokenized, tiny_model_dir, gcs_bucket, tmp_path, monkeypatch
):
    settings = TrainSettings(
        base_model=tiny_model_dir,
        epochs=1,
        batch_size=16,
        learning_rate=1e-3,
        checkpoint_every_steps=3,
        dataloader_workers=0,
    )
    train(tokenized, str(tmp_path / "whole"), settings, LABELS)

    root = f"gs://{gcs_bucket.name}/root"
    storage.upload(tokenized, f"{root}/tokenized")
    argv = [
        "--tokenized",
        f"{root}/tokenized",
        "--output",
        f"{root}/model",
        "--metadata",
        json.dumps(LABELS),
        *settings_arguments(settings),
        "--mode",
        "disabled",
    ]
    real_step = loop.optimizer_step

    def step_then_die(run):
        real_step(run)
        if run.state["step"] == 8:
            raise Preempted("node preempted")

    monkeypatch.setattr(loop, "optimizer_step", step_then_die)
    with pytest.raises(Preempted):
        main(argv)
    names = {blob.name for blob in gcs_bucket.list_blobs(prefix="root/")}
    assert "root/model.checkpoints/last.pt" in names and not any(n.startswith("root/model/") for n in names)
    saved = torch.load(
        storage.localize(f"{root}/model.checkpoints/last.pt", str(tmp_path / "saved")), weights_only=True
    )
    assert (saved["state"]["step"], saved["state"]["batch"]) == (6, 6)

    monkeypatch.setattr(loop, "optimizer_step", real_step)
    main(argv)
    names = {blob.name for blob in gcs_bucket.list_blobs(prefix="root/")}
    assert not any(n.startswith("root/model.checkpoints/") for n in names), (
        "checkpoints are deleted once the model is saved"
    )
    resumed = storage.localize(f"{root}/model", str(tmp_path / "downloaded"))
    expected, got = weights(str(tmp_path / "whole")), weights(resumed)
    assert all(torch.equal(expected[name], got[name]) for name in expected)
    assert json.loads((tmp_path / "downloaded" / "model" / "training.json").read_text())["processes"] == 1
