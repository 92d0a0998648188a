"""Geometric camera calibration from checkerboard photographs, and undistortion for the loop.

`inspector calibrate camera --camera ID --images DIR --board 9x6 --square-mm 25 [--scale IMAGE]`
finds the board's inner corners in every photograph (sub-pixel), fits the camera's intrinsics and
lens distortion (OpenCV's pinhole + radial/tangential model), and writes
`calibration/<camera>.yaml`. With `--scale`, a photograph of the board lying on the working plane
gives millimetres per pixel there, so findings get sizes and positions in mm.

The line undistorts that camera's frames with remap maps computed once at start (the per-frame cost
is one cv2.remap), and takes mm_per_px from the file unless the config sets it.
"""

from __future__ import annotations

import re
from datetime import datetime, timezone
from pathlib import Path

import cv2
import numpy as np
import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from inspector.errors import InspectorError
from inspector import MAX_IMAGE_PIXELS
from inspector.util.atomic_write import write_yaml_model
from inspector.util.image_file import ImageError, read_image

SUBPIX = (cv2.TERM_CRITERIA_EPS + cv2.TERM_CRITERIA_COUNT, 50, 1e-4)
MIN_VIEWS = 3  # OpenCV needs a few views at different angles to separate focal length from distance
TILT_WARN = 0.02  # the scale photo's x and y spacing differ by more: the board is not flat-on


class CameraCalibrationError(InspectorError, ValueError):
    """A calibration that cannot be made or used; the message says what to do."""


class CameraCalibration(BaseModel):
    model_config = ConfigDict(extra="forbid")
    camera: str
    image_size: tuple[int, int]  # (width, height) the intrinsics hold for
    camera_matrix: list[list[float]]
    dist_coeffs: list[float]
    reprojection_error_px: float  # RMS over every corner of every view
    per_view_error_px: dict[str, float]
    board: tuple[int, int]  # inner corners (columns x rows)
    square_mm: float = Field(gt=0)
    mm_per_px: float | None = Field(None, gt=0)  # on the working plane, from --scale
    scale_image: str | None = None
    created: str = ""

    def matrices(self) -> tuple[np.ndarray, np.ndarray]:
        return np.array(self.camera_matrix, np.float64), np.array(self.dist_coeffs, np.float64)


def parse_board(text: str) -> tuple[int, int]:
    m = re.fullmatch(r"\s*(\d+)\s*[xX]\s*(\d+)\s*", text or "")
    if not m or min(int(m[1]), int(m[2])) < 2:
        raise CameraCalibrationError(f"--board {text!r}: expected inner corners as COLSxROWS, e.g. 9x6 "
                                     f"(a board of 10x7 squares)")
    return int(m[1]), int(m[2])


def board_points(board: tuple[int, int], square_mm: float) -> np.ndarray:
    obj = np.zeros((board[0] * board[1], 3), np.float32)
    obj[:, :2] = np.mgrid[0:board[0], 0:board[1]].T.reshape(-1, 2) * square_mm
    return obj


def find_corners(gray: np.ndarray, board: tuple[int, int]) -> np.ndarray | None:
    """The board's inner corners to sub-pixel accuracy, [N, 1, 2] float32, or None."""
    flags = cv2.CALIB_CB_ADAPTIVE_THRESH | cv2.CALIB_CB_NORMALIZE_IMAGE
    ok, corners = cv2.findChessboardCorners(gray, board, flags=flags)
    if not ok:
        return None
    corners = cv2.cornerSubPix(gray, corners, (11, 11), (-1, -1), SUBPIX)
    return corners.reshape(-1, 1, 2)  # OpenCV 5 returns [N, 2], 4.x [N, 1, 2]


def calibrate(camera: str, images: list[Path], board: tuple[int, int], square_mm: float,
              progress=None, max_pixels: int = MAX_IMAGE_PIXELS) -> tuple[CameraCalibration, list[str]]:
    """Fit intrinsics and distortion; returns the calibration and the images not used (why)."""
    obj = board_points(board, square_mm)
    objs, corners, names, skipped, size = [], [], [], [], None
    for i, p in enumerate(images, 1):
        try:
            g = read_image(p, max_pixels, cv2.IMREAD_GRAYSCALE)
        except ImageError as e:
            skipped.append(str(e))
        else:
            if size is not None and (g.shape[1], g.shape[0]) != size:
                skipped.append(f"{p.name}: {g.shape[1]}x{g.shape[0]}, the others are {size[0]}x{size[1]}")
            elif (c := find_corners(g, board)) is None:
                skipped.append(f"{p.name}: no {board[0]}x{board[1]} board found")
            else:
                size = size or (g.shape[1], g.shape[0])
                objs.append(obj)
                corners.append(c)
                names.append(p.name)
        if progress:
            progress(i, len(images), "finding corners")
    if len(corners) < MIN_VIEWS:
        raise CameraCalibrationError(
            f"the board was found in {len(corners)} of {len(images)} images; calibration needs at least "
            f"{MIN_VIEWS} views of the whole board at different angles"
            + (f" ({'; '.join(skipped[:3])})" if skipped else ""))
    rms, K, dist, rvecs, tvecs = cv2.calibrateCamera(objs, corners, size, None, None)
    per_view = {}
    for n, o, c, r, t in zip(names, objs, corners, rvecs, tvecs):
        proj = cv2.projectPoints(o, r, t, K, dist)[0].reshape(-1, 2)
        per_view[n] = round(float(np.sqrt(np.mean(np.sum((proj - c.reshape(-1, 2)) ** 2, axis=1)))), 4)
    cal = CameraCalibration(camera=camera, image_size=size, camera_matrix=K.tolist(),
                            dist_coeffs=dist.ravel().tolist(), reprojection_error_px=float(rms),
                            per_view_error_px=per_view, board=board, square_mm=square_mm)
    return cal, skipped


