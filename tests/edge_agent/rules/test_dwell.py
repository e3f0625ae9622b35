"""Dwell rule on hand-made tracks: timing at uneven fps, grace, clearing, cooldown, re-detection."""

from __future__ import annotations

import re

from edge_agent.types import TrackState
from tests.edge_agent.rules.rules_helpers import T0, engine, run, states, track, uneven_times

CAR = (700.0, 200.0, 850.0, 300.0)  # bottom centre (775, 300) is inside the top-right quarter


def parked(now: float, tid: int = 1, box: tuple[float, float, float, float] = CAR,
           **kw: object) -> list:
    return [track(tid, "car", box, now=now, first_seen=T0, stationary_since=T0, **kw)]  # type: ignore[arg-type]


def test_opens_once_after_min_dwell_not_before() -> None:
    eng = engine("illegal_car_parking", params={"min_dwell_s": 30})
    times = uneven_times(T0, T0 + 60)
    ups = run(eng, [(t, parked(t)) for t in times])
    assert states(ups) == ["opened"]
    fired_at, opened = ups[0]
    assert fired_at >= T0 + 30
    assert fired_at == min(t for t in times if t - T0 >= 30)  # the first frame past the threshold
    assert opened.dwell_s >= 30 and opened.first_seen == T0
    assert opened.zone == "z" and opened.class_id == "illegal_car_parking" and opened.track_ids == (1,)
    assert re.fullmatch(r"[A-Za-z0-9_-]{8,64}", opened.problem_id)


def test_object_present_at_start_counts_from_its_stationary_since() -> None:
    # The tracker saw the car standing since T0 - 100 (a start-up scan): the rule fires on its first frame.
    eng = engine("illegal_car_parking", params={"min_dwell_s": 30})
    box = CAR
    ups = run(eng, [(T0, [track(1, "car", box, now=T0, first_seen=T0 - 100, stationary_since=T0 - 100)])])
    assert states(ups) == ["opened"]


def test_moving_car_or_car_outside_zone_never_opens() -> None:
    eng = engine("illegal_car_parking", params={"min_dwell_s": 5})
    frames = []
    for i, t in enumerate(uneven_times(T0, T0 + 30)):
        x = 550 + 4 * i
        moving = track(1, "car", (x, 200, x + 100, 300), now=t)  # tracker gives no stationary_since
        outside = track(2, "car", (100, 600, 250, 700), now=t, stationary_since=T0)
        frames.append((t, [moving, outside]))
    assert run(eng, frames) == []


def test_own_stationarity_check_when_tracker_gives_none() -> None:
    eng = engine("illegal_car_parking", params={"min_dwell_s": 20})
    frames = []
    for i, t in enumerate(uneven_times(T0, T0 + 40)):
        jitter = (i % 3) - 1.0  # a pixel of detector jitter
        frames.append((t, [track(1, "car", (700 + jitter, 200, 850 + jitter, 300), now=t)]))
    ups = run(eng, frames)
    assert states(ups) == ["opened"]
    assert ups[0][0] >= T0 + 20


def test_lost_track_inside_grace_keeps_timer_and_does_not_clear() -> None:
    eng = engine("illegal_car_parking", params={"min_dwell_s": 30, "clear_after_s": 20})
    frames = []
    for t in uneven_times(T0, T0 + 70):
        lost = T0 + 10 <= t < T0 + 18 or T0 + 40 <= t < T0 + 55
        frames.append((t, parked(t, state=TrackState.LOST if lost else TrackState.TRACKED)))
    ups = run(eng, frames)
    assert states(ups) == ["opened"]
    assert ups[0][0] - T0 < 31


