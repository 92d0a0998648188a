"""`inspector calibrate thresholds | camera` and `eval`: fitting and measuring the pre-filter and a camera."""

from __future__ import annotations

import json
import sys
from pathlib import Path

from inspector.cli.common import _detector_for, _fail, _known_product, _load, _parse_roi


def _roi_for(args, cfg, product: str | None):
    if getattr(args, "roi", None):
        return _parse_roi(args.roi)
    cam = next((c for c in cfg.cameras if c.product == product), None) if product else None
    if cam is None:
        return None
    if cam.inspection_roi() is None and cam.source.type == "demo":
        from inspector.demo.line import ROI  # the demo source's own ROI

        return ROI
    return cam.inspection_roi()


def _images_in(folder: Path, what: str) -> list[Path]:
    from inspector.capture.sources.files import list_images

    if not folder.is_dir():
        _fail(f"{what} {folder}: no such folder")
    files = list_images(folder)
    if not files:
        _fail(f"{what} {folder}: folder holds no images")
    return files


def cmd_calibrate(args) -> int:
    from inspector.prefilter import calibration as cal
    from inspector.prefilter.evaluate import progress
    from inspector.prefilter.metrics import wilson

    cfg = _load(args)
    _known_product(cfg, args.product)
    if not 0 <= args.target < 1:
        _fail(f"--target must be a rate in 0..1, got {args.target}")
    det = _detector_for(cfg, args.product)
    if det.model_id.startswith(f"{args.product}-anomaly@"):
        print(f"product {args.product}: calibrating its own model {det.model_id} (from `inspector train`)")
    roi = _roi_for(args, cfg, args.product)
    good = _images_in(args.good, "--good")
    bad = _images_in(args.bad, "--bad") if args.bad else []
    try:
        best, fits = cal.fit_best(det, good, bad, roi, args.target, args.statistics, progress, args.weighted,
                                  args.components, cfg.limits.max_image_pixels)
    except cal.CalibrationError as e:
        _fail(str(e))
    for f in fits if len(fits) > 1 and best.bad else []:  # with no readable bad part, nothing to compare
        m = f.measured()
        print(f"  {'distance from normal' if f.stats is not None else 'model map':20s}: bad parts "
              f"flagged {m.bad_recall:.2%}, image AUROC {m.image_auroc:.4f}")
    for u in best.unreadable:
        print(f"inspector: {u} (skipped)", file=sys.stderr)
    m, thr = best.measured(), best.threshold
    result = cal.ProductCalibration(product=args.product, detector_model=det.model_id, threshold=thr,
                                    target_false_reject=args.target, roi=roi, measured=m)
    path = cal.save(args.out_dir or cfg.calibration_dir, result, best.stats)
    if best.stats is not None:
        weighed = (f", weighed by {best.stats.anomaly_cells} cells of synthetic anomalies painted on them"
                   if best.stats.anomaly_cells else "")
        k = best.stats.components
        print(f"product {args.product}: normal statistics ({k} Gaussian{'s' if k > 1 else ''} per feature "
              f"group) fitted on {best.stats.cells} cells of {m.good_images} good parts{weighed}; "
              f"threshold {thr:.6g} on the distance from normal")
    else:
        print(f"product {args.product}: threshold {thr:.6g} on the model's map (model default "
              f"{det.threshold:.6g})")
    lo, hi = m.false_reject_ci95
    rejects = round(m.false_reject_rate * m.good_images)
    print(f"  good parts: {m.good_images}, false-reject rate {m.false_reject_rate:.2%} ({rejects} of "
          f"{m.good_images}; 95% interval {lo:.2%}-{hi:.2%}); target at most {args.target:.2%}"
          f"{'; each scored by statistics fitted on the others' if best.stats is not None else ''}")
    if m.false_reject_cv:
        cv_sent, cv_n = m.false_reject_cv
        print(f"  cross-validated: thresholds fitted on two thirds of the good parts sent {cv_sent} of {cv_n} of "
              f"the other third on ({cv_sent / cv_n:.2%}); fold thresholds "
              f"{', '.join(f'{t:.4g}' for t in m.fold_thresholds or [])}")
    if m.unstable:
        print(f"inspector: warning: the fit is unstable: thresholds fitted on two thirds of the good parts sent "
              f"{m.false_reject_cv[0]} of {m.false_reject_cv[1]} of the other third on, against a target of "
              f"{args.target:.2%}; new good parts will likely be sent on more often than the target. Calibrate "
              f"on more good parts (covering the product's whole range), or raise --target", file=sys.stderr)
    if hi > args.target:
        need = cal.parts_to_show(args.target)
        print(f"inspector: note: with {m.good_images} good parts the false-reject rate is only known to be "
              f"below {hi:.2%}" + (f"; showing it is below the {args.target:.2%} target takes at least "
                                   f"{need} good parts with none sent on" if need else ""), file=sys.stderr)
    if best.bad:
        flagged = round(m.bad_recall * m.bad_images)
        blo, bhi = wilson(flagged, m.bad_images)
        print(f"  bad parts: {m.bad_images}, flagged {m.bad_recall:.2%} ({flagged} of {m.bad_images}; 95% "
              f"interval {blo:.2%}-{bhi:.2%}), image AUROC {m.image_auroc:.4f}")
    elif bad:
        print(f"inspector: note: none of the {len(bad)} bad images can be read: no recall measured",
              file=sys.stderr)
    print(f"  written to {path}")
    return 0


