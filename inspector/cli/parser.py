"""The command line's flags: one subcommand per handler of the command modules."""

from __future__ import annotations

import argparse
from pathlib import Path

from inspector.cli.accounts import cmd_tokens, cmd_users
from inspector.cli.admin import cmd_bench, cmd_config, cmd_doctor, cmd_install
from inspector.cli.calibrate import cmd_calibrate, cmd_calibrate_camera, cmd_eval, cmd_train
from inspector.cli.data import cmd_db, cmd_export
from inspector.cli.images import cmd_detect, cmd_reason
from inspector.cli.models import cmd_convert_ernie_vl
from inspector.cli.run import cmd_run, cmd_web


def build_parser() -> argparse.ArgumentParser:
    ap = argparse.ArgumentParser(prog="inspector", description="Edge visual quality inspection.")
    ap.add_argument("-v", "--verbose", action="store_true", help="debug logging")
    sub = ap.add_subparsers(dest="command", required=True)

    def run_opts(p):
        p.add_argument("--test-vlm", action="store_true",
                       help="reason with a tiny random-weight VLM through real llama.cpp (words mean nothing)")
        p.add_argument("--exit-when-done", action="store_true",
                       help="stop when file/folder sources are exhausted (no looping)")
        p.add_argument("--fast", action="store_true", help="replay files as fast as they are processed")
        p.add_argument("--no-web", action="store_true", help="do not serve the dashboard")
        p.add_argument("--port", type=int, help="dashboard port (default from config: 8080)")
        p.add_argument("--data-dir", type=Path, help="override data_dir from the config")
        p.add_argument("--verdicts-out", metavar="FILE",
                       help="append one JSON line per verdict once it is committed to the database "
                            "(- = standard output): for a reject gate, a PLC bridge or a log shipper")

    p = sub.add_parser("run", help="run a line from a config file")
    p.add_argument("--config", type=Path, help="YAML config (default: the bundled demo line)")
    run_opts(p)
    p.set_defaults(func=cmd_run)

    p = sub.add_parser("web", help="serve the dashboard and API on their own (inspector-web.service): "
                                   "history from the database, status and live pictures from the "
                                   "running line's socket")
    p.add_argument("--config", type=Path, help="the line's YAML config (default: the bundled demo line)")
    p.add_argument("--port", type=int, help="dashboard port (default from config: 8080)")
    p.set_defaults(func=cmd_web)

    p = sub.add_parser("demo", help="run the bundled demo line with its dashboard")
    run_opts(p)
    p.set_defaults(func=cmd_run, config=None)

    p = sub.add_parser("detect", help="run the pre-filter on image files or folders")
    p.add_argument("paths", nargs="+")
    p.add_argument("--json", action="store_true", help="one JSON object per image per line")
    p.add_argument("--roi", help="inspect only x1,y1,x2,y2 of each image")
    p.add_argument("--config", type=Path)
    p.set_defaults(func=cmd_detect)

    p = sub.add_parser("reason", help="ask the configured VLM about one image (or one box of it)")
    p.add_argument("image", type=Path)
    p.add_argument("--box", help="x1,y1,x2,y2 in image pixels: the region to ask about (default: all)")
    p.add_argument("--json", action="store_true", help="print one JSON object")
    p.add_argument("--config", type=Path)
    p.add_argument("--camera", help="camera id whose ROI and calibration apply (default: the first)")
    p.add_argument("--product", help="product recipe to ask with (default: the camera's)")
    p.add_argument("--test-vlm", action="store_true", help="use the tiny random-weight test VLM")
    p.set_defaults(func=cmd_reason)

    p = sub.add_parser("calibrate", help="fit per-product thresholds, or a camera's geometry")
    csub = p.add_subparsers(dest="what", required=True)
    p = csub.add_parser("camera", help="intrinsics, distortion and mm per pixel from checkerboard photos")
    p.add_argument("--camera", required=True, help="camera id (writes calibration/<camera>.yaml)")
    p.add_argument("--images", type=Path, required=True, help="folder of photos of the board at varied angles")
    p.add_argument("--board", default="9x6", help="inner corners, COLSxROWS (default 9x6)")
    p.add_argument("--square-mm", type=float, required=True, help="side of one square in mm")
    p.add_argument("--scale", type=Path, help="a photo of the board lying on the working plane: mm per pixel")
    p.add_argument("--out-dir", type=Path, help="where to write <camera>.yaml (default: calibration_dir)")
    p.add_argument("--config", type=Path)
    p.set_defaults(func=cmd_calibrate_camera)

    p = csub.add_parser("thresholds", help="per-product pre-filter threshold from golden samples")
    p.add_argument("--product", required=True)
    p.add_argument("--good", type=Path, required=True, help="folder of images of good parts")
    p.add_argument("--bad", type=Path, help="folder of images of defective parts (reports recall)")
    p.add_argument("--target", type=float, default=0.01, help="most good parts to send on (0.01 = 1%%)")
    p.add_argument("--no-statistics", dest="statistics", action="store_false",
                   help="fit the threshold only, not the model's per-product normal statistics")
    p.add_argument("--no-weighting", dest="weighted", action="store_false",
                   help="plain normal statistics: do not re-weigh them by synthetic anomalies painted on "
                        "the good parts")
    p.add_argument("--components", type=int, default=None,
                   help="Gaussians per feature group in the normal statistics (default 4; 1: one Gaussian, "
                        "for a surface of one texture; each costs a little time per frame)")
    p.add_argument("--roi", help="x1,y1,x2,y2 (default: the ROI of the product's camera)")
    p.add_argument("--out-dir", type=Path, help="where to write <product>.yaml (default: calibration_dir)")
    p.add_argument("--config", type=Path)
    p.set_defaults(func=cmd_calibrate)

    p = sub.add_parser("train", help="fine-tune the bundled detector on one product's good parts, then calibrate it",
                       description="Fine-tunes the bundled pre-filter network on patches of the product's good parts "
                                   "with synthetic defects painted on them, writes calibration/<product>.model.onnx "
                                   "(+ .model.json, its manifest with sha256 and recipe), and calibrates it as "
                                   "`calibrate thresholds` does. The product's cameras then run that model. Needs "
                                   "the [train] extra (PyTorch, onnx). Delete the two files and calibrate again to "
                                   "go back to the shared model.")
    p.add_argument("--product", required=True)
    p.add_argument("--good", type=Path, required=True, help="folder of images of good parts (at least 12)")
    p.add_argument("--bad", type=Path, help="folder of images of defective parts (calibration reports recall)")
    p.add_argument("--steps", type=int, default=None, help="training steps (default 400: 30-100 s on 2 cores)")
    p.add_argument("--seed", type=int, default=None, help="random seed (default: fixed, so a run repeats)")
    p.add_argument("--threads", type=int, default=None, help="CPU threads for training (default: all)")
    p.add_argument("--target", type=float, default=0.01, help="most good parts to send on (0.01 = 1%%)")
    p.add_argument("--roi", help="x1,y1,x2,y2 (default: the ROI of the product's camera)")
    p.add_argument("--config", type=Path)
    p.set_defaults(func=cmd_train)

    p = sub.add_parser("eval", help="measure the pre-filter (default) or VLMs (`eval vlm`) on labelled images")
    p.add_argument("what", nargs="?", choices=["prefilter", "vlm"], default="prefilter",
                   help="vlm: each --config's reasoner on crops around the labelled defects and defect-free parts")
    p.add_argument("--labels", type=Path, help="JSON lines: {image, boxes} (or the demo line's "
                                               "ground_truth.jsonl); with --images")
    p.add_argument("--images", type=Path, help="folder the labels' paths are relative to")
    p.add_argument("--dataset", type=Path, help="instead of --labels: a COCO or YOLO dataset folder, such as "
                                                "`inspector export --format coco|yolo` writes")
    p.add_argument("--from-reviews", action="store_true",
                   help="vlm, instead of --labels: parts operators reviewed pass or fail in the config's store")
    p.add_argument("--since", help="--from-reviews: only inspections since (ISO date/time, or an age: 7d)")
    p.add_argument("--chart", type=Path, help="vlm: a PNG bar chart of the configs side by side")
    p.add_argument("--product", help="use this product's calibrated threshold and camera ROI")
    p.add_argument("--threshold", type=float, help="decision threshold (overrides the calibration)")
    p.add_argument("--roi", help="x1,y1,x2,y2 (default: the product's camera ROI, else the whole image)")
    p.add_argument("--pr-curve", type=Path, help="PNG to write (default: pr-curve.png)")
    p.add_argument("--json", action="store_true")
    p.add_argument("--config", type=Path, action="append",
                   help="the line config (vlm: once per reasoner to compare, same crops, same order)")
    p.set_defaults(func=cmd_eval)

    p = sub.add_parser("bench", help="benchmarks that print numbers and ratios")
    p.add_argument("what", choices=["reasoner", "prefilter", "loop", "store", "web", "stop", "line", "plc"])
    p.add_argument("--inspections", type=int, default=1_000_000, help="store, web: database size for the reads")
    p.add_argument("--config", type=Path, help="prefilter: the detector to measure (default: bundled)")
    p.add_argument("--product", help="prefilter: also time this product's pre-filter (its own model from "
                                     "`inspector train`, its statistics) against the bundled one")
    p.add_argument("--calls", "--frames", type=int, help="timed calls / frames per case (default 20; loop: 200, with --source aravis 1000, pylon 5000; "
                                                          "stop: rounds, 3; line: parts, 60; plc: parts, 50)")
    p.add_argument("--json", action="store_true", help="also print the results as one JSON line")
    p.add_argument("--workdir", type=Path, help="where to write the test model (default: a temp dir)")
    p.add_argument("--source", choices=["video", "aravis", "pylon"], default="video",
                   help="loop: a generated video file (default), or a simulated machine-vision camera: "
                        "Aravis' GigE Vision simulator or pylon's emulator")
    p.set_defaults(func=cmd_bench)

    p = sub.add_parser("export", help="verdicts as csv/jsonl, reviewed defects as a COCO/YOLO dataset")
    p.add_argument("--since", required=True, help="ISO date/time (UTC) or an age: 30m, 12h, 7d")
    p.add_argument("--until", help="ISO date/time (UTC) or an age (default: now)")
    p.add_argument("--format", choices=["csv", "jsonl", "coco", "yolo"], required=True)
    p.add_argument("--out", type=Path, required=True, help="a file (csv, jsonl) or a folder (coco, yolo)")
    p.add_argument("--include-good", action="store_true",
                   help="coco, yolo: also the parts reviewed pass, as images without boxes (for `eval`'s precision)")
    p.add_argument("--config", type=Path)
    p.set_defaults(func=cmd_export)

    p = sub.add_parser("db", help="the database's schema: upgrade it, or show its revision")
    p.add_argument("action", choices=["upgrade", "current"])
    p.add_argument("--config", type=Path)
    p.set_defaults(func=cmd_db)

    p = sub.add_parser("models", help="make the model files the reasoner runs (ERNIE-4.5-VL to GGUF)")
    msub = p.add_subparsers(dest="what", required=True)
    p = msub.add_parser(
        "convert-ernie-vl", help="an ERNIE-4.5-VL checkpoint (transformers format) to GGUF for llama.cpp",
        description="Writes the language model (architecture ernie4_5_vl_moe) and the vision projector "
                    "(mmproj, ernie4_5_vl) as GGUF files for the llama.cpp this project patches "
                    "(patches/llama.cpp), and optionally quantized copies of the language model made by "
                    "llama.cpp's own quantizer. Reads the safetensors tensor by tensor: the 28B-A3B model "
                    "needs about one expert stack of memory (~1 GB), and disk for the F16 file (~56 GB) "
                    "plus each quantization.")
    p.add_argument("hf_dir", type=Path, help="the checkpoint folder: config.json, *.safetensors, tokenizer.model")
    p.add_argument("out_dir", type=Path, help="where the .gguf files go (created if missing)")
    p.add_argument("--quant", metavar="Q4_K_M,Q2_K",
                   help="comma-separated quantizations of the language model: Q8_0, Q6_K, Q5_K_M, Q4_K_M, "
                        "Q4_K_S, Q3_K_M, Q2_K (the mmproj stays F16)")
    p.add_argument("--outtype", choices=("f16", "bf16", "f32"), default="f16",
                   help="the unquantized language model's type (default f16; f32 to compare with the reference)")
    p.set_defaults(func=cmd_convert_ernie_vl)

    p = sub.add_parser("doctor", help="check cameras, models, the VLM, the database and disk; non-zero if anything is wrong")
    p.add_argument("--config", type=Path)
    p.add_argument("--json", action="store_true", help="the checks as one JSON line")
    p.set_defaults(func=cmd_doctor)

    p = sub.add_parser("install", help="put this installation under systemd: user, directories, config, units")
    p.add_argument("--dry-run", action="store_true", help="print every step, change nothing")
    p.add_argument("--root", type=Path, default=Path("/"),
                   help="write under this directory instead of / (an image, a test); the running "
                        "system (users, systemd) is left alone")
    p.add_argument("--reasoner", action="store_true",
                   help="also the GPU workstation's VLM server (inspector-reasoner.service, reasoner.json)")
    p.set_defaults(func=cmd_install)

    p = sub.add_parser("users", help="dashboard users: list, add, passwd, role, remove")
    p.add_argument("action", choices=["list", "add", "passwd", "role", "remove"])
    p.add_argument("name", nargs="?")
    p.add_argument("--role", choices=["viewer", "operator", "admin"], default="operator")
    p.add_argument("--password-stdin", action="store_true", help="read the password from standard input")
    p.add_argument("--config", type=Path)
    p.set_defaults(func=cmd_users)

    p = sub.add_parser("tokens", help="API tokens for machines: list, add (prints it once), revoke")
    p.add_argument("action", choices=["list", "add", "revoke"])
    p.add_argument("name", nargs="?")
    p.add_argument("--role", choices=["viewer", "operator", "admin"], default="viewer")
    p.add_argument("--config", type=Path)
    p.set_defaults(func=cmd_tokens)

    p = sub.add_parser("config", help="print the effective config (all keys, with defaults)")
    p.add_argument("--config", type=Path)
    p.set_defaults(func=cmd_config)
    return ap
