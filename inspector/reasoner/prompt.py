"""The question put to the VLM, built from the product recipe and the detector's candidate."""

from __future__ import annotations

import base64
import json

import cv2
import numpy as np

from inspector.config import ProductConfig
from inspector.messages import Crop, Finding
from inspector.reasoner.profiles import Profile

SYSTEM = (
    "You are a visual quality inspector on a production line. You look at a close-up crop of one "
    "part and decide whether it shows a manufacturing defect. Answer only with JSON.")

MARK_BGR = (255, 0, 255)  # magenta: a colour no demo surface and few real parts have


def image_data_url(image: np.ndarray) -> str:
    ok, buf = cv2.imencode(".png", image)
    if not ok:
        raise ValueError("could not encode the crop as PNG")
    return "data:image/png;base64," + base64.b64encode(buf.tobytes()).decode("ascii")


def marked(crop: Crop) -> np.ndarray:
    """The crop with the detector's box drawn on it (1 px, outside the box so no pixel of the
    region itself is covered)."""
    img = crop.image.copy()
    h, w = img.shape[:2]
    x1, y1, x2, y2 = crop.candidate_box_in_crop
    p1 = (max(0, int(np.floor(x1)) - 1), max(0, int(np.floor(y1)) - 1))
    p2 = (min(w - 1, int(np.ceil(x2))), min(h - 1, int(np.ceil(y2))))
    cv2.rectangle(img, p1, p2, MARK_BGR, 1)
    return img


ZOOM_HINT = ("If you need to see a region closer before you answer, answer only {{\"zoom\": {box}}} with the "
             "region as {coords}; you will be shown it at higher resolution, taken from the camera's full "
             "picture.\n")


def question(crop: Crop, product: ProductConfig, profile: Profile, schema: dict, *,
             mark: bool, previous: Finding | None = None, zoom: bool = False) -> str:
    h, w = crop.image.shape[:2]
    cand = profile.format_box(profile.from_pixels(crop.candidate_box_in_crop, w, h))
    taxonomy = "\n".join(f"- {name}: {desc}" for name, desc in product.defects.items())
    if previous is None:
        where = (f"An automatic detector flagged the region {cand} of this image "
                 f"(score {crop.candidate.score:.2f}"
                 f"{'; drawn as a thin magenta rectangle, which is not part of the part' if mark else ''}"
                 f"); it is often wrong. Look at the whole image.\n")
    else:
        where = (f"This is a closer look, at higher resolution, at the region {cand} where a first "
                 f"look saw a possible {previous.defect_type} (confidence {previous.confidence:.2f})"
                 f"{', drawn as a thin magenta rectangle' if mark else ''}. Decide again.\n")
    return (
        f"A good part looks like this: {product.good_part}.\n"
        f"Defect types:\n{taxonomy}\n- other: a defect that fits none of the above\n\n"
        f"{where}"
        f"Give every defect you see with its type, severity (minor, major, critical), your "
        f"confidence from 0 to 1, a short reason, and its box as {profile.describe_coords(w, h)}.\n"
        f"If the part is fine answer verdict \"ok\" with no findings; if you cannot tell, "
        f"\"uncertain\".\n"
        + (ZOOM_HINT.format(box="[x1, y1, x2, y2]", coords=profile.describe_coords(w, h)) if zoom else "")
        + f"JSON schema of the answer:\n{json.dumps(schema, separators=(',', ':'))}"
    )


def messages(crop: Crop, product: ProductConfig, profile: Profile, schema: dict, *,
             mark: bool = True, previous: Finding | None = None, zoom: bool = False) -> list[dict]:
    image = marked(crop) if mark else crop.image
    return [
        {"role": "system", "content": SYSTEM},
        {"role": "user", "content": [
            {"type": "image_url", "image_url": {"url": image_data_url(image)}},
            {"type": "text", "text": question(crop, product, profile, schema, mark=mark,
                                              previous=previous, zoom=zoom)},
        ]},
    ]


def zoom_tool(profile: Profile) -> dict:
    """The zoom function as the family was trained to call it (ERNIE-4.5-VL-Thinking:
    image_zoom_in_tool with bbox_2d in 0-1000 of the image as shown)."""
    return {"type": "function", "function": {
        "name": profile.zoom_tool,
        "description": "Zoom in on a region of the image to look at it more closely; the region is shown "
                       "at higher resolution from the original camera frame.",
        "parameters": {"type": "object", "properties": {
            profile.zoom_box_arg: {"type": "array", "items": {"type": "number"}, "minItems": 4, "maxItems": 4,
                                   "description": "the region as [x1, y1, x2, y2] in the image's coordinates"},
            "label": {"type": "string", "description": "what to look for there"}},
            "required": [profile.zoom_box_arg]}}}


def zoom_reply(call_id: str, zoom: np.ndarray | None, text: str, profile: Profile) -> list[dict]:
    """The tool's answer, as the family's tool style carries it: the zoomed image (in the tool
    message, or in a user message right after it), or only the text of why there is none."""
    if zoom is None:
        return [{"role": "tool", "tool_call_id": call_id, "content": text}]
    image = {"type": "image_url", "image_url": {"url": image_data_url(zoom)}}
    if profile.image_in_tool_message:
        return [{"role": "tool", "tool_call_id": call_id, "content": [image, {"type": "text", "text": text}]}]
    return [{"role": "tool", "tool_call_id": call_id, "content": f"{text} (the image follows)"},
            {"role": "user", "content": [image, {"type": "text", "text": f"The zoomed region for call {call_id}."}]}]


def zoom_turn(zoom: np.ndarray | None, text: str) -> dict:
    """The zoomed region as the next user turn, for backends that take no tool role."""
    image = [{"type": "image_url", "image_url": {"url": image_data_url(zoom)}}] if zoom is not None else []
    return {"role": "user", "content": [*image, {"type": "text", "text": text}]}


def repair_message(error: str) -> dict:
    return {"role": "user", "content": (
        f"Your previous answer could not be used: {error}. Answer again with only a JSON object "
        f"that matches the schema.")}