def measure_scale(cal: CameraCalibration, image: Path, max_pixels: int = MAX_IMAGE_PIXELS) -> tuple[float, float]:
    """(mm per pixel, relative x/y difference) from a photo of the board lying on the working plane,
    measured on the undistorted corners (as the line sees undistorted frames)."""
    try:
        g = read_image(image, max_pixels, cv2.IMREAD_GRAYSCALE)
    except ImageError as e:
        raise CameraCalibrationError(f"--scale {e}") from None
    if (g.shape[1], g.shape[0]) != tuple(cal.image_size):
        raise CameraCalibrationError(f"--scale {image}: {g.shape[1]}x{g.shape[0]}, but the calibration "
                                     f"is for {cal.image_size[0]}x{cal.image_size[1]}")
    c = find_corners(g, tuple(cal.board))
    if c is None:
        raise CameraCalibrationError(f"--scale {image}: no {cal.board[0]}x{cal.board[1]} board found")
    K, dist = cal.matrices()
    und = cv2.undistortPoints(c, K, dist, P=K).reshape(cal.board[1], cal.board[0], 2)
    along_x = np.linalg.norm(np.diff(und, axis=1), axis=2).mean()
    along_y = np.linalg.norm(np.diff(und, axis=0), axis=2).mean()
    px_per_square = (along_x + along_y) / 2
    return float(cal.square_mm / px_per_square), float(abs(along_x - along_y) / px_per_square)


def path_for(directory: Path, camera: str) -> Path:
    return Path(directory) / f"{camera}.yaml"


def save(directory: Path, cal: CameraCalibration) -> Path:
    p = path_for(directory, cal.camera)
    if p.exists():
        try:
            doc = yaml.safe_load(p.read_text())
        except (OSError, yaml.YAMLError):
            doc = None
        if isinstance(doc, dict) and "product" in doc and "camera_matrix" not in doc:
            raise CameraCalibrationError(f"{p} is the calibration of product {doc['product']!r}; a camera "
                                         f"may not share its name with a product")
    cal.created = cal.created or datetime.now(timezone.utc).isoformat(timespec="seconds")
    return write_yaml_model(p, cal, "written by `inspector calibrate camera`; checkerboard calibration")


def load(directory: Path, camera: str) -> CameraCalibration | None:
    p = path_for(directory, camera)
    if not p.exists():
        return None
    try:
        doc = yaml.safe_load(p.read_text())
        if isinstance(doc, dict) and "camera_matrix" not in doc:
            return None  # a product calibration that shares the name: not ours
        cal = CameraCalibration.model_validate(doc)
    except ValidationError as e:
        why = "; ".join(f"{'.'.join(map(str, er['loc']))}: {er['msg']}" for er in e.errors()[:4])
        raise CameraCalibrationError(f"camera calibration {p} is not usable ({why}); fix it, or run "
                                     f"`inspector calibrate camera --camera {camera}` again") from None
    except (OSError, yaml.YAMLError) as e:
        raise CameraCalibrationError(f"camera calibration {p} is not usable ({e}); fix it, or run "
                                     f"`inspector calibrate camera --camera {camera}` again") from None
    K = np.array(cal.camera_matrix)
    if K.shape != (3, 3) or len(cal.dist_coeffs) not in (4, 5, 8, 12, 14):
        raise CameraCalibrationError(f"camera calibration {p}: camera_matrix must be 3x3 and "
                                     f"dist_coeffs 4, 5, 8, 12 or 14 numbers")
    return cal


class Undistorter:
    """Removes lens distortion from a camera's frames with maps computed once."""

    def __init__(self, cal: CameraCalibration):
        K, dist = cal.matrices()
        self.size = tuple(cal.image_size)
        self.camera = cal.camera
        # Same camera matrix out as in: pixel positions (and mm_per_px) keep their meaning.
        self.map1, self.map2 = cv2.initUndistortRectifyMap(K, dist, None, K, self.size, cv2.CV_16SC2)

    def __call__(self, image: np.ndarray) -> np.ndarray:
        h, w = image.shape[:2]
        if (w, h) != self.size:
            raise CameraCalibrationError(
                f"camera {self.camera}: frame is {w}x{h}, but its calibration is for "
                f"{self.size[0]}x{self.size[1]}; calibrate again at this resolution or set "
                f"cameras[].undistort: false")
        return cv2.remap(image, self.map1, self.map2, cv2.INTER_LINEAR)


def for_camera(directory: Path, cam) -> tuple[Undistorter | None, float | None]:
    """What a configured camera's frames go through: (undistorter or None, mm per pixel or None).
    The config's mm_per_px wins over the file's; undistortion needs `cam.undistort` and a file."""
    cal = load(directory, cam.id)
    if cal is None:
        return None, cam.mm_per_px
    return (Undistorter(cal) if cam.undistort else None), cam.mm_per_px or cal.mm_per_px
