"""Drift monitoring in production: KServe logger events in, drift metrics and alerts out.

``python -m serving.monitor serve`` runs the monitor, ``check`` is the scheduled drift check
that can trigger retraining, ``agent`` is a local stand-in for KServe's logger agent.
See docs/monitoring.md.
"""
