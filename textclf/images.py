"""The container images the pipeline's steps run in: named in one place.

``make images`` builds and pushes all three with the same tag (the git sha), and the compiled
pipeline (``components/step.py``) and the deploy step's InferenceService refer to them through
these names. Override with environment variables at compile time:
``TEXTCLF_IMAGE_REGISTRY`` (e.g. ``europe-docker.pkg.dev/my-project/textclf``) and
``TEXTCLF_IMAGE_TAG``. After ``make images`` pushed them, ``build/images.env`` names each by its
digest (``TEXTCLF_<NAME>_IMAGE=REGISTRY/textclf-<name>@sha256:...``, e.g. ``TEXTCLF_SERVER_GPU_IMAGE``):
those win, so a compiled pipeline and the InferenceService it deploys run exactly what was pushed,
whatever later happens to the tag.
"""

from __future__ import annotations

import os

REGISTRY = os.environ.get("TEXTCLF_IMAGE_REGISTRY", "us-docker.pkg.dev/textclf-project/textclf")
TAG = os.environ.get("TEXTCLF_IMAGE_TAG", "latest")


def image(name: str) -> str:
    """Full reference of one of our images: ``components``, ``trainer``, ``server`` or ``server-gpu``:
    ``$TEXTCLF_<NAME>_IMAGE`` (by digest, from ``make images``) when set, else REGISTRY/textclf-NAME:TAG."""
    pinned = os.environ.get(f"TEXTCLF_{name.upper().replace('-', '_')}_IMAGE")
    return pinned or f"{REGISTRY}/textclf-{name}:{TAG}"


COMPONENT_IMAGE = image("components")  # CPU: ingest, tokenize, evaluate, gate, deploy
TRAINER_IMAGE = image("trainer")  # CUDA: train
SERVER_IMAGE = image("server")  # KServe predictor, CPU torch
SERVER_GPU_IMAGE = image("server-gpu")  # the same server with CUDA torch (serving/Dockerfile, VARIANT=gpu)
