"""Checkpoints load with ``weights_only=True``: what training writes comes back whole, a tampered file
with a pickled payload is refused before its payload runs."""

from __future__ import annotations

import pickle
import random

import numpy as np
import pytest
import torch

from textclf.train import checkpoint


class _Payload:
    """What an attacker with write access to the bucket would plant: code run at unpickling."""

    def __init__(self, marker):
        self.marker = marker

    def __reduce__(self):
        return (open, (str(self.marker), "w"))  # creating the file proves the payload ran


def test_the_rng_states_survive_a_weights_only_round_trip(tmp_path):
    store = checkpoint.Checkpoints(tmp_path / "model.checkpoints")
    random.seed(5), np.random.seed(5), torch.manual_seed(5)
    store.save("last.pt", {"ranks": [{"rng": checkpoint.rng_states(), "epoch_loss": 1.5, "epoch_batches": 3}]})
    expected = (random.random(), np.random.rand(3).tolist(), np.random.randn(), torch.rand(3))

    random.seed(6), np.random.seed(6), torch.manual_seed(6)
    loaded = store.load("last.pt", "cpu")
    checkpoint.set_rng_states(loaded["ranks"][0]["rng"])
    assert (random.random(), np.random.rand(3).tolist(), np.random.randn()) == expected[:3]
    assert torch.equal(torch.rand(3), expected[3])
    assert loaded["ranks"][0]["epoch_loss"] == 1.5


def test_a_tampered_checkpoint_is_refused_and_its_payload_never_runs(tmp_path):
    store = checkpoint.Checkpoints(tmp_path / "model.checkpoints")
    store.save("last.pt", {"model": {"weight": torch.ones(2)}})
    marker = tmp_path / "payload-ran"
    saved = torch.load(tmp_path / "model.checkpoints" / "last.pt", weights_only=True)
    saved["state"] = _Payload(marker)
    torch.save(saved, tmp_path / "model.checkpoints" / "last.pt", pickle_module=pickle)

    with pytest.raises(checkpoint.UnsafeCheckpoint, match=r"refusing to load checkpoint .*last\.pt"):
        store.load("last.pt", "cpu")
    assert not marker.exists()
    # The same file through a full unpickler runs the payload: what weights_only=True prevents.
    torch.load(tmp_path / "model.checkpoints" / "last.pt", weights_only=False)
    assert marker.exists()
