"""The one agreement check, computed by hand."""

import math

import numpy as np
import pytest

from textclf.inference import Agreement


def test_flips_and_probability_changes_add_up_over_batches():
    agreement = Agreement()
    reference = np.array([[0.9, 0.1], [0.4, 0.6], [0.2, 0.8]])
    other = np.array([[0.8, 0.2], [0.55, 0.45], [0.2, 0.8]])  # text 1's label flips
    agreement.add(reference, other, labels=[0, 1, 1])
    agreement.add(np.array([[0.5, 0.5]]), np.array([[0.5, 0.5]]), labels=[0])
    result = agreement.to_dict()
    assert result["texts"] == 4 and result["label_flips"] == 1 and result["flip_rate"] == 0.25
    assert result["max_probability_change"] == pytest.approx(0.15)
    assert result["mean_probability_change"] == pytest.approx((0.1 + 0.15 + 0 + 0) / 4)
    assert result["accuracy"] == pytest.approx(3 / 4)  # the other backend's labels: 0, 0, 1, 0


def test_nothing_measured_is_not_a_number_and_shapes_must_match():
    assert math.isnan(Agreement().flip_rate) and "accuracy" not in Agreement().to_dict()
    with pytest.raises(ValueError, match="shapes differ"):
        Agreement().add(np.zeros((2, 2)), np.zeros((2, 3)))
