"""The one text encoding: a raw text becomes the token ids the model sees, in training and serving.

Truncation is ``head`` (keep the start) or ``head_tail`` (keep the first quarter and the last
three quarters of the token budget: Sun et al., 2019, "How to Fine-Tune BERT for Text
Classification?"). The tokenize step, evaluation, the reference profile and the model server
all encode through :class:`TextEncoder`, so what a model was trained on and what it serves
cannot drift apart.

Very long texts are first cut by characters, keeping far more characters than the kept tokens
can span (:data:`CHARS_PER_TOKEN`), so a 4 MB text costs what a few kilobytes cost.
"""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from tokenizers import Tokenizer
    from transformers import PreTrainedTokenizerBase

TRUNCATION_MODES = ("head", "head_tail")
HEAD_SHARE = 0.25  # share of the token budget head_tail keeps from the start
# Characters kept per kept token before tokenizing. English averages ~4-5 characters per
# WordPiece/BPE token; 32 leaves room for long words, URLs and whitespace runs, so the cut never
# reaches a token that truncation keeps in real text.
CHARS_PER_TOKEN = 32
TRAINING_FILE = "training.json"


@dataclasses.dataclass(frozen=True)
class EncodedText:
    """One text as the model sees it, with the way back to the text's own characters.

    ``ids`` are the full sequence (special tokens included); ``spans`` and ``word_ids`` describe
    the text tokens only, ``ids[prefix_length + i]`` being text token ``i``: its characters are
    ``text[spans[i][0]:spans[i][1]]``, and tokens of one word (the tokenizer's pre-tokenization:
    whitespace and punctuation) share a word id. ``truncated``: part of the text was cut off.
    """

    text: str
    ids: list[int]
    prefix_length: int
    spans: list[tuple[int, int]]
    word_ids: list[int | None]
    truncated: bool


class TextEncoder:
    """Texts -> token ids with the tokenizer's special tokens, at most ``max_length`` long.

    Args:
        tokenizer: a Hugging Face fast tokenizer (its Rust ``backend_tokenizer`` does the work;
            a copy is taken, so the tokenizer object itself is not changed), or a ``tokenizers.Tokenizer``.
        max_length: longest sequence in tokens, special tokens included.
        truncation: ``head`` or ``head_tail``.
        head_tokens: with ``head_tail``, tokens kept from the start; None: ``HEAD_SHARE`` of the room.
        pad_id: the padding token's id (default: the tokenizer's ``pad_token_id``, else 0).
    """

    def __init__(
        self,
        tokenizer: Tokenizer | PreTrainedTokenizerBase,
        max_length: int,
        truncation: str = "head",
        head_tokens: int | None = None,
        pad_id: int | None = None,
    ):
        from tokenizers import Tokenizer

        if truncation not in TRUNCATION_MODES:
            raise ValueError(f"truncation must be one of {TRUNCATION_MODES}, got {truncation!r}")
        # A private copy without truncation or padding: cutting happens here, the same way for every caller.
        rust = getattr(tokenizer, "backend_tokenizer", tokenizer)  # a transformers fast tokenizer, or its Rust one
        self._encoder = Tokenizer.from_str(rust.to_str())
        self._encoder.no_truncation()
        self._encoder.no_padding()
        self.pad_id = (pad_id if pad_id is not None else getattr(tokenizer, "pad_token_id", None)) or 0
        # The special tokens around one text ([CLS] ... [SEP] for BERT), read off the tokenizer's
        # own post-processor so that other model families work too.
        probe = self._encoder.encode("a", add_special_tokens=True)
        specials = probe.special_tokens_mask
        first, end = specials.index(0), len(specials) - specials[::-1].index(0)
        self._prefix, self._suffix = probe.ids[:first], probe.ids[end:]
        self.max_length = max_length
        self.truncation = truncation
        self.room = max_length - len(self._prefix) - len(self._suffix)
        if self.room < 1:
            raise ValueError(f"max_length {max_length} leaves no room for text after the special tokens")
        self.head_tokens = head_tokens or int(self.room * HEAD_SHARE)
        if truncation == "head_tail" and not 0 < self.head_tokens < self.room:
            raise ValueError(f"head_tokens {self.head_tokens} must be in 1..{self.room - 1}")

    def cut(self, text: str) -> str:
        """``text`` cut by characters to what its kept tokens can come from (see CHARS_PER_TOKEN)."""
        return self._cut(text)[0]

    def _cut(self, text: str) -> tuple[str, int, int]:
        """(the cut text, H, S): characters from H on in the cut text come from ``text[S + (i - H)]``."""
        if len(text) <= self.room * CHARS_PER_TOKEN:
            return text, len(text), len(text)
        if self.truncation == "head":
            kept = self.room * CHARS_PER_TOKEN
            return text[:kept], kept, len(text)
        head, tail = self.head_tokens * CHARS_PER_TOKEN, (self.room - self.head_tokens) * CHARS_PER_TOKEN
        # A space between the pieces, so that the last head word and the first tail word stay apart.
        return text[:head] + " " + text[len(text) - tail :], head + 1, len(text) - tail

    def _truncate(self, tokens: list) -> list:
        """The kept part of a text's tokens (ids, offsets, ...): the head, or the head and the tail."""
        room = self.room
        if len(tokens) <= room:
            return tokens
        if self.truncation == "head_tail":
            return tokens[: self.head_tokens] + tokens[len(tokens) - (room - self.head_tokens) :]
        return tokens[:room]

    def encode(self, texts: Sequence[str]) -> list[list[int]]:
        """Token ids with special tokens, truncated to ``max_length`` (head or head+tail)."""
        encodings = self._encoder.encode_batch([self.cut(text) for text in texts], add_special_tokens=False)
        return [self._prefix + self._truncate(encoding.ids) + self._suffix for encoding in encodings]

    def encode_spans(self, texts: Sequence[str]) -> list[EncodedText]:
        """What :meth:`encode` gives, plus where each kept text token comes from in the original text."""
        cuts = [self._cut(text) for text in texts]
        encodings = self._encoder.encode_batch([cut for cut, _, _ in cuts], add_special_tokens=False)
        encoded = []
        for text, (_, head_end, tail_start), encoding in zip(texts, cuts, encodings):
            shift = tail_start - head_end  # where the tail's characters were in the original text

            def original(position: int, head_end: int = head_end, shift: int = shift) -> int:
                return position if position < head_end else position + shift

            spans = [
                (original(start), original(end - 1) + 1) if end > start else (original(start),) * 2
                for start, end in encoding.offsets
            ]
            encoded.append(
                EncodedText(
                    text=text,
                    ids=self._prefix + self._truncate(encoding.ids) + self._suffix,
                    prefix_length=len(self._prefix),
                    spans=self._truncate(spans),
                    word_ids=self._truncate(list(encoding.word_ids)),
                    truncated=len(encoding.ids) > self.room or head_end < len(text),
                )
            )
        return encoded

    @classmethod
    def for_model(
        cls,
        model_dir: str | Path,
        tokenizer: PreTrainedTokenizerBase | None = None,
        max_length: int | None = None,
        truncation: str | None = None,
        head_tokens: int | None = None,
    ) -> TextEncoder:
        """The encoder a trained model serves with: as trained (``training.json``) unless overridden,
        never longer than the model accepts. Without ``tokenizer``, the Model directory's
        ``tokenizer.json`` is read by the ``tokenizers`` library alone (:func:`load_tokenizer`): no
        transformers, no torch."""
        model_dir = Path(model_dir)
        tokens: Tokenizer | PreTrainedTokenizerBase
        if tokenizer is None:
            tokens, pad_id, tokenizer_limit = load_tokenizer(model_dir)
        else:
            tokens, pad_id, tokenizer_limit = tokenizer, None, tokenizer.model_max_length
        limit = _within(position_limit(model_dir), tokenizer_limit)
        trained = trained_settings(model_dir)
        max_length = max_length or min(int(trained.get("max_length", limit)), limit)
        if not 2 < max_length <= limit:
            raise ValueError(f"max_length {max_length} is outside 3..{limit}, the model's limit")
        return cls(tokens, max_length, truncation or trained.get("truncation", "head"), head_tokens, pad_id)


