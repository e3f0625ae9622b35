"""models/compare.py: which candidate is flagged as worse than the model in service."""

from __future__ import annotations

import numpy as np

from models.compare import ModelScore, compare, format_comparison, label_key
from models.evaluate import ClassMetrics, EvalReport


def score(name: str, ap50: dict[str, float], precision_op: dict[str, float], active: set[str]) -> ModelScore:
    def report(values: dict[str, float], field: str) -> EvalReport:
        rows = []
        for label in ("traffic_cone", "person", "bus"):
            v = values.get(label, float("nan"))
            n_true = 0 if label == "bus" else 10
            rows.append(ClassMetrics(label, n_true, 10, v if field == "p" else 0.5, 0.5,
                                     v if field == "ap" else 0.5, 0.3))
        return EvalReport(rows, 5)

    return ModelScore(name, report(ap50, "ap"), report(precision_op, "p"), 12.0, frozenset(active))


def test_worse_on_an_active_class_is_flagged():
    old = score("old", {"person": 0.60, "bus": 0.9}, {"person": 0.80}, {"person", "bus"})
    same = score("same", {"person": 0.59, "traffic_cone": 0.7}, {"person": 0.79}, {"person", "traffic_cone"})
    assert not compare(old, same).flagged  # within the margin; bus has no examples in the split
    worse_ap = score("a", {"person": 0.50, "traffic_cone": 0.7}, {"person": 0.80}, {"person", "traffic_cone"})
    worse_p = score("b", {"person": 0.60}, {"person": 0.60}, {"person"})
    dropped = score("c", {"traffic_cone": 0.9}, {}, {"traffic_cone"})
    assert compare(old, worse_ap).worse == ["person: AP50 0.500 < 0.600"]
    assert compare(old, worse_p).worse == ["person: precision at operating threshold 0.600 < 0.800"]
    assert compare(old, dropped).worse == ["person: c has no such label"]
    # a class the old model never had cannot make the new one worse
    assert not compare(score("coco", {}, {}, set()), worse_ap).flagged
    lines = format_comparison(old, worse_ap, compare(old, worse_ap))
    assert lines[-2].startswith("WORSE: a is worse than old") and "ms per frame: old 12.0" in lines[-3]
    assert np.isnan(old.row("traffic_cone")[0].ap50)


def test_labels_match_across_spellings():
    assert label_key("traffic light") == label_key("Traffic_Light") == label_key("traffic-light")
