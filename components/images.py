"""The container images the pipeline's steps run in: named in one place.

``make images`` builds and pushes all three with the same tag (the git sha), and the compiled
pipeline refers to them through these names. Override with environment variables at compile time:
``TEXTCLF_IMAGE_REGISTRY`` (e.g. ``europe-docker.pkg.dev/my-project/textclf``) and
``TEXTCLF_IMAGE_TAG``.
"""

from __future__ import annotations

import functools
import os

REGISTRY = os.environ.get("TEXTCLF_IMAGE_REGISTRY", "us-docker.pkg.dev/textclf-project/textclf")
TAG = os.environ.get("TEXTCLF_IMAGE_TAG", "latest")


def image(name: str) -> str:
    """Full reference of one of our images: ``components``, ``trainer`` or ``server``."""
    return f"{REGISTRY}/textclf-{name}:{TAG}"


COMPONENT_IMAGE = image("components")  # CPU: ingest, tokenize, evaluate, gate, deploy
TRAINER_IMAGE = image("trainer")  # CUDA: train
SERVER_IMAGE = image("server")  # KServe predictor


def _step_decorator(base_image: str):
    # kfp.dsl.component is not defined inside a running task (kfp sets _KFP_RUNTIME=true), and our
    # thin wrappers import their own module there, so take the decorator from its module directly.
    from kfp.dsl.component_decorator import component

    # The images carry kfp and this project; installing kfp at task start would only cost time.
    return functools.partial(component, base_image=base_image, install_kfp_package=False)


cpu_step = _step_decorator(COMPONENT_IMAGE)  # @cpu_step on a step's thin kfp wrapper
gpu_step = _step_decorator(TRAINER_IMAGE)  # @gpu_step on the train step's wrapper
