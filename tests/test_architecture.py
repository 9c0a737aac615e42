"""The layering of docs/architecture.md, and settings declared once, checked on the code itself."""

import ast
import re
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


def imported_modules(package: str) -> dict[str, set[str]]:
    """Top-level modules each file of ``package`` imports (also inside functions)."""
    found = {}
    for path in (ROOT / package).rglob("*.py"):
        names = set()
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.Import):
                names |= {alias.name.split(".")[0] for alias in node.names}
            elif isinstance(node, ast.ImportFrom) and node.module and not node.level:
                names.add(node.module.split(".")[0])
        found[str(path.relative_to(ROOT))] = names
    return found


@pytest.mark.parametrize(
    "package, forbidden",
    [
        ("textclf", {"kfp", "kserve", "components", "pipelines", "serving"}),
        ("serving", {"kfp", "components", "pipelines"}),
        ("components", {"serving", "pipelines", "kserve"}),
    ],
)
def test_layers_import_only_downwards(package, forbidden):
    offenders = {
        path: sorted(names & forbidden) for path, names in imported_modules(package).items() if names & forbidden
    }
    assert not offenders


STORAGE_MODULE = "textclf/platform/storage.py"
STORE_CLIENTS = {"fsspec", "gcsfs", "s3fs", "adlfs", "boto3", "botocore", "google.cloud.storage"}
# Harnesses that set up the stores they measure the storage module against, as the tests do.
STORE_HARNESSES = {"bench/storage.py"}
STORE_SCHEME = re.compile(r"^(gs|gcs|s3|s3a|abfs|abfss|az|adl|file|minio)://", re.IGNORECASE)


def _docstrings(tree: ast.AST) -> set[int]:
    found = set()
    for node in ast.walk(tree):
        if isinstance(node, (ast.Module, ast.ClassDef, ast.FunctionDef, ast.AsyncFunctionDef)) and node.body:
            first = node.body[0]
            if isinstance(first, ast.Expr) and isinstance(first.value, ast.Constant):
                found.add(id(first.value))
    return found


def scheme_knowledge(path: Path) -> list[str]:
    """What in ``path`` knows about storage URLs: a store client imported, or a string (not a docstring)
    that starts with a store's scheme, as ``uri.startswith("gs://")`` or ``f"gs://{bucket}"`` have."""
    tree = ast.parse(path.read_text())
    docstrings, found = _docstrings(tree), []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found += [
                f"line {node.lineno}: import {a.name}"
                for a in node.names
                if a.name.split(".")[0] in STORE_CLIENTS or a.name.startswith("google.cloud.storage")
            ]
        elif isinstance(node, ast.ImportFrom) and node.module and not node.level:
            names = {node.module.split(".")[0], node.module} | {f"{node.module}.{a.name}" for a in node.names}
            found += [f"line {node.lineno}: from {node.module} import" for _ in [1] if names & STORE_CLIENTS]
        elif (
            isinstance(node, ast.Constant)
            and isinstance(node.value, str)
            and id(node) not in docstrings
            and STORE_SCHEME.match(node.value)
        ):
            found.append(f"line {node.lineno}: {node.value[:40]!r}")
    return found


def test_only_the_storage_module_knows_storage_schemes():
    """issue 21: one storage layer. Help texts and docstrings may name gs:// as an example; code may not
    test or build a store's URL, nor reach a store but through textclf.platform.storage."""
    offenders = {}
    for package in ("textclf", "serving", "components", "pipelines", "bench"):
        for path in sorted((ROOT / package).rglob("*.py")):
            name = path.relative_to(ROOT).as_posix()
            if name != STORAGE_MODULE and name not in STORE_HARNESSES and scheme_knowledge(path):
                offenders[name] = scheme_knowledge(path)
    assert not offenders


def test_the_scheme_check_finds_what_it_looks_for(tmp_path):
    sample = tmp_path / "sample.py"
    sample.write_text(
        '"""Reads gs:// or s3:// (a docstring may say so)."""\nimport gcsfs\nfrom google.cloud import storage\n'
        'def f(uri, bucket):\n    """gs://b/x"""\n    help = "a folder or gs:// prefix"\n'
        '    return uri.startswith("gs://") or f"s3://{bucket}"\n'
    )
    assert [line.split(":")[0] for line in scheme_knowledge(sample)] == ["line 2", "line 3", "line 7", "line 7"]


def test_serving_and_the_monitor_run_without_kfp():
    code = (
        "import sys; sys.modules['kfp'] = None; import serving.model, serving.monitor, serving.monitor.app, "
        "serving.rollout.__main__, serving.__main__"
    )
    subprocess.run([sys.executable, "-c", code], cwd=ROOT, check=True, timeout=120)


def test_the_text_encoding_and_its_head_share_are_defined_once():
    sources = {
        path: path.read_text()
        for folder in ("textclf", "components", "pipelines", "serving", "bench")
        for path in (ROOT / folder).rglob("*.py")
    }
    assert [p.name for p, text in sources.items() if "HEAD_SHARE =" in text] == ["encoding.py"]
    assert [p.name for p, text in sources.items() if "class TextEncoder" in text or "def encode(" in text] == [
        "encoding.py"
    ]


def test_each_step_parameter_is_its_settings_field():
    """Names, types, defaults and UI text of every step come from its settings dataclasses."""
    from pipelines.pipeline import STEPS, step_parameters
    from textclf.settings import default_of, help_of, pipeline_fields

    for op in STEPS:
        fields = pipeline_fields(*op.python_func.settings)
        parameters = step_parameters(op)
        assert set(fields) <= set(parameters), op.name
        for name, field in fields.items():
            assert parameters[name].default == default_of(field), f"{op.name}.{name}"
            assert parameters[name].description == help_of(field) != "", f"{op.name}.{name}"


