"""The case state machine after the standard closed loop (数字城管): review, file, dispatch, handle, verify, close.

    pending_review --confirm--> filed --dispatch--> dispatched --start--> in_progress --handle--> handled
    pending_review --void(reason)--> void            dispatched --return(reason)--> filed
    handled --verify (inspector, or the edge reporting `cleared`)--> verified --close--> closed
    handled|verified --rework(reason)--> dispatched  closed|void --reopen(reason)--> filed

Each action names the roles allowed to take it (admin may take any). Every transition is an audit row.
Deadlines are set per class and stage in working hours when a case enters a stage.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from enum import StrEnum

from hub import errors
from hub.cases.workcal import WorkingCalendar
from hub.errors import Refused


class CaseStatus(StrEnum):
    PENDING_REVIEW = "pending_review"
    FILED = "filed"
    VOID = "void"
    DISPATCHED = "dispatched"
    IN_PROGRESS = "in_progress"
    HANDLED = "handled"
    VERIFIED = "verified"
    CLOSED = "closed"


class Role(StrEnum):
    ADMIN = "admin"
    REVIEWER = "reviewer"  # reviews captures, files or voids them; inspects and closes
    DISPATCHER = "dispatcher"
    HANDLER = "handler"  # a responsible unit's worker
    READER = "reader"
    SENSOR = "sensor"  # an IoT gateway or integration that may only report problems


# Cases that still absorb repeats of their problem (void: so a rejected false alarm doesn't respawn).
DEDUP_STATUSES = frozenset(
    {
        CaseStatus.PENDING_REVIEW,
        CaseStatus.FILED,
        CaseStatus.DISPATCHED,
        CaseStatus.IN_PROGRESS,
        CaseStatus.HANDLED,
        CaseStatus.VOID,
    }
)
# A problem seen again at the place of one of these opens a new case linked to it.
RECURRENCE_STATUSES = frozenset({CaseStatus.VERIFIED, CaseStatus.CLOSED})
TERMINAL_STATUSES = frozenset({CaseStatus.VOID, CaseStatus.CLOSED})
OPEN311_CLOSED = frozenset({CaseStatus.VOID, CaseStatus.VERIFIED, CaseStatus.CLOSED})


class Action(StrEnum):
    CONFIRM = "confirm"
    VOID = "void"
    DISPATCH = "dispatch"
    RETURN = "return"
    START = "start"
    HANDLE = "handle"
    VERIFY = "verify"
    REWORK = "rework"
    CLOSE = "close"
    REOPEN = "reopen"


@dataclass(frozen=True)
class Rule:
    sources: frozenset[CaseStatus]
    target: CaseStatus
    roles: frozenset[Role]
    needs_note: bool = False
    needs_photo: bool = False


def _rule(sources: set[CaseStatus], target: CaseStatus, roles: set[Role], **kw: bool) -> Rule:
    return Rule(frozenset(sources), target, frozenset(roles | {Role.ADMIN}), **kw)


S = CaseStatus
RULES: dict[Action, Rule] = {
    Action.CONFIRM: _rule({S.PENDING_REVIEW}, S.FILED, {Role.REVIEWER}),
    Action.VOID: _rule({S.PENDING_REVIEW}, S.VOID, {Role.REVIEWER}, needs_note=True),
    Action.DISPATCH: _rule({S.FILED}, S.DISPATCHED, {Role.DISPATCHER}),
    Action.RETURN: _rule({S.DISPATCHED}, S.FILED, {Role.HANDLER, Role.DISPATCHER}, needs_note=True),
    Action.START: _rule({S.DISPATCHED}, S.IN_PROGRESS, {Role.HANDLER}),
    Action.HANDLE: _rule({S.IN_PROGRESS}, S.HANDLED, {Role.HANDLER}, needs_note=True, needs_photo=True),
    Action.VERIFY: _rule({S.HANDLED}, S.VERIFIED, {Role.REVIEWER}),
    Action.REWORK: _rule({S.HANDLED, S.VERIFIED}, S.DISPATCHED, {Role.REVIEWER}, needs_note=True),
    Action.CLOSE: _rule({S.VERIFIED}, S.CLOSED, {Role.REVIEWER}),
    Action.REOPEN: _rule({S.CLOSED, S.VOID}, S.FILED, {Role.REVIEWER}, needs_note=True),
}
OPEN_ACTION = "open"  # a case is opened by its first report (hub.cases.dedup.decide)
AUTO_VERIFY_ACTION = "auto_verify"  # the edge reported the problem cleared at the place
OVERDUE_ACTION = "overdue"  # timeline only: the stage deadline passed (hub.cases.overdue); the status is unchanged
UNDO_ACTION = "undo"  # the actor of a confirm or void took it back within the grace period
# Review decisions a reviewer may take back for a short while (a slip of the key): the case returns to
# the status and values it had, and the undo is an audit row of its own. Later actions are undone by
# the lifecycle's own moves (return, rework, reopen), which name a reason.
UNDOABLE = frozenset({Action.CONFIRM, Action.VOID})


class TransitionError(Refused):
    """A refused transition, with its code (hub.errors) and so its HTTP status."""


class CaseNotFound(TransitionError):
    def __init__(self, case_id: str) -> None:
        super().__init__(errors.CASE_NOT_FOUND, f"no case {case_id!r}", case_id=case_id)


class IllegalTransition(TransitionError):
    pass


class TransitionForbidden(TransitionError):
    pass


class TransitionInputError(TransitionError):
    pass


def check_transition(action: Action, current: CaseStatus, role: Role, note: str | None, photo: str | None) -> Rule:
    """The rule for `action` from `current`, or a typed error saying why it is refused."""
    rule = RULES[action]
    if role not in rule.roles:
        allowed = ", ".join(sorted(r.value for r in rule.roles))
        raise TransitionForbidden(errors.TRANSITION_FORBIDDEN, f"role {role.value!r} may not {action.value} a case "
                                  f"(allowed: {allowed})", role=role.value, action=action.value)
    if current not in rule.sources:
        sources = ", ".join(sorted(s.value for s in rule.sources))
        raise IllegalTransition(
            errors.ILLEGAL_TRANSITION,
            f"cannot {action.value} a case that is {current.value}; {action.value} applies to: {sources}",
            action=action.value, status=current.value,
        )
    if rule.needs_note and not (note and note.strip()):
        raise TransitionInputError(errors.NEEDS_NOTE, f"{action.value} needs a note giving the reason",
                                   action=action.value)
    if rule.needs_photo and not photo:
        raise TransitionInputError(errors.NEEDS_PHOTO, f"{action.value} needs photo_sha256: upload the feedback "
                                   "photo first", action=action.value)
    return rule


def check_undo(last_action: str | None, last_actor: str | None, last_to: str | None, seconds_ago: float, *,
               actor: str, current: CaseStatus, grace_s: float) -> Action:
    """The action the case's last transition took, if `actor` may undo it now; else a typed error saying why."""
    undoable = ", ".join(sorted(a.value for a in UNDOABLE))
    if last_action not in {a.value for a in UNDOABLE}:
        raise IllegalTransition(errors.NOTHING_TO_UNDO, f"nothing to undo: the last change of this case was "
                                f"{last_action or 'its opening'} (undo takes back {undoable})")
    if last_actor != actor:
        raise TransitionForbidden(errors.UNDO_NOT_YOURS, f"only {last_actor} may undo their {last_action}",
                                  actor=last_actor, action=last_action)
    if last_to != current.value:
        raise IllegalTransition(errors.UNDO_SUPERSEDED, f"cannot undo {last_action}: the case is {current.value} now",
                                action=last_action, status=current.value)
    if seconds_ago > grace_s:
        raise IllegalTransition(errors.UNDO_LATE, f"the undo period ({grace_s:.0f} s) is over: the {last_action} "
                                f"was {seconds_ago:.0f} s ago; reopen the case instead", seconds=round(grace_s))
    return Action(last_action)


