"""Outbound events: verdicts pushed to other systems (webhook, MQTT) as they are stored.

Delivery is at least once and in order per sink. Each sink keeps a cursor (the last inspection
id it delivered) in the data directory and reads what comes after it from the database, so the
database is the outbox: a receiver that is down, a restart or a crash in between loses nothing,
and nothing but a cursor file is stored twice. Receivers deduplicate by the event's `uid`.
"""

from inspector.events.sender import EventSender, build_senders
from inspector.events.sinks import SinkError

__all__ = ["EventSender", "SinkError", "build_senders"]
