"""Edge visual quality inspection."""

import os

__version__ = "0.1.0"

MAX_IMAGE_PIXELS = 100_000_000  # limits.max_image_pixels' default: 300 MB decoded

# OpenCV reads its pixel ceiling once, when it is first imported, so it is set here, before any
# module imports cv2: the second line behind limits.max_image_pixels (see inspector/util/image_file.py).
# 2**28 pixels (16384x16384) is 768 MB decoded; a user's own value of the variable wins.
os.environ.setdefault("OPENCV_IO_MAX_IMAGE_PIXELS", str(1 << 28))


def opencv_limit() -> int:
    """OpenCV's pixel ceiling in this process (OpenCV's default when the variable is not a number)."""
    try:
        return int(os.environ["OPENCV_IO_MAX_IMAGE_PIXELS"])
    except (KeyError, ValueError):
        return 1 << 30