def allowed_actions(current: CaseStatus, role: Role) -> list[Action]:
    return [a for a, r in RULES.items() if current in r.sources and role in r.roles]


@dataclass(frozen=True)
class StageHours:
    """Working hours allowed in each stage; `handle` falls back to the class SLA."""

    review: float = 4.0  # intake: half a working day
    dispatch: float = 2.0
    handle: float | None = None  # None: the class's catalog SLA
    verify: float = 4.0
    close: float = 4.0


class Deadlines:
    """When a case entering a stage must leave it, in the working calendar."""

    def __init__(
        self,
        calendar: WorkingCalendar,
        class_sla_hours: Callable[[str], float | None],
        stages: StageHours | None = None,
    ) -> None:
        self.calendar = calendar
        self.class_sla_hours = class_sla_hours
        self.stages = stages or StageHours()

    def hours(self, class_id: str, status: CaseStatus) -> float | None:
        s = self.stages
        if status in (CaseStatus.DISPATCHED, CaseStatus.IN_PROGRESS):
            return s.handle if s.handle is not None else (self.class_sla_hours(class_id) or 8.0)
        return {
            CaseStatus.PENDING_REVIEW: s.review,
            CaseStatus.FILED: s.dispatch,
            CaseStatus.HANDLED: s.verify,
            CaseStatus.VERIFIED: s.close,
        }.get(status)

    def deadline(self, class_id: str, status: CaseStatus, start: datetime) -> datetime | None:
        hours = self.hours(class_id, status)
        return None if hours is None else self.calendar.add_working_hours(start, hours)
