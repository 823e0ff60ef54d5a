"""Quiet hours: local times when only urgent messages go out."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, time
from zoneinfo import ZoneInfo


@dataclass(frozen=True)
class QuietHours:
    """Local times between which non-urgent messages wait, e.g. 22:00-08:00 (across midnight)."""

    start: time
    end: time

    @classmethod
    def parse(cls, text: str) -> QuietHours | None:
        """`HH:MM-HH:MM`, or empty for none."""
        if not text.strip():
            return None
        try:
            start, end = (time.fromisoformat(part.strip()) for part in text.split("-"))
        except ValueError:
            raise ValueError(
                f"quiet hours {text!r}: write them as HH:MM-HH:MM, e.g. 22:00-08:00"
            ) from None
        if start == end:
            raise ValueError(f"quiet hours {text!r} start and end at the same time")
        return cls(start, end)

    def contains(self, instant: datetime, tz: ZoneInfo) -> bool:
        local = instant.astimezone(tz).time().replace(tzinfo=None)
        if self.start < self.end:
            return self.start <= local < self.end
        return local >= self.start or local < self.end
