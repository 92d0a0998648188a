"""Changeover (issue 25): a camera's product changes while the line runs. Parts already taken
finish with the recipe they were taken under; the next trigger gets the new one; an unknown
recipe is refused and changes nothing; every changeover is recorded and shown."""

import json
from datetime import datetime

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import select
from sqlalchemy.orm import Session

from inspector.config import parse_config
from inspector.config.base import ConfigError
from inspector.demo.line import ROI
from inspector.line.pipeline import Pipeline
from inspector.store.models import Inspection
from inspector.web import create_app
from tests.conftest import authorize, wait_for
from tests.scripted_vlm import ScriptedVLM, answer, completion

A_TEXT = "a flat tile of brick-red stone, recipe A"
B_TEXT = "a flat tile of grey gravel, recipe B"


def _prompt(body) -> str:
    return json.dumps(body.get("messages", []))


def test_changeover_with_parts_in_flight(tmp_path):
    from inspector.demo.line import generate

    line = generate(tmp_path / "line", parts=24, seed=7, defect_rate=0.6)
    with ScriptedVLM(lambda body: (200, completion(answer("ok")), 0.4)) as vlm:
        cfg = parse_config({
            "data_dir": str(tmp_path / "data"), "web": {"enabled": False},
            "products": [{"name": "tile-a", "good_part": A_TEXT, "recipe": 1},
                         {"name": "tile-b", "good_part": B_TEXT, "recipe": 7, "decision_deadline_ms": 5000}],
            "cameras": [{"id": "cam1", "product": "tile-a", "roi": list(ROI),
                         "source": {"type": "folder", "path": str(line.frames_dir), "fps": 8}}],
            "reasoner": {"type": "openai", "base_url": vlm.base_url, "server": "llama_cpp_python",
                         "workers": 1, "timeout_s": 30},
        })
        pipe = Pipeline(cfg)
        pipe.start()
        try:
            with TestClient(create_app(pipe.store, pipe.status, pipe.trigger, recipe=pipe.change_recipe)) as c:
                authorize(c, pipe.store, "operator")
                # Part of the line goes by as A, with the slow VLM still behind on some of it.
                assert wait_for(lambda: pipe.status().cameras[0].frames_inspected >= 8, 30)
                in_flight = pipe.status().vlm_queue
                r = c.post("/api/cameras/cam1/recipe", json={"recipe": 7})
                assert r.status_code == 200 and r.json() == {"camera": "cam1", "from": "tile-a", "to": "tile-b"}
                for bad, why in (({"product": "tile-z"}, "no recipe 'tile-z'"), ({"recipe": 3}, "no recipe 3"),
                                 ({"product": "tile-a", "recipe": 1}, "exactly one"), ({}, "exactly one")):
                    r = c.post("/api/cameras/cam1/recipe", json=bad)
                    assert r.status_code == 422 and why in r.json()["detail"], (bad, r.text)
                assert c.post("/api/cameras/nope/recipe", json={"recipe": 1}).status_code == 404
                assert c.post("/api/cameras/cam1/recipe", json={"product": "../etc"}).status_code == 422
                assert c.get("/api/status").json()["cameras"][0]["product"] == "tile-b", "a refusal changes nothing"
                assert pipe.done.wait(120)
                changes = c.get("/api/recipes").json()
                assert [(x["camera_id"], x["from"], x["to"]) for x in changes] == [("cam1", "tile-a", "tile-b")]
                assert changes[0]["by"].startswith("token:test-operator")
                health = c.get("/health").text
                assert 'id="recipe-changes"' in health and "<b>tile-b</b>" in health
                assert 'class="recipe">tile-b' in health
        finally:
            pipe.stop()
        prompts = [_prompt(b) for b in vlm.requests]

    with Session(pipe.store.engine) as s:
        insps = s.scalars(select(Inspection).order_by(Inspection.seq)).all()
        products = [i.product for i in insps]
        # One switch, at a trigger: A up to some part, B from the next one on.
        k = products.index("tile-b")
        assert k >= 8 and set(products[:k]) == {"tile-a"} and set(products[k:]) == {"tile-b"}
        change_at = datetime.fromisoformat(changes[0]["at"].removesuffix("Z"))
        late_a = [i for i in insps if i.product == "tile-a" and i.verdict.decided_at > change_at]
        # The VLM (0.4 s a crop, one worker) falls behind parts coming at 8 a second: some were
        # still waiting for it at the changeover, and finished as A after it.
        assert in_flight and late_a, "parts the VLM still had at the changeover finish as A"
        crops = {p: sum(len(i.answers) for i in insps if i.product == p) for p in ("tile-a", "tile-b")}
    # Each part was asked about with its own recipe's prompt, before and after the changeover.
    assert sum(A_TEXT in p for p in prompts) == crops["tile-a"] > 0
    assert sum(B_TEXT in p for p in prompts) == crops["tile-b"] > 0
    # B's deadline applied to B's parts only (A has none: its verdicts decided).
    decided = pipe.store.decisions.agreement(product="tile-b")
    assert decided["decisions"] == len(insps) - k


def test_recipe_numbers_and_names_are_unique():
    with pytest.raises(ConfigError, match="recipe numbers must be unique"):
        parse_config({"products": [{"name": "a", "recipe": 1}, {"name": "b", "recipe": 1}]})
    with pytest.raises(ConfigError, match="product names must be unique"):
        parse_config({"products": [{"name": "a"}, {"name": "a"}]})
    cfg = parse_config({"products": [{"name": "a", "recipe": 0}, {"name": "b"}],
                        "cameras": [{"id": "c", "product": "a", "source": {"type": "folder", "path": "."}}]})
    assert cfg.recipe(0).name == "a" and cfg.recipe("b").name == "b"
    with pytest.raises(KeyError):
        cfg.recipe(5)
