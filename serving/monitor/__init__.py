"""Drift monitoring in production: KServe logger events in, drift metrics and alerts out.

``python -m serving.monitor serve`` runs the monitor, ``check`` is the scheduled drift check
that can trigger retraining. (A local stand-in for KServe's logger agent, for demos and tests,
is ``python -m bench.logger_agent``.)
See docs/monitoring.md.
"""
