"""The ``sample:`` generator and the data card."""

import base64
import re
from collections import Counter

import pandas as pd
import pytest

from textclf.ingest import IngestSettings, SourceError, ingest
from textclf.sample_data import generate


def test_sample_is_deterministic_balanced_and_distinct():
    rows = generate(301, seed=3)
    assert rows == generate(301, seed=3)
    assert rows != generate(301, seed=4)
    assert Counter(r["label"] for r in rows) == {"negative": 151, "positive": 150}
    assert len({r["text"] for r in rows}) == 301


def test_sample_has_negations_in_both_classes():
    rows = generate(400, seed=0)
    for label in ("negative", "positive"):
        assert sum(" not " in f" {r['text']} " for r in rows if r["label"] == label) > 40


def test_sample_is_learnable_but_word_order_matters():
    """Bag-of-words logistic regression: bigrams (which see "not good") beat unigrams, and both
    are well above chance, so accuracy on this data is meaningful and reachable."""
    from sklearn.feature_extraction.text import CountVectorizer
    from sklearn.linear_model import LogisticRegression

    rows = generate(1500, seed=0)
    texts, labels = [r["text"] for r in rows], [r["label"] for r in rows]
    scores = {}
    for ngrams in [(1, 1), (1, 2)]:
        features = CountVectorizer(ngram_range=ngrams).fit_transform(texts)
        model = LogisticRegression(solver="liblinear").fit(features[:1000], labels[:1000])
        scores[ngrams] = model.score(features[1000:], labels[1000:])
    assert 0.8 < scores[(1, 1)] < 0.98
    assert scores[(1, 2)] >= 0.93 and scores[(1, 2)] > scores[(1, 1)]


def test_sample_source_size_and_seed(tmp_path):
    result = ingest(IngestSettings(source="sample:120", seed=5), tmp_path / "a")
    assert result.metadata["num_rows"] == 120 and min(result.metadata["rows"].values()) > 0
    again = ingest(IngestSettings(source="sample:120", seed=5), tmp_path / "again")
    assert (
        again.metadata["rows"] == result.metadata["rows"]
        and again.metadata["fingerprint"] == result.metadata["fingerprint"]
    )
    assert result.metadata["labels"] == ["negative", "positive"]
    default = ingest(IngestSettings(source="sample:", sample_size=80), tmp_path / "b")
    assert default.metadata["num_rows"] == 80
    with pytest.raises(SourceError, match="sample:N"):
        ingest(IngestSettings(source="sample:many"), tmp_path / "c")


def test_data_card_has_counts_plots_duplicates_and_bad_rows(tmp_path):
    rows = pd.DataFrame(generate(200, seed=1))
    rows = pd.concat(
        [
            rows,
            rows.iloc[:5].assign(text=rows["text"].iloc[:5].str.upper() + "  "),
            pd.DataFrame({"text": ["", "ok text"], "label": ["positive", None]}),
        ],
        ignore_index=True,
    )
    rows.to_csv(tmp_path / "data.csv", index=False)
    result = ingest(IngestSettings(source=str(tmp_path / "data.csv")), tmp_path / "d", tmp_path / "card.md")
    card = (tmp_path / "card.md").read_text()

    assert result.metadata["duplicates"]["duplicate_rows"] == 5
    assert "Duplicate rows (text seen in an earlier row): 5" in card
    assert "Texts in more than one split (leakage): 0" in card  # duplicates stay in one split
    counts = result.metadata["rows"]
    assert f"| **total** | {counts['train']} | {counts['validation']} | {counts['test']} | 205 | 100% |" in card
    assert re.search(r"\| 0 \| negative \| \d+ \| \d+ \| \d+ \| 10[23] \|", card)
    assert "| 206 | missing text |" in card and "| 207 | missing label |" in card
    images = re.findall(r"!\[([^\]]+)\]\(data:image/png;base64,([A-Za-z0-9+/=]+)\)", card)
    assert [alt for alt, _ in images] == ["rows per class and split", "text length histogram per class"]
    for _, data in images:
        assert base64.b64decode(data).startswith(b"\x89PNG")
    assert "| negative |" in card.split("## Text length")[1]  # length stats per class
