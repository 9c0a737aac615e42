"""Reference profile of the data a model was evaluated on, for drift monitoring in production.

The train step builds it on the validation split (texts, true labels and the model's probabilities), in
batches (:class:`ReferenceProfileBuilder`), and writes it as ``profile.json`` next to the model.
The drift monitor (``python -m serving.monitor``) loads it and compares live traffic with it,
using the same text features (:func:`text_features`) and the same bin edges, so both sides
measure exactly the same things.

Profile layout (``format`` = ``textclf-reference-profile/v2``):

- ``label_names``: class names, index = id.
- ``labels``: ``true_share`` and ``predicted_share`` (share of each label name).
- ``score``: histogram of the predicted label's probability; fixed ``edges`` on [0, 1].
- ``tokens``: histogram of tokens per text (no special tokens, no truncation); ``edges`` are
  quantiles of the reference, so each bin holds a similar share of the reference.
- ``unknown_token_rate``: the mean over texts of each text's unknown tokens / tokens.
- ``charset``: ``ascii_share`` (the mean over texts of each text's ASCII characters /
  characters) and ``script_share`` (share of texts by their dominant Unicode script among
  letters, ``NONE`` when a text has no letter).

Every measure gives each text one vote: a rate summed over tokens or characters would let one
very long text (or a few) outweigh a thousand ordinary ones. Texts are measured on their first
:data:`MAX_MEASURED_CHARS` characters on both sides, which bounds what one text costs to measure;
a text that long lands in the top length bins either way.
Format v1 weighted the two rates by tokens and characters, and is refused with a message.
"""

from __future__ import annotations

import bisect
import functools
import json
import unicodedata
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np

PROFILE_FORMAT = "textclf-reference-profile/v2"
# Characters of a text that are measured. Far beyond the top length bin of any real profile
# (IMDB's longest review is ~14k characters, its 90th percentile ~700 tokens): only what one
# text can cost is bounded.
MAX_MEASURED_CHARS = 8192
PROFILE_FILENAME = "profile.json"
SCORE_EDGES = tuple(i / 20 for i in range(21))  # i / 20, not linspace: 0.7 must land in [0.7, 0.75)
NO_SCRIPT = "NONE"


class ProfileError(ValueError):
    """The inputs of a profile, or a profile file, are not what the monitor can use."""


@dataclass(frozen=True, slots=True)
class TextFeatures:
    """What the monitor keeps of one text: small and of fixed size, never the text itself."""

    n_tokens: int
    n_unknown: int
    n_ascii: int
    n_chars: int
    script: str

    @property
    def unknown_share(self) -> float | None:
        """Unknown tokens / tokens; None for a text with no token."""
        return self.n_unknown / self.n_tokens if self.n_tokens else None

    @property
    def ascii_share(self) -> float | None:
        """ASCII characters / characters; None for an empty text."""
        return self.n_ascii / self.n_chars if self.n_chars else None


@functools.lru_cache(maxsize=8192)
def _script_of(char: str) -> str | None:
    """Unicode script of a letter from its name (``LATIN``, ``CYRILLIC``, ``CJK``...); None if not a letter."""
    if not unicodedata.category(char).startswith("L"):
        return None
    name = unicodedata.name(char, "")
    return name.split(" ", 1)[0] if name else "UNNAMED"


def dominant_script(text: str) -> str:
    """The script most of the text's letters belong to; :data:`NO_SCRIPT` when there is no letter."""
    scripts = Counter(s for s in map(_script_of, text) if s is not None)
    return scripts.most_common(1)[0][0] if scripts else NO_SCRIPT


def text_features(texts: Sequence[str], tokenizer) -> list[TextFeatures]:
    """Token count, unknown tokens, ASCII share and dominant script of each text.

    Args:
        texts: the raw texts, as the model server receives them; each is measured on its first
            :data:`MAX_MEASURED_CHARS` characters.
        tokenizer: the model's Hugging Face tokenizer. Texts are tokenized without special
            tokens and without truncation, so the length is the text's, not the model's limit.
    """
    if not texts:
        return []
    texts = [text[:MAX_MEASURED_CHARS] for text in texts]
    token_ids = tokenizer(list(texts), add_special_tokens=False, truncation=False, verbose=False)["input_ids"]
    unk_id = tokenizer.unk_token_id
    return [
        TextFeatures(
            n_tokens=len(ids),
            n_unknown=0 if unk_id is None else sum(1 for i in ids if i == unk_id),
            n_ascii=sum(1 for c in text if c.isascii()),
            n_chars=len(text),
            script=dominant_script(text),
        )
        for text, ids in zip(texts, token_ids)
    ]


