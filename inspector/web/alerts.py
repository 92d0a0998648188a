"""What every page says about the line above its content: the mode banner and the one-line
alerts. The scripts in static/ build the same lines from /api/status to keep them live."""

from __future__ import annotations

MODE_BANNERS = {
    "none": ("info", "No VLM configured: verdicts come from the ONNX detector alone. "
                     "Every flagged part fails; nothing has been double-checked by a VLM."),
    "test_model": ("warn", "TEST MODEL: the VLM is a tiny random-weight model generated for testing. "
                           "Its words mean nothing; its verdicts are noise."),
    "vlm": ("", ""),
    "plant": ("info", "Plant-wide dashboard: the verdicts of every box from the shared database. Live "
                      "pictures, triggers and each line's health are on each box's own dashboard."),
}


def vlm_down_text(st: dict) -> str:
    """The operator's one-line warning while the VLM circuit is open ('' when it is fine).
    feed.js builds the same line from /api/status to keep it live."""
    r = st.get("reasoner") or {}
    b = r.get("breaker") or {}
    if b.get("state", "closed") == "closed":
        return ""
    return (f"VLM unavailable: parts that need it go to review. Last error: {b.get('last_error', '')}. "
            f"{st.get('vlm_backlog', 0)} crop(s) kept to ask again when it is back.")


def line_down_text(st: dict) -> str:
    """The alert while the line behind a separate dashboard is not running ('' while it runs).
    status.js mirrors it."""
    line = st.get("line") or {}
    if line.get("up", True):
        return ""
    return (f"The line is not running ({line.get('error')}). Nothing is being inspected; "
            f"the verdicts shown are history.")


def disk_text(st: dict) -> str:
    """The alert while pictures are not being saved ('' when they are). feed.js mirrors it."""
    s = st.get("store") or {}
    if not s.get("images_paused"):
        return ""
    return (f"Pictures are not being saved: {s.get('images_paused_reason')}. Verdicts are still recorded; "
            f"{s.get('images_skipped', 0)} picture(s) skipped so far. Free disk space or raise the budget.")
