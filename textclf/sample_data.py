"""Generated sentiment reviews for the ``sample:`` source: seeded, balanced, written by us.

Every review is put together from our own templates and word lists (no third-party text). The
label comes from the words, so a model has to learn them: positive and negative adjectives and
verbs, negations that flip them ("not good" is negative, "not bad" is positive), intensifiers,
and neutral filler sentences that carry no signal. A review can contain one sentence of the
opposite sentiment ("The ending was weak, but ...") as long as the verdict outweighs it, so the
task is not trivially solved by a single keyword yet a fine-tuned MiniLM reaches well over 0.9.
"""

from __future__ import annotations

import random

LABELS = ("negative", "positive")

SUBJECTS = {
    "movie": [
        "acting",
        "plot",
        "soundtrack",
        "dialogue",
        "ending",
        "cinematography",
        "pacing",
        "cast",
        "script",
        "direction",
        "special effects",
        "story",
    ],
    "book": [
        "writing",
        "characters",
        "plot",
        "ending",
        "prose",
        "pacing",
        "dialogue",
        "world building",
        "story",
        "translation",
    ],
    "restaurant": [
        "food",
        "service",
        "staff",
        "dessert",
        "menu",
        "atmosphere",
        "wine list",
        "portions",
        "coffee",
        "music",
    ],
    "phone": ["battery", "screen", "camera", "speaker", "charger", "design", "software", "keyboard", "case", "price"],
    "hotel": ["room", "bed", "breakfast", "staff", "location", "pool", "view", "shower", "check-in", "wifi"],
    "game": [
        "graphics",
        "controls",
        "story",
        "levels",
        "soundtrack",
        "multiplayer",
        "boss fights",
        "puzzles",
        "ending",
        "difficulty",
    ],
}
THINGS = {
    "movie": ["this movie", "the film", "this picture", "the sequel"],
    "book": ["this book", "the novel", "this memoir", "the sequel"],
    "restaurant": ["this restaurant", "the bistro", "this place", "the diner"],
    "phone": ["this phone", "the handset", "this device", "the new model"],
    "hotel": ["this hotel", "the resort", "this inn", "the hostel"],
    "game": ["this game", "the sequel", "this title", "the expansion"],
}
ADJECTIVES = {
    "positive": [
        "good",
        "great",
        "excellent",
        "wonderful",
        "superb",
        "brilliant",
        "charming",
        "delightful",
        "impressive",
        "lovely",
        "fantastic",
        "solid",
        "enjoyable",
        "clever",
        "outstanding",
        "pleasant",
        "memorable",
        "stunning",
    ],
    "negative": [
        "bad",
        "awful",
        "terrible",
        "dreadful",
        "boring",
        "disappointing",
        "weak",
        "poor",
        "mediocre",
        "annoying",
        "horrible",
        "dull",
        "sloppy",
        "clumsy",
        "forgettable",
        "painful",
        "lousy",
        "bland",
    ],
}
VERBS = {  # (past tense, base form)
    "positive": [
        ("loved", "love"),
        ("enjoyed", "enjoy"),
        ("adored", "adore"),
        ("liked", "like"),
        ("appreciated", "appreciate"),
        ("admired", "admire"),
    ],
    "negative": [
        ("hated", "hate"),
        ("disliked", "dislike"),
        ("regretted", "regret"),
        ("loathed", "loathe"),
        ("resented", "resent"),
        ("despised", "despise"),
    ],
}
VERDICTS = {
    "positive": [
        "I would recommend it to anyone.",
        "Worth every penny.",
        "I will be back for more.",
        "Easily five stars.",
        "A real gem.",
        "Highly recommended.",
        "I cannot wait to try it again.",
    ],
    "negative": [
        "I would not recommend it to anyone.",
        "A waste of money.",
        "Never again.",
        "One star is generous.",
        "Avoid it.",
        "I want my money back.",
        "I regret every minute of it.",
    ],
}
INTENSIFIERS = ["", "", "really ", "very ", "truly ", "quite ", "extremely ", "genuinely "]
FILLERS = [
    "I went with a couple of friends on a Tuesday.",
    "It took a while to get started.",
    "My sister had told me about it last year.",
    "We paid the usual price.",
    "I tried it after reading a few comments online.",
    "It was raining that evening.",
    "This was my second attempt.",
    "I did not know much about it beforehand.",
    "The whole thing lasted about two hours.",
    "I had moderate expectations.",
]
OPPOSITE = {"positive": "negative", "negative": "positive"}


