"""The one place this project reaches into kserve's private parts. Keep it this small.

Everything else in :mod:`serving` uses kserve's public classes, methods and attributes. What is
left has no public extension point in kserve 0.21:

- the REST address: ``RESTServer.__init__`` hard-codes ``uvicorn.Config(host="0.0.0.0")`` and
  ``ModelServer.start`` keeps the RESTServer it builds in the private ``_rest_server``, between
  building it and running it (``setup_event_loop`` is the hook called in between). uvicorn reads
  ``config.host`` only when it binds, so setting it there is enough.

``tests/serving/test_kserve_adapter.py`` fails when kserve is not the version reviewed here, or when
the start sequence no longer leaves ``_rest_server`` where this module reads it: after a kserve
upgrade, re-read ``kserve/model_server.py`` (``ModelServer.start``) and
``kserve/protocol/rest/server.py`` (``RESTServer``), adapt this module, then bump REVIEWED_KSERVE.
"""

from __future__ import annotations

import uvicorn
from kserve import ModelServer
from kserve.protocol.rest.server import RESTServer

REVIEWED_KSERVE = "0.21.0"


class KserveChanged(RuntimeError):
    """kserve no longer looks the way this adapter expects: see the module docstring."""


def bind_rest_server(server: ModelServer, host: str) -> None:
    """Make the REST server that ``server.start`` built listen on ``host`` (call it from
    ``setup_event_loop``, which ``ModelServer.start`` calls before the servers run)."""
    rest = getattr(server, "_rest_server", None)
    config = getattr(rest, "config", None)
    if not isinstance(rest, RESTServer) or not isinstance(config, uvicorn.Config):
        raise KserveChanged(
            f"ModelServer._rest_server is {rest!r}, not a RESTServer with a uvicorn.Config: "
            f"re-check serving/kserve_adapter.py against this kserve"
        )
    config.host = host