def cmd_calibrate_camera(args) -> int:
    from inspector.capture import camera_calibration as cc
    from inspector.prefilter.evaluate import progress

    cfg = _load(args)
    if args.camera not in {c.id for c in cfg.cameras}:
        print(f"inspector: note: camera {args.camera!r} is not in the config (cameras: "
              f"{[c.id for c in cfg.cameras]}); the file is written anyway", file=sys.stderr)
    if not args.square_mm or args.square_mm <= 0:
        _fail(f"--square-mm must be > 0, got {args.square_mm}")
    try:
        board = cc.parse_board(args.board)
        cal, skipped = cc.calibrate(args.camera, _images_in(args.images, "--images"), board,
                                    args.square_mm, progress, cfg.limits.max_image_pixels)
        for s in skipped:
            print(f"inspector: {s} (skipped)", file=sys.stderr)
        tilt = None
        if args.scale:
            cal.mm_per_px, tilt = cc.measure_scale(cal, args.scale, cfg.limits.max_image_pixels)
            cal.scale_image = args.scale.name
        path = cc.save(args.out_dir or cfg.calibration_dir, cal)
    except cc.CameraCalibrationError as e:
        _fail(str(e))
    K, dist = cal.matrices()
    print(f"camera {args.camera}: {len(cal.per_view_error_px)} views of a {board[0]}x{board[1]} board "
          f"({args.square_mm:g} mm squares), {cal.image_size[0]}x{cal.image_size[1]}")
    print(f"  focal length fx {K[0, 0]:.2f} px, fy {K[1, 1]:.2f} px; principal point "
          f"({K[0, 2]:.1f}, {K[1, 2]:.1f})")
    print(f"  distortion k1 {dist[0]:.4f}, k2 {dist[1]:.4f}, p1 {dist[2]:.5f}, p2 {dist[3]:.5f}, k3 {dist[4]:.4f}")
    worst = max(cal.per_view_error_px.items(), key=lambda kv: kv[1])
    print(f"  reprojection error {cal.reprojection_error_px:.3f} px RMS (worst view {worst[0]}: {worst[1]:.3f} px)")
    if cal.mm_per_px:
        print(f"  scale on the working plane: {cal.mm_per_px:.5f} mm per pixel (from {args.scale.name})")
        if tilt > cc.TILT_WARN:
            print(f"inspector: warning: the board in {args.scale.name} looks tilted (x and y spacing "
                  f"differ by {tilt:.1%}); lay it flat on the working plane for an exact scale",
                  file=sys.stderr)
    print(f"  written to {path}")
    return 0