def test_a_forgotten_or_unknown_parameter_fails_at_import():
    from components.step import step
    from textclf.tokenize import TokenizeSettings

    def missing_one(base_model: str, max_length: int):  # truncation forgotten
        pass

    def one_too_many(base_model: str, max_length: int, truncation: str, stride: int):
        pass

    def wrong_type(base_model: str, max_length: str, truncation: str):
        pass

    for func, problem in ((missing_one, "truncation"), (one_too_many, "stride"), (wrong_type, "max_length")):
        with pytest.raises(TypeError, match=problem):
            step(TokenizeSettings)(func)


def test_the_pipeline_parameters_are_the_steps_parameters_with_the_same_defaults_and_text():
    from pipelines.pipeline import STEPS, build_pipeline, offered_parameters

    pipeline_inputs = build_pipeline().pipeline_spec.root.input_definitions.parameters
    step_inputs = {name: spec for op in STEPS for name, spec in offered_parameters(op, "local").items()}
    assert set(pipeline_inputs) == set(step_inputs)
    for name, spec in step_inputs.items():
        assert pipeline_inputs[name].description == spec.description
        assert pipeline_inputs[name].default_value.WhichOneof("kind") is not None


def test_one_code_path_classifies_text():
    """Forward passes that classify, ONNX Runtime and loading a classifier live in textclf/inference
    alone; the exceptions are what is not classification: fine-tuning (train/model.py loads the base
    model, train/loop.py's training step takes the loss of its logits) and the explainer's gradients
    (explain.py runs the engine's fp32 model on embeddings)."""
    allowed = {
        "textclf/train/model.py": {"AutoModelForSequenceClassification"},
        "textclf/explain.py": {".logits"},
        "textclf/train/loop.py": {".logits", "model(input_ids"},
    }
    found = {}
    for folder in ("textclf", "serving", "components", "pipelines"):
        for path in (ROOT / folder).rglob("*.py"):
            name = str(path.relative_to(ROOT))
            if name.startswith("textclf/inference/"):
                continue
            text = path.read_text()
            used = {
                word
                for word in ("AutoModelForSequenceClassification", "onnxruntime", "model(input_ids")
                if word in text
            } | ({".logits"} if re.search(r"\)\.logits\b", text) else set())
            if used - allowed.get(name, set()):
                found[name] = sorted(used - allowed.get(name, set()))
    assert not found


# The ML code of the core package, and the platform clients it must not import (docs/architecture.md,
# "Platform apart from ML"). It reaches the platforms only through these interfaces: textclf.tracking
# (W&B, the Secret Manager), the storage module (textclf.storage; textclf.platform.storage once it
# moves there), and the training launcher textclf.train.launch (the Trainer client, Vertex's tables).
ML_MODULES = (
    "textclf/data",
    "textclf/encoding.py",
    "textclf/tokenize.py",
    "textclf/ingest.py",
    "textclf/datacard.py",
    "textclf/sample_data.py",
    "textclf/train",
    "textclf/evaluate.py",
    "textclf/inference",
    "textclf/optimize.py",
    "textclf/behaviour",
    "textclf/gate.py",
    "textclf/profile.py",
    "textclf/drift.py",
    "textclf/explain.py",
    "textclf/probe.py",
    "textclf/tune",
)
PLATFORM_INTERFACES = {
    "textclf/train/launch.py": "the training launcher",
    "textclf/tune/katib.py": "tune's Katib backend",
    "textclf/tune/vertex.py": "tune's Vertex backend",
}
PLATFORM_CLIENTS = (
    "kubernetes",
    "google.cloud",
    "google.auth",
    "wandb",
    "kubeflow",
    "kubeflow_katib_api",
    "kfp",
    "textclf.platform",
)
ALLOWED_PLATFORM_MODULES = ("textclf.platform.storage",)


def imported_names(path: Path) -> set[str]:
    """Dotted names a file imports (also inside functions): ``from a.b import c`` is ``a.b.c``."""
    names = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            names |= {alias.name for alias in node.names}
        elif isinstance(node, ast.ImportFrom) and node.module and not node.level:
            names |= {f"{node.module}.{alias.name}" for alias in node.names}
    return names


def platform_imports(names: set[str]) -> list[str]:
    """The names among ``names`` that are platform clients (and not an allowed interface)."""

    def within(name: str, prefixes) -> bool:
        return any(name == prefix or name.startswith(prefix + ".") for prefix in prefixes)

    return sorted(
        name for name in names if within(name, PLATFORM_CLIENTS) and not within(name, ALLOWED_PLATFORM_MODULES)
    )


def test_ml_modules_reach_platform_clients_only_through_their_interfaces():
    files = [
        path
        for entry in ML_MODULES
        for path in ([ROOT / entry] if entry.endswith(".py") else (ROOT / entry).rglob("*.py"))
    ]
    assert len(files) > 40
    offenders = {}
    for path in files:
        name = str(path.relative_to(ROOT))
        found = platform_imports(imported_names(path))
        if found and name not in PLATFORM_INTERFACES:
            offenders[name] = found
    assert not offenders


def test_the_platform_rule_sees_a_direct_client_import(tmp_path):
    """The check above cannot pass vacuously: it flags the imports a forbidden module would make."""
    module = tmp_path / "bad.py"
    module.write_text(
        "import wandb\nfrom kubernetes import client\ndef f():\n    from textclf.platform.trainjob import run\n"
        "from textclf.platform import storage\nfrom google.cloud import aiplatform\n"
    )
    assert platform_imports(imported_names(module)) == [
        "google.cloud.aiplatform",
        "kubernetes.client",
        "textclf.platform.trainjob.run",
        "wandb",
    ]
