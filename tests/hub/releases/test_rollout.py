"""hub/releases/rollout.py: the canary verdict."""

from __future__ import annotations

from hub.releases.rollout import RolloutPolicy, Verdict, VersionFigures, judge_canary

POLICY = RolloutPolicy(void_margin=0.1, detect_margin=0.3, min_reviewed=10, min_detect_samples=2, min_hours=2)
OLD = VersionFigures(reviewed=100, voided=20, detect_ms=30.0, detect_samples=50, hours=500)


def test_more_voids_than_the_margin_roll_back():
    new = VersionFigures(reviewed=10, voided=4, detect_ms=30.0, detect_samples=5, hours=1)
    judged = judge_canary(OLD, new, POLICY)
    assert judged.verdict == Verdict.ROLLBACK and "void rate 0.40 (4/10) > 0.20 + 0.10" in judged.reason
    assert judge_canary(OLD, VersionFigures(reviewed=10, voided=3, detect_ms=30, detect_samples=5, hours=1),
                        POLICY).verdict == Verdict.WAIT  # 0.30 is within the margin; not long enough yet


def test_slower_detection_rolls_back_before_any_review():
    new = VersionFigures(reviewed=0, detect_ms=40.0, detect_samples=2, hours=0.1)
    assert judge_canary(OLD, new, POLICY).verdict == Verdict.ROLLBACK
    one_sample = VersionFigures(detect_ms=40.0, detect_samples=1)
    assert judge_canary(OLD, one_sample, POLICY).verdict == Verdict.WAIT  # one heartbeat is not enough


def test_enough_evidence_promotes():
    new = VersionFigures(reviewed=12, voided=1, detect_ms=33.0, detect_samples=10, hours=3)
    judged = judge_canary(OLD, new, POLICY)
    assert judged.verdict == Verdict.PROMOTE
    waiting = judge_canary(OLD, VersionFigures(reviewed=5, voided=0, detect_ms=30, detect_samples=3, hours=1), POLICY)
    assert waiting.verdict == Verdict.WAIT and "5/10 reviewed cases" in waiting.reason and "1.0/2 h" in waiting.reason
