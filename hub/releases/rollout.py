"""When a canary is judged: promote the new model to the rest of the cameras, wait, or roll back.

Pure: the figures come from the caller (void rate from reviewed cases, detect time from heartbeats),
each per model version over the same cameras and period. A canary is rolled back as soon as either
figure is worse than the model it replaced by more than the policy's margin, and promoted once it
has enough reviewed cases and time in service without being worse.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum

from pydantic import BaseModel, ConfigDict, Field


class RolloutPolicy(BaseModel):
    """Margins a canary may not exceed, and how much evidence a verdict needs."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    void_margin: float = Field(default=0.10, ge=0, le=1,
                               description="roll back when the canary's void rate exceeds the old model's by this")
    detect_margin: float = Field(default=0.30, ge=0,
                                 description="roll back when its detect time exceeds the old one's by this share")
    min_reviewed: int = Field(default=20, ge=1, description="reviewed cases (confirmed or void) before judging voids")
    min_detect_samples: int = Field(default=3, ge=1, description="heartbeats with a detect time before judging it")
    min_hours: float = Field(default=24.0, ge=0, description="time in service before promotion")


@dataclass(frozen=True)
class VersionFigures:
    """One model version on a set of cameras over a period."""

    reviewed: int = 0  # cases confirmed or voided
    voided: int = 0
    detect_ms: float | None = None  # mean inference time per frame from heartbeats
    detect_samples: int = 0
    hours: float = 0.0  # time in service

    @property
    def void_rate(self) -> float | None:
        return self.voided / self.reviewed if self.reviewed else None


class Verdict(StrEnum):
    WAIT = "wait"
    PROMOTE = "promote"
    ROLLBACK = "rollback"


@dataclass(frozen=True)
class Judgement:
    verdict: Verdict
    reason: str


def judge_canary(old: VersionFigures, new: VersionFigures, policy: RolloutPolicy) -> Judgement:
    if (new.detect_samples >= policy.min_detect_samples and old.detect_ms and new.detect_ms is not None
            and new.detect_ms > old.detect_ms * (1 + policy.detect_margin)):
        return Judgement(Verdict.ROLLBACK, f"detect time {new.detect_ms:.1f} ms > {old.detect_ms:.1f} ms "
                         f"+ {policy.detect_margin:.0%}")
    if new.reviewed >= policy.min_reviewed and old.void_rate is not None:
        rate = new.void_rate or 0.0
        if rate > old.void_rate + policy.void_margin:
            return Judgement(Verdict.ROLLBACK, f"void rate {rate:.2f} ({new.voided}/{new.reviewed}) > "
                             f"{old.void_rate:.2f} + {policy.void_margin:.2f}")
    missing = []
    if new.reviewed < policy.min_reviewed:
        missing.append(f"{new.reviewed}/{policy.min_reviewed} reviewed cases")
    if new.hours < policy.min_hours:
        missing.append(f"{new.hours:.1f}/{policy.min_hours:g} h in service")
    if missing:
        return Judgement(Verdict.WAIT, "waiting for " + ", ".join(missing))
    return Judgement(Verdict.PROMOTE, f"void rate {new.void_rate or 0:.2f} vs {old.void_rate or 0:.2f}, "
                     f"detect {new.detect_ms or 0:.1f} vs {old.detect_ms or 0:.1f} ms over {new.hours:.1f} h")
