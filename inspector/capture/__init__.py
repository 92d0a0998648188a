"""Getting frames: the sources (folders, videos, live cameras), the per-camera buffers, triggers, orientation, camera geometry (calibration) and the live view."""
