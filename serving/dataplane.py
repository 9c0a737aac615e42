"""kserve's data plane and model repository, made truthful and safe for this server.

Public kserve classes, subclassed through their public methods (``ModelServer.dataplane``,
``ModelServer.model_repository_extension`` and the ``registered_models`` argument are public too):

- readiness tells the truth: ``/v2/health/ready`` and gRPC ServerReady are false unless a model is
  registered and every registered model is ready (kserve answers true with no model at all);
- a request for a model that is not ready gets ModelNotReady (503, gRPC UNAVAILABLE) instead of
  kserve's synchronous ``model.load()`` on the event loop (gRPC ModelInfer did that);
- REST bodies in the binary tensor extension are parsed by :mod:`serving.binary`;
- ``:explain`` answers with the model's headers only (kserve's echoes every request header);
- the model repository extension (load/unload over REST and gRPC) is refused unless the server
  was started with ``--enable_model_repository true``: anyone who reaches the port could
  otherwise unload the model.
"""

from __future__ import annotations

import asyncio

from kserve.errors import ModelNotFound, ModelNotReady
from kserve.model import InferenceVerb
from kserve.model_repository import ModelRepository
from kserve.protocol.dataplane import DataPlane
from kserve.protocol.model_repository_extension import ModelRepositoryExtension

from serving.binary import INFERENCE_HEADER, decode_rest_request


class RepositoryDisabled(Exception):
    """The model repository extension is off (HTTP 403, gRPC PERMISSION_DENIED)."""

    def __init__(self, action: str, model_name: str):
        super().__init__(
            f"cannot {action} model {model_name!r}: the model repository extension is disabled on this "
            "server (start it with --enable_model_repository true, on a cluster-internal port only)"
        )


class TextDataPlane(DataPlane):
    async def ready(self) -> bool:
        models = self.model_registry.get_models()
        if not models:
            return False
        if not all([await self.model_registry.is_model_ready(name) for name in models]):
            return False
        return await super().ready()  # kserve's own check (a transformer's predictor), true here

    async def get_model(self, name: str):
        model = self.get_model_from_registry(name)  # ModelNotFound when unknown
        if not await self.model_registry.is_model_ready(name):
            raise ModelNotReady(name)
        return model

    def decode_inference_request(self, body, headers, model_name):
        if isinstance(body, bytes):  # serving.guards sends only binary-extension bodies this way
            return decode_rest_request(body, headers.get(INFERENCE_HEADER), model_name)
        return super().decode_inference_request(body, headers, model_name)

    async def explain(self, model_name: str, request, headers=None):
        model = await self.get_model(model_name)
        return await model(request, verb=InferenceVerb.EXPLAIN, headers=headers)


class TextModelRepository(ModelRepository):
    """kserve's registry, whose ``load`` brings back a model that ``unload`` took away (kserve's
    ``load`` does nothing), reading its directory again off the event loop."""

    def __init__(self):
        super().__init__()
        self.unloaded = {}

    def unload(self, name: str):
        model = self.get_model(name)
        super().unload(name)  # stops the model: queued requests still get their answers
        self.unloaded[name] = model

    async def load(self, name: str) -> bool:
        if name in self.models:
            return True
        if name not in self.unloaded:
            raise ModelNotFound(name)
        model = self.unloaded.pop(name)
        await asyncio.to_thread(model.load)
        self.update(model)
        return model.ready


class EnabledRepositoryExtension(ModelRepositoryExtension):
    """kserve's extension, with 404 (not 503) for a model this server never had."""

    def __init__(self, registry: TextModelRepository):
        super().__init__(registry)
        self.registry = registry

    async def load(self, model_name: str) -> None:
        if model_name not in self.registry.models and model_name not in self.registry.unloaded:
            raise ModelNotFound(model_name)
        await super().load(model_name)


class DisabledRepositoryExtension(ModelRepositoryExtension):
    async def load(self, model_name: str) -> None:
        raise RepositoryDisabled("load", model_name)

    async def unload(self, model_name: str) -> None:
        raise RepositoryDisabled("unload", model_name)


def repository_extension(registry: TextModelRepository, enabled: bool) -> ModelRepositoryExtension:
    return EnabledRepositoryExtension(registry) if enabled else DisabledRepositoryExtension(registry)
