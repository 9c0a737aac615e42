"""Behavioural tests for any text classifier: the CheckList idea, with suites as data.

Three kinds of test, after Ribeiro et al. (2020), "Beyond Accuracy: Behavioral Testing of NLP
Models with CheckList":

- **MFT** (minimum functionality): short, clear cases with a known label. Pass: the predicted label
  is the expected one.
- **INV** (invariance): a label-preserving edit (typo, case, punctuation, whitespace, names and
  places, numbers, URLs). Pass: the predicted label is the one predicted for the original.
- **DIR** (directional): a sentence appended that should move one label's probability. Pass: it
  moves that way; an original already within ``dir_tolerance`` of that end may instead stay put.

Where suites come from (``textclf.behaviour.plan``): every model gets the task-neutral INV suites,
built from its own test texts (``neutral``); a suite file (YAML or JSON, ``suitefile``; format in
docs/behaviour.md) adds MFT, INV and DIR suites for a task: the one named by ``behaviour_suites``,
or, by default, the shipped sentiment file (``sentiment.yaml``) when the labels are sentiment
labels. ``run_suites`` scores the cases through any ``predict_proba`` and returns a
``BehaviourReport`` for ``metrics.json``, the evaluation report and the gate.
"""

from textclf.behaviour.cases import DIR, INV, MFT, BehaviourError, Case, Suite
from textclf.behaviour.neutral import neutral_suites
from textclf.behaviour.perturb import PERTURBATIONS, swap_contractions
from textclf.behaviour.plan import AUTO, SuitePlan, file_suites, plan_suites
from textclf.behaviour.report import BehaviourReport, Failure, SuiteResult
from textclf.behaviour.runner import run_suites
from textclf.behaviour.suitefile import SuiteFile, built_in, load, sentiment_suites

__all__ = [
    "AUTO",
    "DIR",
    "INV",
    "MFT",
    "PERTURBATIONS",
    "BehaviourError",
    "BehaviourReport",
    "Case",
    "Failure",
    "Suite",
    "SuiteFile",
    "SuitePlan",
    "SuiteResult",
    "built_in",
    "file_suites",
    "load",
    "neutral_suites",
    "plan_suites",
    "run_suites",
    "sentiment_suites",
    "swap_contractions",
]
