"""Drift statistics: identical distributions give ~0, known shifts give hand-computed values, empty is None."""

import math

import pytest

from textclf import drift


def test_identical_distributions_have_no_drift():
    counts = [5, 10, 20, 40, 25]
    scaled = [c * 7 for c in counts]  # same shape, more traffic
    assert drift.psi(counts, scaled) == pytest.approx(0.0, abs=1e-12)
    assert drift.js_divergence(counts, scaled) == pytest.approx(0.0, abs=1e-12)
    assert drift.total_variation(counts, scaled) == pytest.approx(0.0, abs=1e-12)


def test_known_shift_matches_hand_computation():
    # reference 50/50, live 25/75
    # PSI = (0.25-0.5)*ln(0.25/0.5) + (0.75-0.5)*ln(0.75/0.5) = 0.25*ln2 + 0.25*ln1.5 = 0.25*ln3
    assert drift.psi([50, 50], [25, 75]) == pytest.approx(0.25 * math.log(3))
    assert drift.psi([50, 50], [25, 75]) == pytest.approx(0.274653, abs=1e-6)
    # JS: m = (0.375, 0.625)
    # KL(p||m) = 0.5*log2(0.5/0.375) + 0.5*log2(0.5/0.625) = 0.5*(0.415037) + 0.5*(-0.321928) = 0.046554
    # KL(q||m) = 0.25*log2(0.25/0.375) + 0.75*log2(0.75/0.625) = 0.25*(-0.584963) + 0.75*(0.263034) = 0.051035
    # JS = (0.046554 + 0.051035) / 2 = 0.048795
    assert drift.js_divergence([50, 50], [25, 75]) == pytest.approx(0.048795, abs=1e-5)
    assert drift.total_variation([50, 50], [25, 75]) == pytest.approx(0.25)


def test_disjoint_distributions_hit_the_bounds():
    assert drift.js_divergence([1, 0], [0, 1]) == pytest.approx(1.0)
    assert drift.total_variation([1, 0], [0, 1]) == pytest.approx(1.0)
    # empty bins are floored at epsilon: large but finite
    # (1-eps)*ln(1/eps) twice: 2 * 0.9999 * ln(1e4) = 18.4188
    assert drift.psi([1, 0], [0, 1]) == pytest.approx(2 * (1 - 1e-4) * math.log(1e4))


def test_psi_is_symmetric_and_js_is_symmetric():
    a, b = [10, 30, 60], [30, 30, 40]
    assert drift.psi(a, b) == pytest.approx(drift.psi(b, a))
    assert drift.js_divergence(a, b) == pytest.approx(drift.js_divergence(b, a))


@pytest.mark.parametrize("fn", [drift.psi, drift.js_divergence, drift.total_variation])
def test_empty_window_reads_as_no_data(fn):
    assert fn([3, 4], [0, 0]) is None
    assert fn([0, 0], [3, 4]) is None
    assert fn([], []) is None


def test_mismatched_bins_are_an_error():
    with pytest.raises(ValueError, match="2 and 3 bins"):
        drift.psi([1, 1], [1, 1, 1])


def test_align_categorical_union():
    ref, cur = drift.align({"LATIN": 0.9, "NONE": 0.1}, {"LATIN": 3, "CYRILLIC": 1})
    # keys sorted: CYRILLIC, LATIN, NONE
    assert ref == [0.0, 0.9, 0.1] and cur == [1, 3, 0.0]
