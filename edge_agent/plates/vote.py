"""Votes across the frames of one track: one blurred or glared frame must not decide the plate."""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field

from edge_agent.plates.reader import PlateRead
from protocol.plates import PlateColour


@dataclass(frozen=True, slots=True)
class Verdict:
    """What the reads of one track agree on; `text` None when no read was legible."""

    text: str | None
    colour: PlateColour | None
    score: float  # mean score of the reads that agreed
    frames: int  # reads that agreed on `text`
    attempts: int  # frames read


@dataclass
class PlateVote:
    """The reads of one track. `add(None)` records a frame read without a legible plate."""

    reads: list[PlateRead] = field(default_factory=list)
    attempts: int = 0

    def add(self, read: PlateRead | None) -> None:
        self.attempts += 1
        if read is not None:
            self.reads.append(read)

    def verdict(self) -> Verdict:
        """The text with the most score summed over its reads; its colour by majority of those reads."""
        if not self.reads:
            return Verdict(None, None, 0.0, 0, self.attempts)
        totals: dict[str, float] = {}
        for r in self.reads:
            totals[r.text] = totals.get(r.text, 0.0) + r.score
        text = max(totals, key=totals.__getitem__)
        agreed = [r for r in self.reads if r.text == text]
        colour = Counter(r.colour for r in agreed).most_common(1)[0][0]
        return Verdict(text, colour, sum(r.score for r in agreed) / len(agreed), len(agreed), self.attempts)

    def agreed(self) -> int:
        return self.verdict().frames
