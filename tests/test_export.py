"""`inspector export`: tables of verdicts, and reviewed defects as COCO / YOLO datasets."""

import csv
import json
import time

import cv2
import numpy as np
import yaml

from inspector.messages import Candidate, CropAnswer, CropReport, Finding, Frame, Severity, Verdict, VerdictKind
from inspector.store import Store
from tests.conftest import run_cli


def _setup(tmp_path):
    data = tmp_path / "data"
    cfg = tmp_path / "line.yaml"
    cfg.write_text(yaml.safe_dump({"data_dir": str(data)}))
    store = Store(f"sqlite:///{(data / 'inspector.db').resolve()}", data)
    img = np.full((100, 200, 3), 120, np.uint8)
    cand = Candidate((10, 20, 50, 60), 0.9, "defect", "det")
    find = Finding("scratch", Severity.major, 0.9, (100, 10, 140, 90), "a line", 0, "vlm")
    rep = CropReport(0, CropAnswer.defect, (find,), (), "{}", "vlm", 5.0)
    ids = {
        "fail_vlm": store.save(Verdict(Frame("cam", 1, img), VerdictKind.fail, "vlm_agreed", "scratch", (cand,), (rep,)), "p", "vlm"),
        "fail_det": store.save(Verdict(Frame("cam", 2, img), VerdictKind.fail, "detector_only", "blob", (cand,), ()), "p", "none"),
        "overruled": store.save(Verdict(Frame("cam", 3, img), VerdictKind.fail, "detector_only", "blob", (cand,), ()), "p", "none"),
        "pass": store.save(Verdict(Frame("cam", 4, img), VerdictKind.passed, "detector_only", "clean", (), ()), "p", "none"),
    }
    store.add_review(ids["fail_vlm"], "anna", "fail")
    store.add_review(ids["fail_det"], "anna", "fail")
    store.add_review(ids["overruled"], "anna", "pass", "glare")
    store.close()
    return cfg, ids


def test_tables_have_every_inspection_with_the_verdict_in_force(tmp_path):
    cfg, ids = _setup(tmp_path)
    p = run_cli("export", "--since", "1h", "--format", "csv", "--out", str(tmp_path / "v.csv"), "--config", str(cfg))
    assert p.returncode == 0, p.stderr
    rows = list(csv.DictReader(open(tmp_path / "v.csv")))
    by_id = {int(r["id"]): r for r in rows}
    assert set(by_id) == set(ids.values())
    assert by_id[ids["overruled"]]["verdict"] == "fail" and by_id[ids["overruled"]]["verdict_in_force"] == "pass"
    assert by_id[ids["fail_vlm"]]["defect_types"] == "scratch"
    p = run_cli("export", "--since", "1h", "--format", "jsonl", "--out", str(tmp_path / "v.jsonl"), "--config", str(cfg))
    lines = [json.loads(x) for x in open(tmp_path / "v.jsonl")]
    assert [x["id"] for x in lines] == sorted(ids.values()) and "4 inspections" in p.stdout
    future = time.strftime("%Y-%m-%dT%H:%M", time.gmtime(time.time() + 3600))
    p = run_cli("export", "--since", future, "--format", "csv", "--out", str(tmp_path / "none.csv"), "--config", str(cfg))
    assert p.returncode == 0 and len(list(csv.DictReader(open(tmp_path / "none.csv")))) == 0


def test_coco_holds_only_reviewed_defects_with_their_boxes(tmp_path):
    cfg, ids = _setup(tmp_path)
    out = tmp_path / "coco"
    p = run_cli("export", "--since", "1d", "--format", "coco", "--out", str(out), "--config", str(cfg))
    assert p.returncode == 0, p.stderr
    doc = json.loads((out / "annotations.json").read_text())
    assert sorted(i["id"] for i in doc["images"]) == sorted([ids["fail_vlm"], ids["fail_det"]])
    cats = {c["name"]: c["id"] for c in doc["categories"]}
    assert set(cats) == {"scratch", "defect"}
    ann = {a["image_id"]: a for a in doc["annotations"]}
    assert ann[ids["fail_vlm"]]["bbox"] == [100, 10, 40, 80] and ann[ids["fail_vlm"]]["category_id"] == cats["scratch"]
    assert ann[ids["fail_det"]]["bbox"] == [10, 20, 40, 40] and ann[ids["fail_det"]]["category_id"] == cats["defect"]
    img = cv2.imread(str(out / doc["images"][0]["file_name"]))
    assert img.shape == (100, 200, 3)


def test_yolo_labels_are_normalised_centre_boxes(tmp_path):
    cfg, ids = _setup(tmp_path)
    out = tmp_path / "yolo"
    p = run_cli("export", "--since", "1d", "--format", "yolo", "--out", str(out), "--config", str(cfg))
    assert p.returncode == 0, p.stderr
    names = yaml.safe_load((out / "data.yaml").read_text())["names"]
    label = (out / "labels" / f"{ids['fail_vlm']:08d}.txt").read_text().split()
    assert names[int(label[0])] == "scratch"
    assert [float(v) for v in label[1:]] == [0.6, 0.5, 0.2, 0.8]  # (120/200, 50/100, 40/200, 80/100)
    assert sorted(p.name for p in (out / "images").iterdir()) == sorted(f"{i:08d}.jpg" for i in (ids["fail_vlm"], ids["fail_det"]))


def test_bad_times_are_named(tmp_path):
    cfg, _ = _setup(tmp_path)
    p = run_cli("export", "--since", "yesterday", "--format", "csv", "--out", str(tmp_path / "x.csv"), "--config", str(cfg))
    assert p.returncode == 2 and "expected an ISO date or time" in p.stderr
    p = run_cli("export", "--since", "1h", "--until", "2h", "--format", "csv", "--out", str(tmp_path / "x.csv"),
                "--config", str(cfg))
    assert p.returncode == 2 and "--until must be after --since" in p.stderr
