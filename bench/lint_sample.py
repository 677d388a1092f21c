"""A realistic ~150-line module for the lint benchmark (the kind of draft the code agent sends to `lint`)."""

SAMPLE_MODULE = '''"""Parse ISO-8601 durations and do small arithmetic on them."""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import timedelta
from typing import Iterable

_PATTERN = re.compile(
    r"^P(?:(?P<years>\\d+)Y)?(?:(?P<months>\\d+)M)?(?:(?P<weeks>\\d+)W)?(?:(?P<days>\\d+)D)?"
    r"(?:T(?:(?P<hours>\\d+)H)?(?:(?P<minutes>\\d+)M)?(?:(?P<seconds>\\d+(?:\\.\\d+)?)S)?)?$"
)
DAYS_PER_YEAR = 365
DAYS_PER_MONTH = 30


class DurationError(ValueError):
    """Raised when a string is not an ISO-8601 duration."""


@dataclass(frozen=True)
class Duration:
    """A calendar-aware duration: years and months are kept apart from the exact part."""

    years: int = 0
    months: int = 0
    days: int = 0
    seconds: float = 0.0

    def __add__(self, other):
        if not isinstance(other, Duration):
            return NotImplemented
        return Duration(
            self.years + other.years,
            self.months + other.months,
            self.days + other.days,
            self.seconds + other.seconds,
        )

    def __neg__(self) -> "Duration":
        return Duration(-self.years, -self.months, -self.days, -self.seconds)

    def __sub__(self, other: "Duration") -> "Duration":
        return self + (-other)

    def is_zero(self) -> bool:
        """True when every component is zero."""
        return not (self.years or self.months or self.days or self.seconds)

    def approximate(self) -> timedelta:
        """A timedelta using 365-day years and 30-day months (an approximation, by design)."""
        days = self.years * DAYS_PER_YEAR + self.months * DAYS_PER_MONTH + self.days
        return timedelta(days=days, seconds=self.seconds)

    def to_iso(self) -> str:
        """Format back to ISO-8601, the shortest form."""
        if self.is_zero():
            return "PT0S"
        date = ""
        if self.years:
            date += f"{self.years}Y"
        if self.months:
            date += f"{self.months}M"
        if self.days:
            date += f"{self.days}D"
        time = ""
        seconds = self.seconds
        hours, seconds = divmod(seconds, 3600)
        minutes, seconds = divmod(seconds, 60)
        if hours:
            time += f"{int(hours)}H"
        if minutes:
            time += f"{int(minutes)}M"
        if seconds:
            time += f"{seconds:g}S"
        return "P" + date + ("T" + time if time else "")


def parse_duration(text: str) -> Duration:
    """Parse an ISO-8601 duration such as ``P1Y2M10DT2H30M``."""
    match = _PATTERN.match(text.strip())
    if not match or text.strip() in ("P", "PT"):
        raise DurationError(f"not an ISO-8601 duration: {text!r}")
    parts = {k: v for k, v in match.groupdict().items() if v is not None}
    weeks = int(parts.get("weeks", 0))
    seconds = (
        int(parts.get("hours", 0)) * 3600
        + int(parts.get("minutes", 0)) * 60
        + float(parts.get("seconds", 0))
    )
    return Duration(
        years=int(parts.get("years", 0)),
        months=int(parts.get("months", 0)),
        days=int(parts.get("days", 0)) + 7 * weeks,
        seconds=seconds,
    )


def total(durations: Iterable[Duration]) -> Duration:
    """The sum of many durations."""
    result = Duration()
    for d in durations:
        result = result + d
    return result


def longest(durations):
    best = None
    for d in durations:
        if best == None or d.approximate() > best.approximate():
            best = d
    return best


def parse_many(lines, strict=True):
    out = []
    errors = []
    for i, line in enumerate(lines):
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        try:
            out.append(parse_duration(line))
        except DurationError as e:
            if strict:
                raise
            errors.append((i, str(e)))
    return out, errors


def humanize(duration: Duration) -> str:
    """A short English rendering, e.g. '1 year, 2 days'."""
    names = [("year", duration.years), ("month", duration.months), ("day", duration.days)]
    words = []
    for name, value in names:
        if value:
            words.append(f"{value} {name}" + ("s" if abs(value) != 1 else ""))
    if duration.seconds:
        words.append(f"{duration.seconds:g} seconds")
    return ", ".join(words) or "no time"


def _self_check():
    import json
    cases = ["P1Y", "PT1H30M", "P2W", "P1DT0.5S"]
    for case in cases:
        parsed = parse_duration(case)
        assert parse_duration(parsed.to_iso()) == parsed, case
    print(json.dumps([humanize(parse_duration(c)) for c in cases]))


if __name__ == "__main__":
    _self_check()
'''
