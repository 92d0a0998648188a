"""GenICam pixel formats to the line's BGR: each layout built by hand from a known colour picture."""

import numpy as np
import pytest

from inspector.capture.sources.pixel_formats import PFNC, PixelFormatError, name_of, to_bgr

H, W = 8, 12


def _scene() -> np.ndarray:
    """BGR: left third red, middle green, right blue (whole 2x2 cells, so a mosaic keeps them pure)."""
    img = np.zeros((H, W, 3), np.uint8)
    img[:, :4] = (0, 0, 200)
    img[:, 4:8] = (0, 200, 0)
    img[:, 8:] = (200, 0, 0)
    return img


def _mosaic(bgr: np.ndarray, pattern: str) -> np.ndarray:
    """A Bayer sensor's picture: `pattern` names the colours of the top-left 2x2 cell, row by row."""
    idx = {"B": 0, "G": 1, "R": 2}
    out = np.zeros(bgr.shape[:2], bgr.dtype)
    for dy in (0, 1):
        for dx in (0, 1):
            c = idx[{"RG": "RGGB", "GR": "GRBG", "GB": "GBRG", "BG": "BGGR"}[pattern][dy * 2 + dx]]
            out[dy::2, dx::2] = bgr[dy::2, dx::2, c]
    return out


@pytest.mark.parametrize("pattern", ["RG", "GR", "GB", "BG"])
def test_bayer_patterns_come_out_in_their_colours(pattern):
    out = to_bgr(_mosaic(_scene(), pattern), f"Bayer{pattern}8", W, H)
    # inner pixels of each band (edges mix neighbours in any demosaic)
    for (x0, x1), want in (((1, 3), 2), ((5, 7), 1), ((9, 11), 0)):
        band = out[2:6, x0:x1].reshape(-1, 3)
        assert (band.argmax(1) == want).all(), (pattern, band)


def test_a_wrong_bayer_mapping_would_show():
    """OpenCV names patterns from the second row and column: using its BayerRG for a GenICam BayerRG
    sensor swaps red and blue, which the test above would catch."""
    import cv2

    wrong = cv2.cvtColor(_mosaic(_scene(), "RG"), cv2.COLOR_BayerRG2BGR)
    assert wrong[3, 1].argmax() == 0  # the red band came out blue


def test_deep_mono_formats_scale_by_their_bit_depth():
    for bits in (10, 12, 16):
        raw = np.full((H, W), (1 << bits) - 1, np.uint16)
        raw[0, 0] = 1 << (bits - 1)  # half scale
        out = to_bgr(raw.view(np.uint8), f"Mono{bits}", W, H)
        assert out.shape == (H, W, 3) and out.dtype == np.uint8
        assert out[1, 1].tolist() == [255] * 3 and out[0, 0].tolist() == [128] * 3


def test_rgb_bgr_and_alpha_layouts():
    bgr = _scene()
    assert np.array_equal(to_bgr(bgr[..., ::-1].copy(), "RGB8", W, H), bgr)
    assert np.array_equal(to_bgr(bgr, "BGR8", W, H), bgr)
    rgba = np.dstack([bgr[..., ::-1], np.full((H, W), 255, np.uint8)])
    assert np.array_equal(to_bgr(rgba, "RGBa8", W, H), bgr)
    assert np.array_equal(to_bgr(bgr, "BGR8Packed", W, H), bgr)


def test_unconvertible_or_short_buffers_are_clear_errors():
    with pytest.raises(PixelFormatError, match="Mono12Packed cannot be converted to BGR here; set the camera's "
                                               "PixelFormat to one of: Mono8"):
        to_bgr(np.zeros(10, np.uint8), "Mono12Packed", 2, 2)
    with pytest.raises(PixelFormatError, match="needs 288 bytes, the buffer has 100"):
        to_bgr(np.zeros(100, np.uint8), "RGB8", W, H)


def test_pfnc_codes_name_the_formats_both_drivers_report():
    assert name_of(0x01080001) == "Mono8" and name_of(0x01080009) == "BayerRG8" and name_of(0x02180014) == "RGB8"
    assert name_of(0x12345678) == "0x12345678"
    assert len(set(PFNC.values())) == len(PFNC)


def test_padded_rows_are_read_at_their_stride():
    """A camera that pads each row (Aravis' x padding): the padding must not shift the next rows."""
    bgr = _scene()
    pad = 5
    raw = np.zeros((H, W * 3 + pad), np.uint8)
    raw[:, :W * 3] = bgr.reshape(H, W * 3)
    raw[:, W * 3:] = 77  # padding bytes that must not show
    out = to_bgr(raw.reshape(-1), "BGR8", W, H, stride=W * 3 + pad)
    assert np.array_equal(out, bgr)
    with pytest.raises(PixelFormatError):
        to_bgr(raw.reshape(-1)[:100], "BGR8", W, H, stride=W * 3 + pad)


def test_frame_id_gaps_count_lost_frames_across_the_16_bit_wrap():
    """GigE Vision 1.x ids run 1..65535 and wrap to 1 (0 is skipped); a count that starts again
    lower (a new acquisition) is not a loss."""
    from inspector.capture.sources.genicam import GenicamSource, Grab

    def lost(ids):
        return delivered(ids)[1]

    def delivered(ids):
        """(ids read, frames counted lost); a negative id is that frame arriving incomplete."""
        src = GenicamSource.__new__(GenicamSource)
        src.name, src.lost, src._prev_id, src._gone = "cam", 0, None, set()
        src._drv = type("Driver", (), {"id_wrap": 65535})()
        read = []
        for fid in ids:
            g = Grab(None if fid < 0 else np.zeros(1, np.uint8), "Mono8", 1, 1, abs(fid))
            if src._count_lost(g):
                if fid < 0:
                    src.lost += 1  # as read() counts an incomplete frame
                else:
                    read.append(fid)
        return read, src.lost

    assert lost([65533, 65534, 65535, 1, 2]) == 0  # through the wrap, nothing missing
    assert lost([65533, 65534, 65535, 1, 2, 5]) == 2  # 3 and 4 never came
    assert lost([65534, 2]) == 2  # 65535 and 1 lost across the wrap
    assert lost([900, 901, 17, 18]) == 0  # the camera started counting again
    # Aravis closed a frame of a stray late packet after newer ones: not a new count, nothing lost
    assert delivered([10, 11, 12, 13, -11, 14]) == ([10, 11, 12, 13, 14], 0)
    # a frame counted lost that turns up whole later is read and no longer lost; a repeat is dropped
    assert delivered([10, 11, 13, 12, 13, 14]) == ([10, 11, 13, 12, 14], 0)
    assert delivered([10, -11, 12, -11]) == ([10, 12], 1)


def test_yaml_booleans_become_the_off_and_on_entries_of_enumerations():
    from inspector.capture.sources import SourceError
    from inspector.capture.sources.genicam import _value_for

    assert _value_for("enum", False, "ExposureAuto", "c") == "Off"  # YAML reads `ExposureAuto: Off` as False
    assert _value_for("enum", True, "GammaEnable", "c") == "On"
    assert _value_for("bool", "false", "ReverseX", "c") is False and _value_for("bool", 1, "ReverseX", "c") is True
    with pytest.raises(SourceError, match="ReverseX takes true or false, not 'maybe'"):
        _value_for("bool", "maybe", "ReverseX", "c")
    assert _value_for("float", 1200.0, "ExposureTime", "c") == 1200.0
