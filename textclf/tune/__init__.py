"""Hyper-parameter tuning of ``TrainSettings``: the search space (``space``), one trial (``trial``),
Optuna on one machine (``study``), Katib (``katib``) and Vertex AI (``vertex``) in the cloud, and the
report (``report``). No kfp here: the tune steps in ``components/tune.py`` call these."""
