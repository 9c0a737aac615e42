"""Fixtures for the monitor tests: the tiny model's tokenizer, a reference profile, text generators."""

import random

import numpy as np
import pytest

SUBJECTS = ["The film", "This movie", "The plot", "The acting", "The soundtrack", "The director", "The ending", "The cast"]
VERBS = ["was", "felt", "seemed", "turned out to be", "is"]
ADJECTIVES = ["wonderful", "boring", "brilliant", "dull", "moving", "predictable", "charming", "awful", "fresh", "slow"]
TAILS = ["from start to finish", "in every scene", "for most of the story", "despite the budget", "as I expected", ""]


def review_texts(n: int, seed: int) -> list[str]:
    """English review-like texts of 1-6 sentences: the in-distribution traffic."""
    rng = random.Random(seed)
    return [
        " ".join(
            f"{rng.choice(SUBJECTS)} {rng.choice(VERBS)} {rng.choice(ADJECTIVES)} {rng.choice(TAILS)}".strip() + "."
            for _ in range(rng.randint(1, 6))
        )
        for _ in range(n)
    ]


def shifted_texts(n: int, seed: int) -> list[str]:
    """Short Cyrillic messages with digits and emoji: another language, length and charset."""
    rng = random.Random(seed)
    words = ["привет", "скидка", "звоните", "сегодня", "бесплатно", "код"]
    return [f"{rng.choice(words)} {rng.choice(words)} {rng.randint(100, 99999)} 🙂" for _ in range(n)]


def fake_probabilities(n: int, seed: int) -> np.ndarray:
    rng = np.random.default_rng(seed)
    p = rng.uniform(0.05, 0.95, size=n)
    return np.stack([1 - p, p], axis=1)


@pytest.fixture(scope="session")
def tokenizer(tiny_model_dir):
    from transformers import AutoTokenizer

    return AutoTokenizer.from_pretrained(tiny_model_dir)


@pytest.fixture(scope="session")
def reference_profile(tokenizer):
    """A profile of 400 review texts with uniform-ish fake scores over [0.5, 0.95]."""
    from components.profile import build_reference_profile

    texts = review_texts(400, seed=1)
    probabilities = fake_probabilities(400, seed=1)
    labels = probabilities.argmax(axis=1).tolist()
    return build_reference_profile(texts, labels, ["negative", "positive"], probabilities, tokenizer)
