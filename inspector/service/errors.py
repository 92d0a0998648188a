"""What stops a start before anything runs: a port taken, a data directory or database held by
another line, a store, a pipeline or a dashboard that cannot be made."""

from __future__ import annotations

from inspector.errors import InspectorError


class StartError(InspectorError):
    """Said by the command line as one line (`inspector: ...`), exit code 2."""