def _adjective_phrase(rng: random.Random, sentiment: str) -> str:
    """An adjective phrase meaning ``sentiment``; a third of them negate the opposite word."""
    if rng.random() < 1 / 3:
        return f"not {rng.choice(['', 'exactly ', 'very '])}{rng.choice(ADJECTIVES[OPPOSITE[sentiment]])}"
    return rng.choice(INTENSIFIERS) + rng.choice(ADJECTIVES[sentiment])


def _with_article(word: str) -> str:
    return f"an {word}" if word[0] in "aeiou" else f"a {word}"


def _sentence(rng: random.Random, domain: str, sentiment: str) -> str:
    """One sentence that carries ``sentiment`` about one aspect of the thing reviewed."""
    aspect = rng.choice(SUBJECTS[domain])
    thing = rng.choice(THINGS[domain])
    phrase = _adjective_phrase(rng, sentiment)
    verb, _ = rng.choice(VERBS[sentiment])
    _, negated_verb = rng.choice(VERBS[OPPOSITE[sentiment]])
    templates = [
        f"The {aspect} was {phrase}.",
        f"I found the {aspect} {phrase}.",
        f"Honestly, the {aspect} is {phrase}.",
        f"I {verb} the {aspect}.",
        f"I {verb} {thing}.",
        f"I did not {negated_verb} the {aspect}.",
        f"Overall {thing} was {phrase}.",
        f"What {_with_article(rng.choice(ADJECTIVES[sentiment]))} {aspect}!",
        f"{thing.capitalize()} is {phrase}, and the {aspect} was {_adjective_phrase(rng, sentiment)}.",
    ]
    return rng.choice(templates)


def _lower_first(sentence: str) -> str:
    """Lower-case the first letter so a sentence can continue another ("I" stays upper-case)."""
    return sentence if sentence.startswith("I ") else sentence[0].lower() + sentence[1:]


def _review(rng: random.Random, sentiment: str) -> str:
    """One to six sentences: the sentiment dominates, with filler and at most one contrary remark.

    A contrary remark always comes with a closing verdict, so the label stays unambiguous.
    """
    domain = rng.choice(sorted(SUBJECTS))
    sentences = [_sentence(rng, domain, sentiment) for _ in range(rng.randint(1, 3))]
    if rng.random() < 0.5:
        sentences.insert(rng.randrange(len(sentences) + 1), rng.choice(FILLERS))
    contrary_remark = rng.random() < 0.25
    if contrary_remark:
        contrary = _sentence(rng, domain, OPPOSITE[sentiment]).rstrip(".!")
        opener = rng.choice(["Sure,", "Admittedly,", "Okay,"])
        sentences.insert(0, f"{opener} {_lower_first(contrary)}, but {_lower_first(sentences.pop(0))}")
    if contrary_remark or rng.random() < 0.6:
        sentences.append(rng.choice(VERDICTS[sentiment]))
    return " ".join(sentences)


def generate(size: int, seed: int = 0) -> list[dict[str, str]]:
    """Return ``size`` distinct reviews as ``{"text", "label"}`` rows, balanced and seeded.

    Labels alternate (negative, positive, ...), so the classes differ by at most one row; the same
    ``size`` and ``seed`` always give the same rows.

    Raises:
        ValueError: ``size`` is below 2 (a dataset needs both classes).
    """
    if size < 2:
        raise ValueError(f"sample size must be at least 2 (one per class), got {size}")
    rng = random.Random(seed)
    rows: list[dict[str, str]] = []
    seen: set[str] = set()
    # The space of reviews is far larger than any sample we ask for; the bound only guards
    # against an endless loop if the word lists ever shrink.
    attempts = 0
    while len(rows) < size:
        attempts += 1
        if attempts > size * 50:
            raise ValueError(f"could not generate {size} distinct reviews")
        label = LABELS[len(rows) % 2]
        text = _review(rng, label)
        if text not in seen:
            seen.add(text)
            rows.append({"text": text, "label": label})
    return rows
