"""``make security``'s gate (security/check.py): a finding fails unless a reviewed skip with a reason
covers it, and a skip that covers nothing fails too. checkov and bandit themselves run in ``make
security`` (their own environment, CI), not here."""

from __future__ import annotations

import pytest

from security.check import Finding, Skip, judge, load_skips


def test_the_reviewed_skips_load_and_each_says_why():
    skips = load_skips()
    assert 1 <= len(skips) <= 12
    assert all(len(skip.reason.split()) >= 8 and skip.where for skip in skips)
    assert {skip.tool for skip in skips} <= {"checkov-kubernetes", "checkov-terraform", "bandit"}


def test_a_finding_passes_only_when_a_skip_covers_its_check_and_place():
    skips = [Skip("bandit", "B104", ["serving/__main__.py:*"], "reason")]
    covered = Finding("bandit", "B104", "serving/__main__.py:22", "bind all")
    elsewhere = Finding("bandit", "B104", "textclf/other.py:3", "bind all")
    other_check = Finding("bandit", "B310", "serving/__main__.py:22", "urlopen")
    open_findings, stale = judge([covered, elsewhere, other_check], skips)
    assert open_findings == [elsewhere, other_check] and stale == []


def test_a_skip_that_covers_nothing_is_reported_stale():
    skips = [Skip("checkov-kubernetes", "CKV_K8S_43", ["prometheus.yaml:*"], "reason")]
    assert judge([], skips) == ([], skips)


def test_a_skip_without_a_real_reason_is_refused(tmp_path):
    path = tmp_path / "skips.yaml"
    path.write_text("- {tool: bandit, check: B101, where: ['*'], reason: because}\n")
    with pytest.raises(ValueError, match="must say why"):
        load_skips(path)
    path.write_text("- {tool: bandit, check: B101, reason: the asserts guard developer mistakes only here}\n")
    with pytest.raises(ValueError, match="lacks where"):
        load_skips(path)
