"""The data card stays readable and small at 100 classes: one bar per class instead of a legend entry each."""

import base64
import io
import re

import numpy as np
from PIL import Image

from textclf.data.accounting import RowStats
from textclf.datacard import render_data_card


def test_a_100_class_card_has_bounded_plots():
    classes, rows = 100, 20_000
    rng = np.random.default_rng(0)
    stats = RowStats(
        rng.choice([0, 0, 0, 1, 2], rows).astype(np.int8),
        rng.integers(0, classes, rows).astype(np.int32),
        rng.integers(3, 30, rows).astype(np.int32),
        rng.integers(10, 200, rows).astype(np.int64),
        {i: ["an example"] for i in range(classes)},
    )
    names = [f"intent_{i:03d}_card_payment" for i in range(classes)]
    metadata = {
        "labels": names,
        "source": "s",
        "fingerprint": "f",
        "num_rows": rows,
        "rows": {"train": 1, "validation": 1, "test": 1},
        "bad_rows": 0,
        "bad_rows_by_reason": {},
        "duplicates": {"duplicate_rows": 0, "cross_split_texts": 0, "conflicting_label_texts": 0},
    }
    card = render_data_card(stats, metadata, [], [])
    assert len(card.encode()) < 400_000  # 923 KB with 2,200 px legends before
    sizes = [
        Image.open(io.BytesIO(base64.b64decode(data))).size
        for data in re.findall(r"data:image/png;base64,([A-Za-z0-9+/=]+)", card)
    ]
    assert len(sizes) == 2 and all(max(size) <= 1500 for size in sizes)
    assert "| intent_099_card_payment |" in card  # every class still in the tables
