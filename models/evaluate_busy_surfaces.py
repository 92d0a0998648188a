"""The pre-filter on busy real surfaces, run exactly as a plant would run it.

    apt-get install gimp-data
    .venv/bin/python models/evaluate_busy_surfaces.py --data /tmp/surfaces --mode trained --held-out

For each surface (busy_surfaces.py makes the parts): a config with one product and camera, then
  bundled:  inspector calibrate thresholds --product S --good good/ --target 0.05
  trained:  inspector train --product S --good good/ --target 0.05
then `inspector eval --product S --json` on the 40 other parts (20 good, 20 with 1-2 defects
from eval_defects.py). Prints one row per surface, pooled recall per defect kind, and the time
each fit took; --json writes it all.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import time
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from models.busy_surfaces import HELD_OUT_SURFACES, TUNE_SURFACES, build  # noqa: E402

ROI = "0,0,512,512"


def inspector() -> list[str]:
    exe = Path(sys.executable).with_name("inspector")
    return [str(exe)] if exe.exists() else [sys.executable, "-m", "inspector"]


def run_surface(data: Path, surface: str, mode: str, target: float, extra: list[str]) -> dict:
    root = data / surface
    if not (root / "test" / "labels.jsonl").exists():
        build(surface, data)
    work = root / mode
    work.mkdir(exist_ok=True)
    cfg = {"products": [{"name": surface}],
           "cameras": [{"id": "cam", "product": surface, "source": {"type": "folder", "path": str(root / "good")}}],
           "calibration_dir": str(work / "calibration"), "data_dir": str(work / "data")}
    cfg_path = work / "config.yaml"
    cfg_path.write_text(yaml.safe_dump(cfg))
    common = ["--product", surface, "--roi", ROI, "--config", str(cfg_path)]
    fit = (["calibrate", "thresholds"] if mode == "bundled" else ["train"]) + common + [
        "--good", str(root / "good"), "--target", str(target)] + extra
    t0 = time.monotonic()
    done = subprocess.run(inspector() + fit, capture_output=True, text=True)
    seconds = time.monotonic() - t0
    if done.returncode:
        raise SystemExit(f"{surface}: {' '.join(fit[:2])} failed: {done.stderr.strip()[-500:]}")
    ev = subprocess.run(inspector() + ["eval", "--images", str(root / "test"), "--labels",
                                       str(root / "test" / "labels.jsonl"), "--json",
                                       "--pr-curve", str(work / "pr.png")] + common,
                        capture_output=True, text=True)
    if ev.returncode:
        raise SystemExit(f"{surface}: eval failed: {ev.stderr.strip()[-500:]}")
    rep = json.loads(ev.stdout)
    rep["fit_seconds"] = round(seconds, 1)
    return rep


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("surfaces", nargs="*")
    ap.add_argument("--data", type=Path, required=True, help="where the surfaces' parts are (made if missing)")
    ap.add_argument("--mode", choices=["bundled", "trained"], default="trained")
    ap.add_argument("--held-out", action="store_true", help="the held-out surfaces (measure only)")
    ap.add_argument("--tune", action="store_true", help="the surfaces choices may be made on")
    ap.add_argument("--target", type=float, default=0.05)
    ap.add_argument("--json", type=Path, help="write every report here")
    ap.add_argument("extra", nargs=argparse.REMAINDER, help="after --: more flags for calibrate/train")
    a = ap.parse_args()
    surfaces = a.surfaces or (HELD_OUT_SURFACES if a.held_out else TUNE_SURFACES if a.tune else [])
    if not surfaces:
        ap.error("name surfaces, or --held-out / --tune")
    extra = [x for x in a.extra if x != "--"]
    reports = {}
    print(f"{'surface':14s} {'AUROC':>7s} {'recall':>12s} {'good sent':>9s} {'fit s':>6s}", flush=True)
    for s in surfaces:
        r = reports[s] = run_surface(a.data, s, a.mode, a.target, extra)
        print(f"{s:14s} {r['image_auroc']:7.3f} {r['defects_found']:5d}/{r['defects']:<3d}{r['defect_recall']:.3f} "
              f"{r['good_sent_to_vlm']:9.0%} {r['fit_seconds']:6.0f}", flush=True)
    found = sum(r["defects_found"] for r in reports.values())
    total = sum(r["defects"] for r in reports.values())
    goods = sum(r["good"] for r in reports.values())
    sent = sum(round(r["good_sent_to_vlm"] * r["good"]) for r in reports.values())
    aucs = [r["image_auroc"] for r in reports.values()]
    print(f"{'all':14s} {sum(aucs) / len(aucs):7.3f} {found:5d}/{total:<3d}{found / total:.3f} {sent / goods:9.1%}"
          f"   (AUROC: mean, min {min(aucs):.3f})")
    kinds: dict[str, list[int]] = {}
    for r in reports.values():
        for k, (hit, of) in r.get("per_kind", {}).items():
            kinds.setdefault(k, [0, 0])
            kinds[k][0] += hit
            kinds[k][1] += of
    for k, (hit, of) in sorted(kinds.items()):
        print(f"  {k:12s} {hit}/{of} = {hit / of:.3f}")
    if a.json:
        a.json.write_text(json.dumps({"mode": a.mode, "target": a.target, "surfaces": reports,
                                      "per_kind": kinds}, indent=1) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
