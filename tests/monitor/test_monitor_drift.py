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


def test_an_alert_needs_a_full_enough_window_and_resolves_only_well_under_its_threshold():
    """The alerting rule alone (textclf.drift), as the monitor applies it: no server, no tokenizer."""
    alerts = drift.DriftAlerts({"score_psi": 0.2, "length_psi": 0.2}, min_samples=50)
    full = {"texts": 100, "predictions": 100}
    assert (
        alerts.update({"score_psi": 0.9, "length_psi": 0.0}, {"texts": 100, "predictions": 49}) == []
    )  # too few predictions
    (raised,) = alerts.update({"score_psi": 0.9, "length_psi": 0.0}, full)
    assert (raised.metric, raised.active, raised.window, alerts.active) == ("score_psi", True, 100, {"score_psi"})
    assert alerts.update({"score_psi": 0.17, "length_psi": 0.0}, full) == []  # under 0.2, not under 0.8 x 0.2: still on
    (resolved,) = alerts.update({"score_psi": 0.15, "length_psi": None}, full)
    assert (resolved.active, alerts.active, alerts.raised["score_psi"]) == (False, set(), 1)


def test_thresholds_are_checked_and_judged_on_their_own_window():
    assert drift.parse_thresholds(["score_psi=0.3", "script_js=off"])["score_psi"] == 0.3
    assert "script_js" not in drift.parse_thresholds(["script_js=off"])
    with pytest.raises(ValueError, match="score_psi=high"):
        drift.parse_thresholds(["score_psi=high"])
    with pytest.raises(ValueError, match="unknown drift metrics \\['bogus'\\]"):
        drift.DriftAlerts({"bogus": 1.0}, min_samples=1)
    metrics = {"length_psi": 0.9, "score_psi": 0.9, "label_share_shift": None}
    thresholds = {"length_psi": 0.2, "score_psi": 0.2, "label_share_shift": 0.1}
    assert drift.over_threshold(metrics, {"texts": 10, "predictions": 100}, 50, thresholds) == {"score_psi": 0.9}
