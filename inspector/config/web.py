"""The dashboard: where it listens, whom it trusts, the plant's clock and shifts."""

from __future__ import annotations

from pathlib import Path

from pydantic import Field, field_validator

from inspector.config.base import _Model


class ShiftConfig(_Model):
    name: str = Field(pattern=r"^[A-Za-z0-9 _.-]{1,32}$")
    start: str = Field(pattern=r"^([01]\d|2[0-3]):(00|15|30|45)$", description="local HH:MM, on a quarter hour")

    @property
    def start_minutes(self) -> int:
        return int(self.start[:2]) * 60 + int(self.start[3:])


class WebConfig(_Model):
    enabled: bool = True
    host: str = Field("127.0.0.1", description="127.0.0.1 = this box only; 0.0.0.0 to serve the plant "
                                                "network (put TLS in front and set secure_cookies)")
    secure_cookies: bool = Field(False, description="send the session cookie over HTTPS only (set it "
                                                    "when a TLS proxy is in front)")
    port: int = Field(8080, ge=1, le=65535)
    trusted_proxies: list[str] = Field(default_factory=list, description=(
        "addresses (10.0.0.5) or networks (10.0.0.0/24) of the reverse proxies in front: only requests "
        "from these may name the client in X-Forwarded-For / X-Forwarded-Proto; none by default, so "
        "a client cannot pose as another (the login limit counts per client address)"))
    line_socket: Path | None = Field(None, description="the running line's Unix socket, through which a "
                                                       "separate dashboard (`inspector web`) shows its "
                                                       "status and live pictures; None = "
                                                       "<data_dir>/line.sock")
    plant_wide: bool = Field(False, description="`inspector web` only: a plant-wide dashboard over a "
                                                "shared database (store.url) with no line on this box: "
                                                "every box's verdicts, no live pictures or triggers")
    timezone: str = Field("UTC", description="the plant's IANA time zone (Europe/Berlin, Asia/Kolkata): "
                                             "stats hours and shifts are counted in it")
    shifts: list[ShiftConfig] = Field(
        default_factory=lambda: [ShiftConfig(name="early", start="06:00"), ShiftConfig(name="late", start="14:00"),
                                 ShiftConfig(name="night", start="22:00")],
        min_length=1, description="each runs until the next starts; the last one crosses midnight")

    @field_validator("timezone")
    @classmethod
    def _zone(cls, v: str) -> str:
        from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

        try:
            ZoneInfo(v)
        except (ZoneInfoNotFoundError, ValueError):
            raise ValueError(f"unknown time zone {v!r} (an IANA name such as Europe/Berlin)") from None
        return v

    @field_validator("trusted_proxies")
    @classmethod
    def _addresses(cls, v: list[str]) -> list[str]:
        import ipaddress

        for a in v:
            try:
                ipaddress.ip_network(a) if "/" in a else ipaddress.ip_address(a)
            except ValueError:
                raise ValueError(f"{a!r} is not an IP address or network (10.0.0.5, 10.0.0.0/24, "
                                 f"::1; a network's host bits must be 0)") from None
        return v

    @field_validator("shifts")
    @classmethod
    def _ordered(cls, v: list[ShiftConfig]) -> list[ShiftConfig]:
        starts = [s.start_minutes for s in v]
        if starts != sorted(set(starts)) or len({s.name for s in v}) != len(v):
            raise ValueError("shifts must have distinct names and start times, listed in the order of the day")
        return v
