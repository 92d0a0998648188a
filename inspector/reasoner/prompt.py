"""The question put to the VLM, built from the product recipe and the detector's candidate."""

from __future__ import annotations

import base64
import json

import cv2

from inspector.config import ProductConfig
from inspector.messages import Crop
from inspector.reasoner.profiles import Profile

SYSTEM = (
    "You are a visual quality inspector on a production line. You look at a close-up crop of one "
    "part and decide whether it shows a manufacturing defect. Answer only with JSON.")


def image_data_url(crop: Crop) -> str:
    ok, buf = cv2.imencode(".png", crop.image)
    if not ok:
        raise ValueError(f"could not encode crop {crop.index} as PNG")
    return "data:image/png;base64," + base64.b64encode(buf.tobytes()).decode("ascii")


def question(crop: Crop, product: ProductConfig, profile: Profile, schema: dict) -> str:
    h, w = crop.image.shape[:2]
    cand = profile.from_pixels(crop.candidate_box_in_crop, w, h)
    cand_txt = "[" + ", ".join(f"{v:.0f}" for v in cand) + "]"
    taxonomy = "\n".join(f"- {name}: {desc}" for name, desc in product.defects.items())
    return (
        f"A good part looks like this: {product.good_part}.\n"
        f"Defect types:\n{taxonomy}\n- other: a defect that fits none of the above\n\n"
        f"An automatic detector flagged the region {cand_txt} of this image "
        f"(score {crop.candidate.score:.2f}); it is often wrong. Look at the whole image.\n"
        f"Give every defect you see with its type, severity (minor, major, critical), your "
        f"confidence from 0 to 1, a short reason, and its box as {profile.describe_coords(w, h)}.\n"
        f"If the part is fine answer verdict \"ok\" with no findings; if you cannot tell, "
        f"\"uncertain\".\nJSON schema of the answer:\n{json.dumps(schema, separators=(',', ':'))}"
    )


def messages(crop: Crop, product: ProductConfig, profile: Profile, schema: dict) -> list[dict]:
    return [
        {"role": "system", "content": SYSTEM},
        {"role": "user", "content": [
            {"type": "image_url", "image_url": {"url": image_data_url(crop)}},
            {"type": "text", "text": question(crop, product, profile, schema)},
        ]},
    ]


def repair_message(error: str) -> dict:
    return {"role": "user", "content": (
        f"Your previous answer could not be used: {error}. Answer again with only a JSON object "
        f"that matches the schema.")}
