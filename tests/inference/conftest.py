"""Fixtures of the inference engine's tests: the decisive tiny model with every backend's artifact built."""

import shutil

import pytest

from tests.pipeline.conftest import tokenized_dir  # noqa: F401 - shared fixture (the decisive model's tokenizer too)
from tests.serving.conftest import decisive_model_dir  # noqa: F401 - shared fixture


@pytest.fixture(scope="session")
def built_model_dir(decisive_model_dir, tmp_path_factory):  # noqa: F811 - the fixture imported above, by name
    """The decisive tiny model (tests/serving/conftest.py) plus the artifacts of every backend this CPU
    runs, built as the optimize step builds them (no serving.json: nothing was measured)."""
    from textclf.inference import BACKENDS
    from textclf.optimize import build_artifacts

    out = tmp_path_factory.mktemp("built") / "model"
    shutil.copytree(decisive_model_dir, out)
    results = build_artifacts(out, list(BACKENDS))
    assert not [name for name, result in results.items() if "error" in result], results
    return out
