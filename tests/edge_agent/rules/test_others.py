"""Presence (with schedules), co-occurrence, count and line-crossing rules on hand-made tracks."""

from __future__ import annotations

from datetime import datetime
from zoneinfo import ZoneInfo

from edge_agent.types import TrackState
from tests.edge_agent.rules.rules_helpers import T0, engine, run, states, track, uneven_times

SH = ZoneInfo("Asia/Shanghai")
TIDAL = {"id": "tidal", "kind": "tidal_stall", "polygon": [[0.0, 0.5], [0.5, 0.5], [0.5, 1.0], [0.0, 1.0]]}
LINE = {"id": "lane", "kind": "line", "line": [[0.0, 0.5], [1.0, 0.5]], "allowed_direction": "down"}


def local(text: str) -> float:
    return datetime.fromisoformat(text).replace(tzinfo=SH).timestamp()


# --- presence ---

def test_presence_fires_for_a_moving_person_in_water() -> None:
    eng = engine("water_area_order", [{"id": "pond", "kind": "water", "polygon": [[0, 0], [1, 0], [1, 1]]}],
                 params={"min_dwell_s": 20})
    frames = []
    for i, t in enumerate(uneven_times(T0, T0 + 30)):
        x = 800 + 3 * i  # wading about
        frames.append((t, [track(1, "person", (x, 100, x + 40, 200), now=t)]))
    ups = run(eng, frames)
    assert states(ups) == ["opened"] and ups[0][0] >= T0 + 20


def test_stall_in_tidal_zone_only_outside_its_allowed_hours() -> None:
    # Stalls are allowed 18:00-23:00; the rule runs outside, and its timer starts when the window ends.
    eng = engine("stall_occupying_road", [TIDAL], timezone="Asia/Shanghai", params={"min_dwell_s": 60},
                 schedule={"mode": "allowed", "windows": [{"days": "daily", "start": "18:00", "end": "23:00"}]})
    start, stop = local("2026-05-20T20:00:00"), local("2026-05-20T23:05:00")
    person, table = (100.0, 600.0, 160.0, 760.0), (165.0, 680.0, 300.0, 770.0)
    frames = []
    t = start
    while t <= stop:
        frames.append((t, [track(1, "person", person, now=t, stationary_since=start),
                           track(2, "dining table", table, now=t, stationary_since=start)]))
        t += 7.3
    ups = run(eng, frames)
    assert states(ups) == ["opened"]
    assert local("2026-05-20T23:01:00") <= ups[0][0] < local("2026-05-20T23:01:15")  # 7.3 s frame steps


def test_active_schedule_in_camera_timezone() -> None:
    eng = engine("water_area_order", [{"id": "pond", "polygon": [[0, 0], [1, 0], [1, 1]]}],
                 timezone="Asia/Shanghai", params={"min_dwell_s": 1},
                 schedule={"windows": [{"days": "weekdays", "start": "22:00", "end": "06:00"}]})
    box = (800.0, 100.0, 840.0, 200.0)

    def fires(at: str) -> bool:
        e0 = local(at)
        return bool(run(eng, [(e0 + d, [track(7, "person", box, now=e0 + d)]) for d in (0, 1, 2)]))

    assert fires("2026-05-23T03:00:00")  # Saturday 03:00 is the tail of Friday night's window
    eng.rules[0].open.clear()
    assert not fires("2026-05-23T12:00:00")


# --- co-occurrence ---

PERSON = (100.0, 600.0, 160.0, 760.0)
UMBRELLA = (80.0, 540.0, 260.0, 620.0)


def test_person_with_umbrella_stationary_together_is_a_stall() -> None:
    eng = engine("stall_occupying_road", [TIDAL], params={"min_dwell_s": 30})
    frames = [(t, [track(1, "person", PERSON, now=t, stationary_since=T0),
                   track(2, "umbrella", UMBRELLA, now=t, stationary_since=T0 + 5),
                   track(3, "person", (110.0, 590.0, 170.0, 755.0), now=t, stationary_since=T0)])
              for t in uneven_times(T0, T0 + 50)]
    ups = run(eng, frames)
    assert states(ups) == ["opened"]  # two vendors at one stall: one problem
    fired_at, u = ups[0]
    assert fired_at >= T0 + 35 and "umbrella" in u.labels and u.object_count >= 2


def test_person_alone_or_far_from_the_umbrella_is_no_stall() -> None:
    eng = engine("stall_occupying_road", [TIDAL], params={"min_dwell_s": 10})
    far = (400.0, 550.0, 480.0, 600.0)
    frames = [(t, [track(1, "person", PERSON, now=t, stationary_since=T0),
                   track(2, "umbrella", far, now=t, stationary_since=T0)]) for t in uneven_times(T0, T0 + 40)]
    assert run(eng, frames) == []