def trained_settings(model_dir: Path) -> dict:
    """``max_length`` and ``truncation`` the model was trained with (``training.json``), if known."""
    path = Path(model_dir) / TRAINING_FILE
    training = json.loads(path.read_text()) if path.is_file() else {}
    return {key: training[key] for key in ("max_length", "truncation") if training.get(key)}


def position_limit(model_dir: Path) -> int:
    """The longest input the model's position table takes (``config.json``)."""
    config = json.loads((Path(model_dir) / "config.json").read_text())
    return int(config.get("max_position_embeddings") or 512)


def _within(*limits: int | float | None) -> int:
    """The smallest real limit: the longest input the model accepts is the tokenizer's limit capped
    by the position table (tokenizers say 1e30, or nothing, for "no limit")."""
    return int(min(limit for limit in limits if limit and limit < 1_000_000))


def load_tokenizer(model_dir: Path) -> tuple[Tokenizer, int, int | None]:
    """(the Rust tokenizer of ``tokenizer.json``, the padding token's id, the tokenizer's length
    limit or None) of a ``save_pretrained`` directory, read without transformers (whose tokenizer classes
    import torch: seconds of a server's start).

    Raises:
        FileNotFoundError: the directory has no ``tokenizer.json`` (a slow-only tokenizer).
    """
    from tokenizers import Tokenizer

    path = Path(model_dir) / "tokenizer.json"
    if not path.is_file():
        raise FileNotFoundError(
            f"{model_dir} has no tokenizer.json (a fast tokenizer's file): save the model with a fast tokenizer"
        )
    tokenizer = Tokenizer.from_file(str(path))
    config_path = Path(model_dir) / "tokenizer_config.json"
    config = json.loads(config_path.read_text()) if config_path.is_file() else {}
    pad = config.get("pad_token")
    pad = pad.get("content") if isinstance(pad, dict) else pad
    pad_id = tokenizer.token_to_id(pad) if pad else None
    return tokenizer, pad_id or 0, config.get("model_max_length")