def cmd_eval(args) -> int:
    configs = args.config or [None]
    if args.what == "vlm":
        return _eval_vlm(args, configs)
    args.config = configs[-1]
    from inspector.prefilter import calibration as cal
    from inspector.prefilter.evaluate import EvalError, draw_pr_curve, report, run

    cfg = _load(args)
    _known_product(cfg, args.product)
    det = _detector_for(cfg, args.product)
    if args.from_reviews:
        _fail("--from-reviews measures VLMs (`inspector eval vlm`): the detector chose which parts were "
              "reviewed, so reviews would grade it on its own picks; use --labels or --dataset")
    items = _labelled(args, cfg)
    thr, source, stats = args.threshold, "--threshold", None
    if args.product:
        try:
            c = cal.load_for(cfg.calibration_dir, args.product, det)
        except cal.CalibrationError as e:
            _fail(str(e))
        if c is None:
            _fail(f"no calibration for product {args.product!r} in {cfg.calibration_dir} "
                  f"(run `inspector calibrate thresholds` first, or leave --product out)")
        stats = c.normal  # --threshold overrides the threshold, not what it is a threshold on
        if thr is None:
            thr, source = c.threshold, f"calibration of {args.product}"
    if thr is None:
        thr, source = det.threshold, "the model's default"
    roi = _roi_for(args, cfg, args.product)
    results, unreadable = run(det, items, roi, thr, normal=stats, max_pixels=cfg.limits.max_image_pixels)
    for u in unreadable:
        print(f"inspector: {u} (skipped)", file=sys.stderr)
    try:
        rep = report(results, thr, unreadable)
    except EvalError as e:
        _fail(str(e))
    out = args.pr_curve or Path("pr-curve.png")
    draw_pr_curve(results, thr, out, f"{det.model_id} on {(args.images or args.dataset).name}")
    if args.json:
        print(json.dumps({**rep.as_dict(), "threshold_source": source, "pr_curve": str(out)}))
        return 0
    print(f"{rep.images} images ({rep.good} good, {rep.images - rep.good} defective with "
          f"{rep.defects} defects), threshold {thr:.6g} ({source})")
    print(f"  image AUROC                    {rep.image_auroc:.4f}")
    lo, hi = rep.defect_recall_ci95
    print(f"  defect recall                  {rep.defect_recall:.4f}  ({rep.defects_found}/{rep.defects} found: IoU >= "
          f"0.1 or centre inside; 95% interval {lo:.3f}-{hi:.3f})")
    for kind, (hit, of) in rep.per_kind.items():
        print(f"    {kind:28s} {hit / of:.4f}  ({hit}/{of})")
    print(f"  false candidates per good part {rep.false_candidates_per_good:.3f}")
    glo, ghi = rep.good_sent_to_vlm_ci95
    print(f"  frames sent to the VLM         {rep.sent_to_vlm:.2%}  (good parts {rep.good_sent_to_vlm:.2%}, "
          f"95% interval {glo:.2%}-{ghi:.2%}; defective {rep.bad_sent_to_vlm:.2%})")
    print(f"  PR curve: {out}")
    return 0


