"""Times on the plant's clock: the pages show stored times (UTC) as the people at the line read
them, and read their forms' times in the plant's zone; the JSON API stays UTC."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timezone, tzinfo


@dataclass(frozen=True)
class PlantClock:
    tz: tzinfo

    def plant_time(self, iso: str | float | None, fmt: str = "%Y-%m-%d %H:%M:%S") -> str:
        """A stored time (ISO, UTC; or seconds since the epoch, as the live status has them) as the
        plant's clock shows it: what the people at the line read."""
        if not iso:
            return ""
        t = datetime.fromtimestamp(iso, timezone.utc) if isinstance(iso, (int, float)) else datetime.fromisoformat(iso)
        return (t if t.tzinfo else t.replace(tzinfo=timezone.utc)).astimezone(self.tz).strftime(fmt)

    def plant_local(self, t: datetime | None) -> datetime | None:
        """A form's time without a zone is the plant's (the pages label their fields so); the JSON
        API's are UTC."""
        return t.replace(tzinfo=self.tz) if t is not None and t.tzinfo is None else t

    def form_value(self, t: datetime | None) -> str:
        return t.astimezone(self.tz).strftime("%Y-%m-%dT%H:%M") if t is not None else ""
