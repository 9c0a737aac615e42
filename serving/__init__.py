"""KServe model server for the text classifier (``python -m serving``).

Kept import-light on purpose: ``serving.rollout`` and ``serving.monitor`` live in this package
too and must not pull in torch or kserve. The server modules import those themselves.
"""