def cmd_train(args) -> int:
    """Fine-tune the bundled detector on one product's good parts, then calibrate it."""
    import argparse

    from inspector.prefilter import ModelError
    from inspector.prefilter import calibration as cal
    from inspector.prefilter import train
    from inspector.prefilter.evaluate import progress
    from inspector.prefilter.manifest import load_entry

    cfg = _load(args)
    _known_product(cfg, args.product)
    if cfg.detector.type != "default":
        _fail(f"inspector train fine-tunes the bundled detector (detector.type default); this config's "
              f"detector is {cfg.detector.type!r}")
    if not 0 <= args.target < 1:
        _fail(f"--target must be a rate in 0..1, got {args.target}")
    if cfg.detector.threshold is not None:
        _fail("detector.threshold is set in the config: the line would run the trained model at that threshold "
              "and ignore its calibration; remove detector.threshold first")
    if args.threads is not None and args.threads < 1:
        _fail(f"--threads must be at least 1, got {args.threads}")
    try:
        train.require_torch()
        entry = load_entry(cfg.detector.manifest, cfg.detector.model)
    except (train.TrainError, ModelError) as e:
        _fail(str(e))
    base = _detector_for(cfg)
    roi = _roi_for(args, cfg, args.product)
    good, unreadable = cal.readable(_images_in(args.good, "--good"), cfg.limits.max_image_pixels)
    for u in unreadable:
        print(f"inspector: {u} (skipped)", file=sys.stderr)
    if len(good) < cal.MIN_GOOD_PARTS:
        _fail(f"{len(good)} readable good parts are too few to train on: at least {cal.MIN_GOOD_PARTS} are needed "
              f"(and calibrating the trained model needs them too)")
    shared = None
    if args.bad:
        # The numbers decide, per product: measured first, the shared model is kept if it does better.
        bad = _images_in(args.bad, "--bad")
        print(f"product {args.product}: measuring the shared model {base.model_id} first, on the same parts")
        try:
            shared, _ = cal.fit_best(base, good, bad, roi, args.target, True, progress,
                                     max_pixels=cfg.limits.max_image_pixels)
        except cal.CalibrationError as e:
            _fail(str(e))
    # What a failed or interrupted calibration must put back: the line must never be left with a
    # model that has no calibration, or a calibration naming a model that is gone.
    kept = _snapshot(cfg.calibration_dir, args.product)
    try:
        trained = train.fine_tune(base, cfg.detector.model, good, roi,
                                  steps=train.STEPS if args.steps is None else args.steps,
                                  seed=train.SEED if args.seed is None else args.seed,
                                  threads=args.threads, max_pixels=cfg.limits.max_image_pixels, progress=progress)
        model, manifest = train.save(cfg.calibration_dir, args.product, trained, entry, cfg.detector.manifest,
                                     args.good)
    except train.TrainError as e:
        _fail(str(e))
    except OSError as e:
        _fail(f"cannot write the trained model to {cfg.calibration_dir}: {e.strerror or e}")
    print(f"product {args.product}: fine-tuned {entry.name}@{entry.sha256[:12]} on {trained.parts} good parts, "
          f"{trained.steps} steps in {trained.seconds:.0f} s (loss {trained.loss_first:.3f} -> {trained.loss_last:.3f})")
    print(f"  wrote {model} (sha256 {trained.sha256[:12]}) and {manifest.name}; calibrating it now")
    try:
        rc = cmd_calibrate(argparse.Namespace(
            config=args.config, product=args.product, good=args.good, bad=args.bad, target=args.target,
            statistics=True, weighted=True, components=None, roi=args.roi, out_dir=None))
    except BaseException:
        _restore(kept)
        print(f"inspector: the trained model of {args.product} was not kept (its calibration did not finish); "
              f"the files as they were are back", file=sys.stderr)
        raise
    if rc or shared is None or not shared.bad:
        return rc
    old, new = shared.measured(), cal.load(cfg.calibration_dir, args.product).measured
    said = (f"bad parts flagged {new.bad_recall:.2%} (AUROC {new.image_auroc:.4f}) with the trained model, "
            f"{old.bad_recall:.2%} (AUROC {old.image_auroc:.4f}) with the shared one")
    if (new.bad_recall, new.image_auroc) > (old.bad_recall, old.image_auroc):
        print(f"product {args.product}: kept its own model: {said}")
        return 0
    manifest.unlink(missing_ok=True)  # the manifest first: it is what makes the product use the model
    model.unlink(missing_ok=True)
    cal.save(cfg.calibration_dir, cal.ProductCalibration(
        product=args.product, detector_model=base.model_id, threshold=shared.threshold,
        target_false_reject=args.target, roi=roi, measured=old), shared.stats)
    lo, hi = old.false_reject_ci95
    print(f"product {args.product}: kept the shared model and calibrated it ({said}); the trained model "
          f"is removed")
    print(f"  shared model: threshold {shared.threshold:.6g}, false-reject rate {old.false_reject_rate:.2%} "
          f"(95% interval {lo:.2%}-{hi:.2%})" + (f"; cross-validated {old.false_reject_cv[0]} of "
                                                 f"{old.false_reject_cv[1]}" if old.false_reject_cv else "")
          + ("; the fit is unstable" if old.unstable else ""))
    return 0


def _snapshot(directory, product: str) -> dict:
    from inspector.prefilter import calibration as cal
    from inspector.prefilter.product_model import paths

    yaml_path = cal.path_for(directory, product)
    files = [*paths(directory, product), yaml_path, yaml_path.with_name(f"{product}.normal.npz")]
    return {f: (f.read_bytes() if f.exists() else None) for f in files}