def bin_index(edges: Sequence[float], value: float) -> int:
    """Bin of ``value`` for increasing ``edges``; values outside the edges go to the end bins."""
    return min(max(bisect.bisect_right(edges, value) - 1, 0), len(edges) - 2)


def histogram(values: Sequence[float], edges: Sequence[float]) -> list[int]:
    """Counts per bin with :func:`bin_index`'s rule (end bins are open-ended)."""
    counts = [0] * (len(edges) - 1)
    for value in values:
        counts[bin_index(edges, value)] += 1
    return counts


def quantile_edges(values: Sequence[int] | np.ndarray, n_bins: int) -> list[float]:
    """Integer bin edges at the quantiles of ``values``: about equal reference mass per bin.

    Duplicated quantiles (many texts of the same length) collapse into one edge, so there may
    be fewer than ``n_bins`` bins; there are always at least two edges.
    """
    inner = np.quantile(np.asarray(values, dtype=float), np.linspace(0, 1, n_bins + 1)[1:-1])
    edges = sorted({0.0, *(float(np.ceil(q)) for q in inner), float(max(values) + 1)})
    return edges


class _ShareMean:
    """Running mean of the defined per-text shares (a text with no token / no character has none); 0 if none."""

    def __init__(self):
        self.total, self.count = 0.0, 0

    def add(self, shares) -> None:
        for share in shares:
            if share is not None:
                self.total += share
                self.count += 1

    def mean(self) -> float:
        return self.total / self.count if self.count else 0.0


def _shares(names: Sequence[str], counts: Counter) -> dict[str, float]:
    total = sum(counts.values())
    return {name: counts[name] / total for name in names}


class ReferenceProfileBuilder:
    """Builds a profile from batches (texts, true labels, probabilities): memory does not grow with the split.

    What is kept between batches is counts: label and score histograms, a count per token length
    (a few hundred distinct values), character and script tallies. The token-length bin edges are
    quantiles of all the lengths, computed at the end from the per-length counts, so a profile
    built in batches equals the profile built in one call.

    Args:
        label_names: the label names, index = id (the model's ``id2label``).
        tokenizer: the model's tokenizer (the one saved with it).
        length_bins: number of quantile bins for the token-length histogram.
    """

    def __init__(self, label_names: Sequence[str], tokenizer, *, length_bins: int = 10):
        self.label_names = list(label_names)
        self.tokenizer = tokenizer
        self.length_bins = length_bins
        self.n = 0
        self.true: Counter[str] = Counter()
        self.predicted: Counter[str] = Counter()
        self.scores = [0] * (len(SCORE_EDGES) - 1)
        self.lengths: Counter = Counter()
        # Format v2: each text one vote, so sums of per-text shares and how many texts have one.
        self.unknown_shares, self.ascii_shares = _ShareMean(), _ShareMean()
        self.scripts: Counter = Counter()

    def add(self, texts: Sequence[str], labels: Sequence[int], probabilities) -> None:
        """One batch: the texts, their true label ids (0..K-1) and the model's probabilities (len(texts), K).

        Raises:
            ProfileError: misaligned inputs, labels out of range, probabilities of the wrong shape or not finite.
        """
        probabilities = np.asarray(probabilities, dtype=float)
        n, k = len(texts), len(self.label_names)
        if len(labels) != n:
            raise ProfileError(f"{len(labels)} labels for {n} texts")
        if probabilities.shape != (n, k):
            raise ProfileError(f"probabilities have shape {probabilities.shape}, expected ({n}, {k})")
        if not np.isfinite(probabilities).all():
            raise ProfileError("probabilities contain NaN or infinite values")
        bad = [label for label in labels if not 0 <= int(label) < k]
        if bad:
            raise ProfileError(f"labels out of range 0..{k - 1}: {sorted(set(bad))[:5]}")
        features = text_features(texts, self.tokenizer)
        self.n += n
        self.true.update(self.label_names[int(i)] for i in labels)
        self.predicted.update(self.label_names[int(i)] for i in probabilities.argmax(axis=1))
        for i, count in enumerate(histogram(probabilities.max(axis=1), SCORE_EDGES)):
            self.scores[i] += count
        self.lengths.update(f.n_tokens for f in features)
        self.unknown_shares.add(f.unknown_share for f in features)
        self.ascii_shares.add(f.ascii_share for f in features)
        self.scripts.update(f.script for f in features)

    def build(self) -> dict[str, Any]:
        """The profile (JSON-able).

        Raises:
            ProfileError: no text was added.
        """
        if self.n == 0:
            raise ProfileError("cannot profile an empty split: no texts")
        values = sorted(self.lengths)
        # The lengths themselves, 4 bytes each, for the length of these three lines: numpy's quantiles exactly.
        lengths = np.repeat(np.asarray(values, dtype=np.int32), [self.lengths[v] for v in values])
        length_edges = quantile_edges(lengths, self.length_bins)
        length_counts = [0] * (len(length_edges) - 1)
        for value in values:
            length_counts[bin_index(length_edges, value)] += self.lengths[value]
        n_tokens = sum(v * c for v, c in self.lengths.items())
        tokenizer = self.tokenizer
        return {
            "format": PROFILE_FORMAT,
            "created_at": datetime.now(UTC).isoformat(timespec="seconds"),
            "n_samples": self.n,
            "label_names": self.label_names,
            "labels": {
                "true_share": _shares(self.label_names, self.true),
                "predicted_share": _shares(self.label_names, self.predicted),
            },
            "score": {"edges": list(SCORE_EDGES), "counts": list(self.scores)},
            "tokens": {
                "edges": length_edges,
                "counts": length_counts,
                "mean": n_tokens / self.n,
                "p50": float(np.median(lengths)),
                "p95": float(np.quantile(lengths, 0.95)),
            },
            "unknown_token_rate": self.unknown_shares.mean(),
            "charset": {
                "ascii_share": self.ascii_shares.mean(),
                "script_share": {s: c / self.n for s, c in self.scripts.most_common()},
            },
            "tokenizer": {
                "name_or_path": str(getattr(tokenizer, "name_or_path", "")),
                "vocab_size": int(getattr(tokenizer, "vocab_size", 0) or 0),
                "unk_token": getattr(tokenizer, "unk_token", None),
            },
        }


