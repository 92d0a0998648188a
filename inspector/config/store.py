"""Where verdicts and pictures are kept, and for how long."""

from __future__ import annotations

from typing import Literal

from pydantic import Field, field_validator

from inspector.config.base import _Model
from inspector.config.judge import VerdictKindName


class RetentionConfig(_Model):
    """Which pictures go when. Verdict rows are never deleted by retention; pictures are."""

    max_age_days: float | None = Field(30, gt=0, description="pictures older than this are deleted "
                                                             "(None = kept until the budget needs room)")
    keep_unreviewed_fail_days: float = Field(
        14, ge=0, description="pictures of fail verdicts nobody has reviewed are kept at least this "
                              "long, by age and by budget alike (when only they are left, the store "
                              "stops writing new pictures instead)")
    budget_gb: float | None = Field(None, gt=0, description="most disk the pictures may take; None = "
                                                            "no budget (min_free_mb still holds)")
    min_free_mb: float = Field(500, ge=0, description="free space kept on the data directory's disk "
                                                      "(the database and the spool need room too)")
    interval_s: float = Field(60, gt=0, description="how often retention runs")


class StoreConfig(_Model):
    url: str | None = Field(None, description="SQLAlchemy URL: sqlite:///path or "
                                              "postgresql+psycopg://user@host/db; None = "
                                              "<data_dir>/inspector.db")
    jpeg_quality: int = Field(90, ge=10, le=100)
    save_frames: list[VerdictKindName] = Field(["fail", "review"], description="full frames kept for")
    save_crops: list[VerdictKindName] = Field(["fail", "review"], description="crops the VLM saw, kept for")
    save_thumbnails: list[VerdictKindName] = Field(["fail", "review"], description="feed thumbnails kept for")
    thumbnail_px: int = Field(320, ge=32, le=2048, description="longest side of a thumbnail")
    synchronous: Literal["normal", "full"] = Field(
        "normal", description="SQLite: normal (WAL) survives a crash of the process or kill -9 but "
                              "may lose the last transactions on power loss; full fsyncs every "
                              "commit and survives power loss too, at a lower write rate")
    batch_max: int = Field(500, ge=1, description="verdicts per transaction at most")
    batch_wait_ms: float = Field(0, ge=0, description="how long the writer waits to fill a batch (0: "
                                                       "it takes what is waiting; batches grow under load)")
    queue_size: int = Field(20000, ge=1, description="verdicts waiting for the writer at most "
                                                     "(when full, the stages that made them wait)")
    busy_timeout_s: float = Field(30.0, gt=0, le=600, description="SQLite: how long a write waits for "
                                                                  "another process's lock before the "
                                                                  "writer reports it and retries")
    retention: RetentionConfig = Field(default_factory=RetentionConfig)

    @field_validator("url")
    @classmethod
    def _known_database(cls, url: str | None) -> str | None:
        # Checked here so that a typo is named with its key at load, not met as a traceback from
        # SQLAlchemy when the store opens (the message never repeats the URL: it may hold a password).
        if url is None:
            return url
        from sqlalchemy.engine import make_url
        from sqlalchemy.exc import ArgumentError

        try:
            u = make_url(url)
        except ArgumentError:
            raise ValueError("not a database URL; expected sqlite:///path/to/inspector.db or "
                             "postgresql+psycopg://user@host/db") from None
        if u.get_backend_name() not in ("sqlite", "postgresql"):
            raise ValueError(f"database {u.get_backend_name()!r} is not supported; use sqlite:///path "
                             f"or postgresql+psycopg://user@host/db")
        if u.get_backend_name() == "postgresql" and u.get_driver_name() != "psycopg":
            raise ValueError(f"driver {u.get_driver_name()!r} is not supported for PostgreSQL; use "
                             f"postgresql+psycopg://")
        if u.get_backend_name() == "sqlite" and not u.database:
            raise ValueError("an SQLite URL needs a file: sqlite:///path/to/inspector.db")
        return url