def _restore(kept: dict) -> None:
    from inspector.util.atomic_write import write_atomic

    for f, data in sorted(kept.items(), key=lambda kv: kv[0].name.endswith(".model.json"), reverse=True):
        if data is None:
            f.unlink(missing_ok=True)
        else:
            write_atomic(f, data)


def _labelled(args, cfg) -> list:
    """The labelled images to measure on: --labels with --images, an exported --dataset, or (vlm)
    the operators' reviews in the config's store."""
    from inspector.prefilter.datasets import read_dataset
    from inspector.prefilter.evaluate import EvalError, read_labels

    given = [n for n, on in (("--labels", args.labels is not None), ("--dataset", args.dataset is not None),
                             ("--from-reviews", args.from_reviews)) if on]
    if len(given) != 1:
        _fail("say what to measure on, once: --labels FILE --images DIR, --dataset DIR (an `inspector export "
              f"--format coco|yolo` folder) or --from-reviews{'' if not given else ' (got ' + ', '.join(given) + ')'}")
    if args.since is not None and not args.from_reviews:
        _fail("--since goes with --from-reviews")
    try:
        if args.labels is not None:
            if args.images is None:
                _fail("--labels needs --images, the folder its image paths are relative to")
            return read_labels(args.labels, args.images)
        if args.dataset is not None:
            items, skipped = read_dataset(args.dataset)
            for why in skipped:
                print(f"inspector: {why} (skipped)", file=sys.stderr)
            return items
    except EvalError as e:
        _fail(str(e))
    from datetime import datetime

    from inspector.cli.common import _open_store
    from inspector.cli.data import _when
    from inspector.store.export import reviewed_labels

    since = _when(args.since, "--since") if args.since else datetime(1970, 1, 1)
    url = cfg.database_url
    if url.startswith("sqlite:///") and not Path(url.removeprefix("sqlite:///")).is_file():
        _fail(f"--from-reviews: no database at {url.removeprefix('sqlite:///')} (this config's line has "
              "inspected nothing yet)")
    store = _open_store(cfg)
    try:
        items = reviewed_labels(store, since)
    finally:
        store.close()
    if not items:
        _fail(f"no reviewed inspection with a kept frame in {cfg.database_url.rsplit('/', 1)[-1]}"
              f"{' since ' + args.since if args.since else ''}: review parts on the dashboard first "
              "(pass or fail), or use --labels or --dataset")
    return items


def _eval_vlm(args, configs) -> int:
    import copy

    from inspector.reasoner import build_reasoner
    from inspector.reasoner import evaluate as ev
    from inspector.util.image_file import ImageError

    results = []
    crops = None
    for path in configs:
        one = copy.copy(args)
        one.config = path
        cfg = _load(one)
        if cfg.reasoner.type == "none":
            _fail(f"{path or 'the default config'}: reasoner.type is none: nothing to measure")
        _known_product(cfg, args.product)
        product = cfg.product(args.product) if args.product else cfg.products[0]
        if crops is None:  # the same crops for every config (the reviews of the first config's store)
            items = _labelled(args, cfg)
            max_pixels = cfg.limits.max_image_pixels  # the same images, read the same way, for every config
            crops, unreadable = ev.cases(items, cfg.cropper, max_pixels)
            for why in unreadable:
                print(f"inspector: {why} (skipped)", file=sys.stderr)
            if not crops:
                _fail("no readable image to measure on")
            pos = sum(c.box is not None for c in crops)
            print(f"{len(crops)} crops: {pos} around labelled defects, {len(crops) - pos} on defect-free parts",
                  file=sys.stderr)
        reasoner = build_reasoner(cfg.reasoner, cfg.data_dir)
        try:
            results.append(ev.evaluate(reasoner, crops, product, max_pixels, str(path or "default")))
        except ImageError as e:
            _fail(f"{e} (it changed while being measured)")
        finally:
            reasoner.close()
    names = ev.short_names(configs)
    print(ev.table(results, names))
    if args.chart:
        print(f"chart: {ev.chart(results, names, args.chart)}")
    if args.json:
        print(ev.to_json(results, [str(p) if p else "default" for p in configs]))
    return 0
