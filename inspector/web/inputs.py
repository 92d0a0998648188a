"""What a request may send, checked before a route runs: times within the calendar, text filters
without NUL, ids that fit the database's integer, the feed's filters and a review."""

from __future__ import annotations

from dataclasses import asdict, dataclass
from datetime import datetime, timezone
from typing import Annotated, Literal
from urllib.parse import urlencode

from fastapi import Path as PathParam
from fastapi import Query
from pydantic import AfterValidator, BaseModel, BeforeValidator, Field

# The times a query may name: none before the Unix epoch (no camera captured then) and none in
# the calendar's last year, so that a zone's offset, the stats' default day before `until` and
# their hour axis never step outside what a datetime can hold (a 500 otherwise).
EARLIEST, LATEST = datetime(1970, 1, 1, tzinfo=timezone.utc), datetime(9999, 1, 1, tzinfo=timezone.utc)


def _in_calendar(t: datetime) -> datetime:
    try:
        utc = t.astimezone(timezone.utc) if t.tzinfo else t.replace(tzinfo=timezone.utc)
    except OverflowError:
        utc = None
    if utc is None or not EARLIEST <= utc < LATEST:
        raise ValueError(f"{t.isoformat()} is out of range: times lie between 1970-01-01 and 9998-12-31")
    return t


# An empty field is no filter: the feed's and stats' forms send every field, filled or not.
When = Annotated[datetime | None, BeforeValidator(lambda v: None if v == "" else v),
                 AfterValidator(lambda t: t if t is None else _in_calendar(t))]


def _no_nul(v: str | None) -> str | None:
    if v is not None and "\x00" in v:  # PostgreSQL refuses it in a query (a 500)
        raise ValueError("must not contain NUL characters")
    return v


Camera = Annotated[str | None, Query(max_length=64), AfterValidator(_no_nul)]
Product = Annotated[str | None, Query(max_length=128), AfterValidator(_no_nul)]
DefectType = Annotated[str | None, Query(max_length=64), AfterValidator(_no_nul)]
PartId = Annotated[str | None, Query(max_length=64, description="a part id: its inspections"), AfterValidator(_no_nul)]

# Ids are 32-bit in PostgreSQL's integer and 64-bit in SQLite; a bigger number in a URL is a 422
# here, not an overflow error in the database driver.
MAX_ID = 2**31 - 1
InspectionId = Annotated[int, PathParam(ge=1, le=MAX_ID, description="an inspection's id")]


def naive_utc(t: datetime | None) -> datetime | None:
    return t.astimezone(timezone.utc).replace(tzinfo=None) if t is not None and t.tzinfo else t


@dataclass
class FeedFilter:
    """The feed's filters, the same for the page, the JSON API and the live event stream."""

    verdict: Literal["pass", "fail", "review"] | None = None
    camera: str | None = None
    product: str | None = None
    defect_type: str | None = None
    since: datetime | None = None
    until: datetime | None = None
    part_id: str | None = None

    def store_args(self) -> dict:
        return {"kind": self.verdict, "camera": self.camera, "product": self.product,
                "defect_type": self.defect_type, "since": naive_utc(self.since), "until": naive_utc(self.until),
                "part_id": self.part_id}

    def query(self, **extra) -> str:
        d = {k: (v.isoformat() if isinstance(v, datetime) else v) for k, v in {**asdict(self), **extra}.items()}
        return urlencode({k: v for k, v in d.items() if v not in (None, "")})


def feed_filter(verdict: Literal["pass", "fail", "review", ""] | None = None, camera: Camera = None,
                product: Product = None, defect_type: DefectType = None, since: When = None,
                until: When = None, part_id: PartId = None) -> FeedFilter:
    return FeedFilter(verdict or None, camera or None, product or None, defect_type or None, since, until,
                      (part_id or "").strip() or None)


class ReviewIn(BaseModel):
    verdict: Literal["pass", "fail", "review"]
    note: str = Field("", max_length=2000)
    defect_type: str | None = Field(None, min_length=1, max_length=64)
