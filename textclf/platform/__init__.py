"""The clients of outside platforms: object storage, and the cluster, cloud and tracking
services the pipeline uses (Kubernetes, Kubeflow Trainer, GKE, Vertex AI, W&B, Secret Manager).

The ML modules of the core package (data, training, evaluation, drift...) reach those platforms
only through the interfaces here, so a new store or service is added in one place and the ML code
stays testable without it. ``textclf.platform.storage`` is the one module that reads and writes
URIs (local paths, ``gs://``, ``s3://`` and every other fsspec store).
"""