def build_reference_profile(
    texts: Sequence[str],
    labels: Sequence[int],
    label_names: Sequence[str],
    probabilities: np.ndarray,
    tokenizer,
    *,
    length_bins: int = 10,
) -> dict[str, Any]:
    """Profile of an evaluation split and of the model's outputs on it, in one call (see
    :class:`ReferenceProfileBuilder` for large splits, batch by batch).

    Raises:
        ProfileError: empty or misaligned inputs, labels out of range, probabilities of the
            wrong shape or not finite.
    """
    builder = ReferenceProfileBuilder(label_names, tokenizer, length_bins=length_bins)
    if len(texts):
        builder.add(texts, labels, probabilities)
    return builder.build()


def save_profile(profile: dict[str, Any], model_dir: str | Path) -> Path:
    """Write ``profile.json`` into ``model_dir`` (next to the model) and return its path."""
    path = Path(model_dir) / PROFILE_FILENAME
    path.write_text(json.dumps(profile, indent=2, sort_keys=True))
    return path


def load_profile(path: str | Path) -> dict[str, Any]:
    """Read and check a profile (a ``profile.json`` file, or the model directory holding it).

    Raises:
        ProfileError: missing file, unknown format or missing sections.
    """
    path = Path(path)
    if path.is_dir():
        path = path / PROFILE_FILENAME
    if not path.is_file():
        raise ProfileError(f"no reference profile at {path}")
    try:
        profile = json.loads(path.read_text())
    except json.JSONDecodeError as err:
        raise ProfileError(f"{path} is not JSON: {err}") from err
    if profile.get("format") != PROFILE_FORMAT:
        raise ProfileError(
            f"{path}: format {profile.get('format')!r}, expected {PROFILE_FORMAT!r} (v2 averages the rates per text); "
            "rebuild it: the pipeline's train step writes one next to the model, or call "
            "textclf.profile.build_reference_profile"
        )
    missing = [
        key
        for key in ("label_names", "labels", "score", "tokens", "unknown_token_rate", "charset")
        if key not in profile
    ]
    if missing:
        raise ProfileError(f"{path}: missing sections {missing}")
    for section in ("score", "tokens"):
        edges, counts = profile[section]["edges"], profile[section]["counts"]
        if len(edges) < 2 or len(counts) != len(edges) - 1 or sorted(edges) != edges:
            raise ProfileError(f"{path}: {section} histogram has {len(counts)} counts for {len(edges)} edges")
    return profile