def test_clears_only_after_gone_for_clear_after_s() -> None:
    eng = engine("illegal_car_parking", params={"min_dwell_s": 10, "clear_after_s": 15})
    frames = [(t, parked(t)) for t in uneven_times(T0, T0 + 20)]
    frames += [(t, []) for t in uneven_times(T0 + 20.5, T0 + 30)]  # gone 10 s: not yet
    frames += [(t, parked(t)) for t in uneven_times(T0 + 30.5, T0 + 40)]  # back: same problem
    frames += [(t, []) for t in uneven_times(T0 + 40.5, T0 + 70)]  # gone for good
    ups = run(eng, frames)
    assert states(ups) == ["opened", "cleared"]
    (_, opened), (cleared_at, cleared) = ups
    assert cleared.problem_id == opened.problem_id
    last_seen = max(t for t, tr in frames if tr)
    assert cleared_at - last_seen >= 15 and cleared_at - last_seen < 17
    assert abs(cleared.dwell_s - (last_seen - T0)) < 1e-6


def test_redetection_under_a_new_track_id_is_the_same_problem() -> None:
    eng = engine("illegal_car_parking", params={"min_dwell_s": 10})
    frames = [(t, parked(t, tid=1)) for t in uneven_times(T0, T0 + 20)]
    shifted = (CAR[0] + 3, CAR[1] + 2, CAR[2] + 3, CAR[3] + 2)
    frames += [(t, [track(9, "car", shifted, now=t, first_seen=T0 + 21, stationary_since=T0 + 21)])
               for t in uneven_times(T0 + 21, T0 + 80)]
    assert states(run(eng, frames)) == ["opened"]


def test_cooldown_blocks_reopening_at_the_same_place() -> None:
    eng = engine("illegal_car_parking", params={"min_dwell_s": 5, "clear_after_s": 5}, cooldown_s=60)
    frames = [(t, parked(t)) for t in uneven_times(T0, T0 + 10)]
    frames += [(t, []) for t in uneven_times(T0 + 10.5, T0 + 20)]  # cleared around T0 + 15
    again = T0 + 21
    frames += [(t, [track(2, "car", CAR, now=t, stationary_since=again)]) for t in uneven_times(again, T0 + 90)]
    ups = run(eng, frames)
    assert states(ups) == ["opened", "cleared", "opened"]
    cleared_at, reopened_at = ups[1][0], ups[2][0]
    assert reopened_at >= cleared_at + 60


def test_two_cars_are_two_problems_and_low_scores_are_ignored() -> None:
    eng = engine("illegal_car_parking", params={"min_dwell_s": 5}, min_score=0.5)
    other = (550.0, 100.0, 650.0, 180.0)
    faint = (880.0, 350.0, 990.0, 450.0)
    frames = [(t, [*parked(t), *parked(t, tid=2, box=other), *parked(t, tid=3, box=faint, score=0.2)])
              for t in uneven_times(T0, T0 + 10)]
    ups = run(eng, frames)
    assert states(ups) == ["opened", "opened"]
    assert len({u.problem_id for _, u in ups}) == 2
    assert {u.track_ids for _, u in ups} == {(1,), (2,)}


def test_updates_on_a_timer_while_open() -> None:
    eng = engine("illegal_car_parking", params={"min_dwell_s": 5, "update_every_s": 10})
    ups = run(eng, [(t, parked(t)) for t in uneven_times(T0, T0 + 30)])
    assert states(ups) == ["opened", "updated", "updated"]
    assert len({u.problem_id for _, u in ups}) == 1


def test_unattended_goods_only_count_while_no_person_is_near() -> None:
    eng = engine("discarded_furniture", params={"min_dwell_s": 20})
    couch = (600.0, 300.0, 700.0, 380.0)
    person = (710.0, 250.0, 750.0, 380.0)  # right next to the couch
    frames = []
    for t in uneven_times(T0, T0 + 60):
        tracks = [track(1, "couch", couch, now=t, stationary_since=T0)]
        if t < T0 + 30:
            tracks.append(track(2, "person", person, now=t, stationary_since=T0))
        frames.append((t, tracks))
    ups = run(eng, frames)
    assert states(ups) == ["opened"]
    assert ups[0][0] >= T0 + 50  # 20 s after the person left
