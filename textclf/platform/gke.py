"""Names on GKE that the pipeline's pods, TrainJobs and tuning trials rely on.

The GPU pool is a node pool whose nodes carry GKE's accelerator label and the ``nvidia.com/gpu``
taint (``infra/``); a pod lands on it with a node selector on that label and a toleration of that
taint. W&B's key lives in an optional Kubernetes secret, referenced by pods, never copied.
"""

GPU_NODE_LABEL = "cloud.google.com/gke-accelerator"  # GKE's label of a GPU node's accelerator type
GPU_TOLERATION = {"key": "nvidia.com/gpu", "operator": "Exists", "effect": "NoSchedule"}  # the GPU pool's taint
WANDB_SECRET, WANDB_SECRET_KEY = "wandb", "api-key"  # optional: without it W&B runs offline
