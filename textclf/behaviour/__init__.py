"""Behavioural test suites for sentiment classifiers: the CheckList idea, written here.

Three kinds of test, after Ribeiro et al. (2020), "Beyond Accuracy: Behavioral Testing of NLP
Models with CheckList":

- **MFT** (minimum functionality): short, clear cases with a known label (negation,
  intensifiers, plain phrases). Pass: the predicted label is the expected one.
- **INV** (invariance): a label-preserving edit (typo, contraction, other names and places,
  punctuation and case). Pass: the predicted label is the one predicted for the original.
- **DIR** (directional): a clearly positive (negative) sentence appended. Pass: the positive
  score rises (falls); an original already within ``dir_tolerance`` of that end may instead
  stay put, moving the wrong way by at most ``dir_tolerance``.

Every suite draws its cases from our own templates (``textclf.behaviour.data``) with a seeded RNG, so
the same seed gives the same cases. ``run_suites`` scores them through any ``predict_proba``
and returns a ``BehaviourReport`` for ``metrics.json``, the evaluation report and the gate.
"""

from textclf.behaviour.cases import (
    DIR,
    EXPECTATIONS,
    INV,
    MFT,
    SUITES,
    BehaviourError,
    Case,
    NotSentimentLabels,
    Suite,
    swap_contractions,
)
from textclf.behaviour.report import BehaviourReport, Failure, SuiteResult
from textclf.behaviour.runner import run_suites, sentiment_label_ids

__all__ = [
    "DIR", "EXPECTATIONS", "INV", "MFT", "SUITES", "BehaviourError", "BehaviourReport", "Case", "Failure",
    "NotSentimentLabels", "Suite", "SuiteResult", "run_suites", "sentiment_label_ids", "swap_contractions",
]
