"""What every page says about the line above its content: the mode banner and the one-line
alerts. The scripts in static/ build the same lines from /api/status to keep them live."""

from __future__ import annotations

from inspector.line.status import LineStatus

MODE_BANNERS = {
    "none": ("info", "No VLM configured: verdicts come from the ONNX detector alone. "
                     "Every flagged part fails; nothing has been double-checked by a VLM."),
    "test_model": ("warn", "TEST MODEL: the VLM is a tiny random-weight model generated for testing. "
                           "Its words mean nothing; its verdicts are noise."),
    "vlm": ("", ""),
    "plant": ("info", "Plant-wide dashboard: the verdicts of every box from the shared database. Live "
                      "pictures, triggers and each line's health are on each box's own dashboard."),
}


def vlm_down_text(st: LineStatus) -> str:
    """The operator's one-line warning while the VLM circuit is open ('' when it is fine).
    feed.js builds the same line from /api/status to keep it live."""
    b = st.breaker
    if b.state == "closed":
        return ""
    return (f"VLM unavailable: parts that need it go to review. Last error: {b.last_error or ''}. "
            f"{st.vlm_backlog} crop(s) kept to ask again when it is back.")


def line_down_text(st: LineStatus) -> str:
    """The alert while the line behind a separate dashboard is not running ('' while it runs).
    status.js mirrors it."""
    if st.line.up:
        return ""
    return (f"The line is not running ({st.line.error}). Nothing is being inspected; "
            f"the verdicts shown are history.")


def disk_text(st: LineStatus) -> str:
    """The alert while pictures are not being saved ('' when they are). feed.js mirrors it."""
    s = st.store
    if s is None or not s.images_paused:
        return ""
    return (f"Pictures are not being saved: {s.images_paused_reason}. Verdicts are still recorded; "
            f"{s.images_skipped} picture(s) skipped so far. Free disk space or raise the budget.")
