"""Stand-in "models" for the behavioural suites: each is a ``predict_proba`` over two labels.

They have known behaviour, so the tests can show that the suites fail the models they should
fail and pass the ones they should pass.
"""

import math
import re

import numpy as np

from textclf.behaviour import built_in

SLOTS = built_in("sentiment.yaml").slots

POSITIVE_WORDS = frozenset(
    SLOTS["positive_adjective"]
    + SLOTS["positive_verb"]
    + SLOTS["negatable_positive_adjective"]
    + SLOTS["negatable_positive_verb"]
    + ["recommended", "best", "joy", "delight", "applauded", "gorgeous", "clever"]
)
NEGATIVE_WORDS = frozenset(
    SLOTS["negative_adjective"]
    + SLOTS["negative_verb"]
    + ["waste", "wasted", "bored", "worst", "mess", "wooden", "slow", "lazy", "disappointment"]
)
NEGATORS = frozenset({"not", "never", "no", "cannot"})


def constant_model(positive_probability: float, positive_first: bool = False):
    """Ignores the text: every row is the same."""
    row = (
        [positive_probability, 1 - positive_probability]
        if positive_first
        else [
            1 - positive_probability,
            positive_probability,
        ]
    )
    return lambda texts: np.array([row] * len(texts))


def lexicon_score(text: str, handle_negation: bool) -> float:
    """Positive minus negative word count; a negator flips the words after it up to punctuation."""
    score, sign = 0.0, 1
    for token in re.findall(r"[a-z']+|[.,;:!?]", text.lower()):
        if token in ".,;:!?":
            sign = 1
        elif handle_negation and (token in NEGATORS or token.endswith("n't")):
            sign = -1
        elif token in POSITIVE_WORDS:
            score += sign
        elif token in NEGATIVE_WORDS:
            score -= sign
    return score


def lexicon_model(handle_negation: bool, positive_first: bool = False):
    """A keyword "model": positive probability = sigmoid(lexicon score - 0.1).

    The small offset leans "no evidence" to negative, so no text is a 50/50 tie that the
    label order would break.
    """

    def predict_proba(texts):
        scores = [lexicon_score(t, handle_negation) - 0.1 for t in texts]
        positive = np.array([1 / (1 + math.exp(-score)) for score in scores])
        columns = (positive, 1 - positive) if positive_first else (1 - positive, positive)
        return np.stack(columns, axis=1)

    return predict_proba
