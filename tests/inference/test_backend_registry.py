"""A serving backend is one entry of ``textclf.inference.BACKENDS``: registered there and nowhere else, a
new backend is a candidate of the optimize step, its artifact is built beside what it requires, and the
engine (server, evaluate, deploy's --backend check) loads it by name."""

import shutil
from pathlib import Path

import numpy as np
import pytest

from textclf.inference import BACKENDS, InferenceSettings, load_engine
from textclf.inference.backends import OnnxBackend, OnnxFp32, backend_kind
from textclf.optimize import OptimizeSettings, build_artifacts


class OnnxCopy(OnnxFp32):
    """A backend added the way CONTRIBUTING.md says: its artifact is built from the fp32 ONNX export."""

    name = "onnx-copy"
    artifact = "onnx/model-copy.onnx"
    requires = ("onnx",)

    def build(self, model_dir: Path) -> None:
        shutil.copyfile(model_dir / OnnxFp32.artifact, model_dir / self.artifact)

    def load(self, model_dir: Path, threads: int):
        return OnnxBackend(self.artifact_path(model_dir), threads)


@pytest.fixture
def with_onnx_copy(monkeypatch):
    monkeypatch.setitem(BACKENDS, OnnxCopy.name, OnnxCopy())


def test_a_registered_backend_is_built_measured_by_name_and_served(with_onnx_copy, decisive_model_dir, tmp_path):
    assert "onnx-copy" in OptimizeSettings().candidates()
    assert "onnx-copy" in OptimizeSettings(candidate_backends="onnx-copy").candidates()
    model_dir = tmp_path / "model"
    shutil.copytree(decisive_model_dir, model_dir)
    results = build_artifacts(model_dir, ["onnx-copy"])
    assert set(results) == {"onnx", "onnx-copy"}  # what it requires is built first
    assert (model_dir / "onnx" / "model-copy.onnx").is_file()
    texts = ["a fine film", "awful, just awful", "it was ok I guess"]
    served = load_engine(model_dir, InferenceSettings(backend="onnx-copy"))
    reference = load_engine(model_dir, InferenceSettings(backend="onnx"))
    assert served.name == "onnx-copy"
    np.testing.assert_allclose(served.probabilities(texts), reference.probabilities(texts), atol=1e-6)
    assert backend_kind("onnx-copy").name == "onnx-copy"


def test_without_the_entry_the_name_is_refused(decisive_model_dir):
    with pytest.raises(ValueError, match="unknown backend 'onnx-copy'"):
        load_engine(decisive_model_dir, InferenceSettings(backend="onnx-copy"))
