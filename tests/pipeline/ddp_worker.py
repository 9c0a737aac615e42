"""One rank of the data-parallel test (started by torchrun from test_train_distributed.py).

It runs the real command line, ``python -m textclf.train``'s ``main``, with four observers put
in first: the run object (to save this rank's final weights), each checkpoint written, the model
directory written, and every metric logged to W&B (with its step). Each rank writes what it saw
to ``$DDP_TEST_OUT/rank<N>.json`` and its weights to ``$DDP_TEST_OUT/weights-rank<N>.pt``.
"""

import json
import os
import sys
from pathlib import Path

import torch

from textclf import tracking
from textclf.train import checkpoint, loop
from textclf.train.__main__ import main

OUT = Path(os.environ["DDP_TEST_OUT"])
RANK = int(os.environ["RANK"])
seen = {"writes": [], "metrics": [], "tracking_runs": 0}
runs = []


def observe(owner, name, before):
    real = getattr(owner, name)

    def wrapper(*args, **kwargs):
        before(*args, **kwargs)
        result = real(*args, **kwargs)
        if name == "start_run":
            runs.append(result)
        return result

    setattr(owner, name, wrapper)


observe(loop, "start_run", lambda *a, **k: None)
observe(checkpoint.Checkpoints, "save", lambda self, file, obj: seen["writes"].append(file))
observe(loop, "save_model_dir", lambda *a, **k: seen["writes"].append("model_dir"))
observe(tracking, "start", lambda *a, **k: seen.__setitem__("tracking_runs", seen["tracking_runs"] + 1))
observe(tracking.TrackedRun, "log", lambda self, metrics, step=None: seen["metrics"].append([step, dict(metrics)]))

main(sys.argv[1:])
torch.save(runs[0].model.state_dict(), OUT / f"weights-rank{RANK}.pt")
(OUT / f"rank{RANK}.json").write_text(json.dumps(seen))
