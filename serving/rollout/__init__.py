"""``python -m serving.rollout``: the rollout commands and the canary analysis.

The operations themselves (apply, status, promote, rollback, wait) are in the core package,
``textclf.rollout``, which the pipeline's deploy step uses too. Imports neither torch nor kserve.
"""