def test_stall_clears_when_the_vendor_leaves() -> None:
    eng = engine("stall_occupying_road", [TIDAL], params={"min_dwell_s": 10, "clear_after_s": 10})
    frames = [(t, [track(1, "person", PERSON, now=t, stationary_since=T0),
                   track(2, "chair", (165.0, 680.0, 220.0, 760.0), now=t, stationary_since=T0)])
              for t in uneven_times(T0, T0 + 20)]
    frames += [(t, [track(1, "person", PERSON, now=t, state=TrackState.REMOVED)])
               for t in uneven_times(T0 + 20.2, T0 + 40)]
    assert states(run(eng, frames)) == ["opened", "cleared"]


# --- count ---

def crowd(now: float, n: int) -> list:
    return [track(i, "person", (520.0 + 40 * i, 100.0, 550.0 + 40 * i, 200.0), now=now) for i in range(n)]


def test_crowd_needs_enough_people_for_long_enough() -> None:
    eng = engine("crowd_gathering", params={"min_count": 5, "min_dwell_s": 20, "clear_after_s": 10})
    frames = [(t, crowd(t, 4)) for t in uneven_times(T0, T0 + 30)]  # four: never
    frames += [(t, crowd(t, 6)) for t in uneven_times(T0 + 30.1, T0 + 45)]  # six, but for 15 s only
    frames += [(t, crowd(t, 3)) for t in uneven_times(T0 + 45.1, T0 + 60)]
    frames += [(t, crowd(t, 5)) for t in uneven_times(T0 + 60.1, T0 + 100)]  # five for 40 s: opens
    frames += [(t, crowd(t, 1)) for t in uneven_times(T0 + 100.1, T0 + 130)]  # disperses: clears
    ups = run(eng, frames)
    assert states(ups) == ["opened", "cleared"]
    assert T0 + 80 <= ups[0][0] < T0 + 82
    assert ups[0][1].object_count == 5
    assert T0 + 110 <= ups[1][0] < T0 + 112


def test_parked_bikes_count_only_when_stationary() -> None:
    eng = engine("illegal_bike_parking", params={"min_count": 3, "min_dwell_s": 10, "stationary_s": 30})
    frames = []
    for t in uneven_times(T0, T0 + 60):
        bikes = [track(i, "bicycle", (520.0 + 60 * i, 100.0, 570.0 + 60 * i, 160.0), now=t,
                       stationary_since=T0) for i in range(3)]
        frames.append((t, bikes))
    ups = run(eng, frames)
    assert states(ups) == ["opened"] and ups[0][0] >= T0 + 40


# --- line crossing ---

def drive(tid: int, label: str, y_from: float, y_to: float, t_from: float, secs: float) -> list:
    times = uneven_times(t_from, t_from + secs)
    out = []
    for t in times:
        y = y_from + (y_to - y_from) * (t - t_from) / secs
        out.append((t, [track(tid, label, (480.0, y - 80, 560.0, y), now=t)]))
    return out


def test_wrong_way_crossing_opens_and_right_way_does_not() -> None:
    eng = engine("wrong_way_vehicle", [LINE], params={"clear_after_s": 3}, cooldown_s=0)
    frames = drive(1, "car", 300, 700, T0, 5)  # down: allowed
    frames += drive(2, "car", 700, 300, T0 + 6, 5)  # up: wrong way
    frames += [(t, []) for t in uneven_times(T0 + 11.5, T0 + 16)]
    ups = run(eng, frames)
    assert states(ups) == ["opened", "cleared"]
    assert ups[0][1].track_ids == (2,)
    past_line = [t for t, tr in frames if tr and tr[0].track_id == 2 and tr[0].xyxy[3] < 500 - 14]
    assert ups[0][0] == past_line[0]  # the first frame beyond the line's dead band


def test_jitter_on_the_line_and_crossing_beside_the_segment_are_not_crossings() -> None:
    eng = engine("wrong_way_vehicle", [{**LINE, "line": [[0.0, 0.5], [0.4, 0.5]]}], cooldown_s=0)
    frames = []
    for i, t in enumerate(uneven_times(T0, T0 + 20)):
        y = 500 + (3 if i % 2 else -3)  # within the dead band
        frames.append((t, [track(1, "car", (100.0, y - 80, 180.0, y), now=t)]))
    frames += drive(2, "car", 700, 300, T0 + 21, 5)  # x = 520: beside the segment's end at x = 400
    assert run(eng, frames) == []


def test_trucks_in_restricted_hours_and_cooldown() -> None:
    eng = engine("truck_in_restricted_hours", [{"id": "gate", "line": [[0, 0.5], [1, 0.5]]}],
                 timezone="Asia/Shanghai", cooldown_s=60,
                 schedule={"mode": "active", "windows": [{"days": "daily", "start": "07:00", "end": "09:00"}]})
    morning, noon = local("2026-05-20T08:00:00"), local("2026-05-20T12:00:00")
    frames = drive(1, "truck", 300, 700, morning, 4)
    frames += drive(2, "truck", 700, 300, morning + 20, 4)  # within the cooldown
    frames += drive(3, "truck", 300, 700, morning + 100, 4)
    frames += drive(4, "truck", 300, 700, noon, 4)  # allowed hours
    frames += drive(5, "car", 300, 700, morning + 200, 4)  # not a truck
    ups = [u for _, u in run(eng, frames) if u.state == "opened"]
    assert [u.track_ids for u in ups] == [(1,), (3,)]
