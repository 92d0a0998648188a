"""Per-product normal statistics: the fit, the in-graph distance, calibration and its use by the line."""

import shutil

import cv2
import numpy as np
import pytest
import yaml

from inspector.config import DetectorConfig
from inspector.demo.defects import PAINTERS
from inspector.demo.line import ROI, generate
from inspector.prefilter import ModelError, build_detector
from inspector.prefilter import calibration as cal
from inspector.prefilter import normal
from inspector.prefilter.normal import NormalFit
from tests.conftest import run_cli


@pytest.fixture(scope="module")
def det():
    return build_detector(DetectorConfig())


@pytest.fixture(scope="module")
def gravel(tmp_path_factory):
    """A product the default model never saw in training: 24 good parts, 12 defective ones."""
    root = tmp_path_factory.mktemp("gravel")
    good = generate(root / "good", 24, seed=41, defect_rate=0.0, surfaces=["gravel"], defects=list(PAINTERS))
    bad = generate(root / "bad", 12, seed=42, defect_rate=1.0, surfaces=["gravel"], defects=list(PAINTERS))
    return good, bad


def test_whitening_is_per_group_and_gives_unit_covariance():
    rng = np.random.default_rng(0)
    a = rng.normal(size=(3, 3))
    x = rng.normal(size=(5, 4000))
    x[:3] = a @ x[:3] + 5.0  # correlated, shifted first group
    x[3:] *= np.array([[0.5], [3.0]])
    fit = NormalFit()
    for part in np.split(x, 4, axis=1):
        fit.add(part.reshape(1, 5, 40, 25))
    st = fit.result([3, 2])
    assert st.components == 1 and not st.offset.any()
    z = st.whiten[0].astype(np.float64) @ (x - st.mean[0][:, None])
    cov = np.cov(z)  # across groups only sampling noise remains: they are whitened apart
    assert np.allclose(cov[:3, :3], np.eye(3), atol=0.01) and np.allclose(cov[3:, 3:], np.eye(2), atol=0.03)
    assert np.all(st.whiten[0, :3, 3:] == 0) and np.all(st.whiten[0, 3:, :3] == 0)
    with pytest.raises(ValueError, match="do not add up to 5"):
        fit.result([3, 3])


def test_a_feature_that_never_varies_gets_a_bounded_gain():
    rng = np.random.default_rng(1)
    x = rng.normal(size=(2, 4000))
    x[1] *= 1e-4  # e.g. the chroma of a grey part: noise only
    fit = NormalFit()
    fit.add(x.reshape(1, 2, 40, 100))
    st = fit.result([2])
    # A shift of 0.1 in it (a faint stain) is far out, but not 1000 sigma as raw whitening says.
    d = np.linalg.norm(st.whiten[0] @ np.array([0.0, 0.1]))
    assert 2.0 < d < 10.0


def test_scale_is_what_good_cells_reach_once_in_a_thousand():
    st = normal.NormalStatistics(np.zeros(2, np.float32), np.eye(2, dtype=np.float32), np.ones(2, np.float32))
    maps = [np.stack([np.full((10, 100), 2.0), np.arange(1000.0).reshape(10, 100)])[None]]
    s = st.scaled(maps)
    assert s.scale[0] == pytest.approx(2.0)
    assert s.scale[1] == pytest.approx(np.quantile(np.arange(1000.0), normal.SCALE_QUANTILE))


def test_weighing_by_anomalies_keeps_the_directions_they_take_and_floors_the_rest():
    from inspector.prefilter.metrics import roc_auc

    rng = np.random.default_rng(3)
    good = rng.normal(size=(6, 20000))
    fit = NormalFit()
    fit.add(good.reshape(1, 6, 100, 200))
    plain = fit.result([6])
    anomalies = rng.normal(size=(6, 4000))
    anomalies[:2] *= 4.0  # anomalies depart along two directions only
    z = plain.whiten[0].astype(np.float64) @ (anomalies - plain.mean[0][:, None])
    weighed = normal.weigh_by_anomalies(plain, z @ z.T / z.shape[1], z.shape[1], [6])
    assert weighed.anomaly_cells == 4000 and np.array_equal(weighed.mean, plain.mean)
    # The whitened directions' weights: ~1 - 1/16 along the anomalies' two, the floor elsewhere.
    w = np.linalg.svd(weighed.whiten[0].astype(np.float64) @ np.linalg.inv(plain.whiten[0].astype(np.float64)),
                      compute_uv=False) ** 2
    assert w[:2] == pytest.approx([1 - 1 / 16] * 2, abs=0.03)
    assert w[2:] == pytest.approx([normal.WEIGHT_FLOOR] * 4, abs=1e-6)

    test_good, test_bad = rng.normal(size=(6, 2000)), rng.normal(size=(6, 2000))
    test_bad[:2] *= 4.0

    def auroc(st):
        d = [np.linalg.norm(st.whiten[0] @ (x - st.mean[0][:, None]), axis=0) for x in (test_good, test_bad)]
        return roc_auc(np.r_[d[0], d[1]], [False] * 2000 + [True] * 2000)

    assert auroc(weighed) > auroc(plain) + 0.02
    # Anomalies indistinguishable from good cells change no ranking: every direction at the floor.
    same = normal.weigh_by_anomalies(plain, np.eye(6), 100, [6])
    assert np.allclose(same.whiten, np.sqrt(normal.WEIGHT_FLOOR) * plain.whiten, atol=1e-6)
    assert normal.weigh_by_anomalies(plain, np.eye(6), 0, [6]) is plain  # none painted: unchanged


def test_synthetic_anomalies_stay_inside_the_area_and_are_reproducible():
    from inspector.prefilter.synthetic import paint_anomaly

    base = np.full((300, 400, 3), 128, np.uint8)
    masks = []
    for seed in range(40):
        img = base.copy()
        mask = paint_anomaly(img, np.random.default_rng(seed), (50, 60, 350, 260))
        changed = np.any(img != base, axis=2)
        assert mask.any() and not changed[:60].any() and not changed[260:].any() and not changed[:, :50].any()
        assert np.all(changed[mask > 0] | (np.abs(img[mask > 0].astype(int) - 128) < 3).all(axis=1))
        masks.append(int((mask > 0).sum()))
    assert min(masks) < 100 < 2000 < max(masks)  # specks to patches
    a, b = base.copy(), base.copy()
    paint_anomaly(a, np.random.default_rng(7), (50, 60, 350, 260))
    paint_anomaly(b, np.random.default_rng(7), (50, 60, 350, 260))
    assert np.array_equal(a, b)


def test_weighted_statistics_set_painted_defects_further_from_good_parts(det, gravel):
    """The demo's defect painters (not the synthetic anomalies the weighting saw) on a surface
    the model never saw: weighed statistics set most of them further above every good part's peak."""
    good, bad = gravel
    frames = [cv2.imread(str(p)) for p in sorted(good.frames_dir.glob("*.png"))]
    import json

    rows = [json.loads(r) for r in bad.ground_truth.read_text().splitlines()]
    out = {}
    for weighted in (False, True):
        st = normal.fit_on(det, frames, ROI, weighted=weighted, components=1)
        assert (st.anomaly_cells > 500) == weighted
        roi_img = lambda im: np.ascontiguousarray(im[ROI[1]:ROI[3], ROI[0]:ROI[2]])  # noqa: E731
        top = max(float(det.anomaly_map(roi_img(f), st)[0].max()) for f in frames)
        peaks = []
        for row in rows:
            amap, cw, ch = det.anomaly_map(roi_img(cv2.imread(str(bad.frames_dir / row["image"]))), st)
            for d in row["defects"]:
                x0, y0, x1, y1 = d["box"]
                cells = amap[max(0, int((y0 - ROI[1]) / ch)):int(np.ceil((y1 - ROI[1]) / ch)) + 1,
                             max(0, int((x0 - ROI[0]) / cw)):int(np.ceil((x1 - ROI[0]) / cw)) + 1]
                peaks.append(float(cells.max()) / top if cells.size else 0.0)
        out[weighted] = np.array(peaks)
    assert len(out[True]) >= 12
    gain = out[True] / out[False]  # per defect: how much further above good parts' peaks
    assert np.exp(np.log(gain).mean()) > 1.1
    assert (out[True] > out[False]).mean() >= 0.75


@pytest.mark.parametrize("components", [1, 3])
def test_the_graph_distance_is_the_scaled_mahalanobis_distance(det, gravel, components):
    good, _ = gravel
    frames = [cv2.imread(str(p)) for p in sorted(good.frames_dir.glob("*.png"))[:12]]
    st = normal.fit_on(det, frames, ROI, components=components)
    assert st.components == components and (st.offset.min(axis=0) == 0).all()
    img = frames[0].copy()
    cv2.circle(img, (300, 240), 12, (0, 0, 200), -1)  # something far from normal
    f = det.features(img, ROI)[0].astype(np.float64)
    groups = det.normal_spec.groups
    d2 = np.full((len(groups), f[0].size), np.inf)
    for mean, whiten, offset in zip(st.mean, st.whiten, st.offset):  # the least over the components
        z = whiten.astype(np.float64) @ (f.reshape(len(f), -1) - mean[:, None].astype(np.float64))
        for k in range(len(groups)):
            d2[k] = np.minimum(d2[k], (z[sum(groups[:k]):sum(groups[:k + 1])] ** 2).sum(0) + offset[k])
    d = np.sqrt(d2) / st.scale[:, None]
    worst = np.max(d, axis=0).reshape(f.shape[1:]).astype(np.float32)
    expected = cv2.GaussianBlur(worst, (9, 9), 1.5, borderType=cv2.BORDER_REFLECT_101)  # 3 sigma
    got, _, _ = det.anomaly_map(np.ascontiguousarray(img[ROI[1]:ROI[3], ROI[0]:ROI[2]]), st)
    assert got.shape == expected.shape
    # The graph blurs over the map of the mirrored context too (cropped off afterwards), so the
    # 4 cells along the edge differ from a blur of the cropped map; everything inside is the same.
    assert np.allclose(got[4:-4, 4:-4], expected[4:-4, 4:-4], rtol=1e-3, atol=1e-3)
    assert got.max() > 3 * np.median(got)  # the red disc stands out


def test_calibration_fits_statistics_that_beat_the_model_map_on_an_unseen_surface(tmp_path, gravel):
    good, bad = gravel
    p = run_cli("calibrate", "thresholds", "--product", "demo-tile", "--good", str(good.frames_dir),
                "--bad", str(bad.frames_dir), "--target", "0.1", "--out-dir", str(tmp_path))
    assert p.returncode == 0, p.stderr
    lines = {ln.split(":")[0].strip(): ln for ln in p.stdout.splitlines()}
    flagged = {k: float(lines[k].split("flagged ")[1].split("%")[0]) for k in ("distance from normal", "model map")}
    assert flagged["distance from normal"] > flagged["model map"]
    doc = yaml.safe_load((tmp_path / "demo-tile.yaml").read_text())
    ref = doc["normal_statistics"]
    assert ref["file"] == "demo-tile.normal.npz" and (tmp_path / ref["file"]).is_file()
    assert doc["measured"]["false_reject_rate"] <= 0.1
    assert doc["measured"]["bad_recall"] == pytest.approx(flagged["distance from normal"] / 100, abs=1e-3)
    assert "each scored by statistics fitted on the others" in p.stdout
    assert ref["anomaly_cells"] > 500 and f"weighed by {ref['anomaly_cells']} cells of synthetic anomalies" in p.stdout
    assert ref["components"] == normal.COMPONENTS == 4 and "(4 Gaussians per feature group)" in p.stdout

    from inspector.config import load_config
    from inspector.prefilter.calibration import product_tuning

    cfg = load_config(None)
    cfg.calibration_dir = tmp_path
    det = build_detector(cfg.detector)
    t = product_tuning(cfg, det)["demo-tile"]
    assert t.threshold == doc["threshold"] and t.normal is not None
    assert list(np.round(t.normal.scale, 6)) == pytest.approx(ref["scale"])
    # The line's detection with these statistics finds what the model map alone misses.
    img = cv2.imread(str(sorted(bad.frames_dir.glob("*.png"))[0]))
    assert det.detect(img, ROI, t.threshold, t.normal)

    # Plain statistics when asked: nothing weighed, and the file says so.
    p = run_cli("calibrate", "thresholds", "--product", "demo-tile", "--good", str(good.frames_dir),
                "--target", "0.1", "--out-dir", str(tmp_path / "plain"), "--no-weighting", "--components", "1")
    assert p.returncode == 0, p.stderr
    plain = yaml.safe_load((tmp_path / "plain" / "demo-tile.yaml").read_text())["normal_statistics"]
    assert plain["anomaly_cells"] == 0 and plain["components"] == 1
    assert "synthetic anomalies" not in p.stdout and "(1 Gaussian per feature group)" in p.stdout
    p = run_cli("calibrate", "thresholds", "--product", "demo-tile", "--good", str(good.frames_dir),
                "--out-dir", str(tmp_path / "none"), "--components", "0")
    assert p.returncode != 0 and "--components must be at least 1, got 0" in p.stderr

    # Refitted without statistics: the statistics file goes with them.
    p = run_cli("calibrate", "thresholds", "--product", "demo-tile", "--good", str(good.frames_dir),
                "--target", "0.1", "--out-dir", str(tmp_path), "--no-statistics")
    assert p.returncode == 0, p.stderr
    assert not (tmp_path / "demo-tile.normal.npz").exists()
    assert yaml.safe_load((tmp_path / "demo-tile.yaml").read_text())["normal_statistics"] is None
    assert product_tuning(cfg, det)["demo-tile"].normal is None


def _calibrated(tmp_path, det, gravel):
    good, _ = gravel
    fitted = cal.fit(det, sorted(good.frames_dir.glob("*.png")), [], ROI, 0.1, True)
    c = cal.ProductCalibration(product="p", detector_model=det.model_id, threshold=fitted.threshold,
                               target_false_reject=0.1, measured=fitted.measured())
    cal.save(tmp_path, c, fitted.stats)
    return fitted


def test_changed_or_misfit_statistics_are_refused_naming_the_file(tmp_path, det, gravel):
    fitted = _calibrated(tmp_path, det, gravel)
    loaded = cal.load_for(tmp_path, "p", det).normal
    assert np.array_equal(loaded.whiten, fitted.stats.whiten) and np.array_equal(loaded.scale, fitted.stats.scale)
    npz = tmp_path / "p.normal.npz"
    data = bytearray(npz.read_bytes())
    data[-20] ^= 0xFF
    npz.write_bytes(bytes(data))
    with pytest.raises(cal.CalibrationError, match="p.normal.npz do not match the sha256.*calibrate thresholds"):
        cal.load_for(tmp_path, "p", det)
    npz.unlink()
    with pytest.raises(cal.CalibrationError, match="p.normal.npz"):
        cal.load_for(tmp_path, "p", det)
    # Statistics of the right form but another size (fitted for another model), sha256 updated.
    small = normal.NormalStatistics(np.zeros(3, np.float32), np.eye(3, dtype=np.float32), np.ones(2, np.float32))
    doc = yaml.safe_load((tmp_path / "p.yaml").read_text())
    doc["normal_statistics"]["sha256"] = normal.save(npz, small)
    (tmp_path / "p.yaml").write_text(yaml.safe_dump(doc))
    with pytest.raises(cal.CalibrationError, match="do not fit a model with 42 features"):
        cal.load_for(tmp_path, "p", det)


def test_too_few_good_parts_for_statistics_is_a_clear_error(tmp_path, det, gravel):
    good, _ = gravel
    with pytest.raises(cal.CalibrationError, match="5 good parts are too few.*--no-statistics"):
        cal.fit(det, sorted(good.frames_dir.glob("*.png"))[:5], [], ROI, 0.1, True)


def test_manifest_naming_missing_statistics_io_is_refused(tmp_path):
    import json

    model = tmp_path / "default-anomaly.onnx"
    shutil.copy(DetectorConfig().model, model)
    man = json.loads(DetectorConfig().manifest.read_text())
    man["models"][0]["normal_statistics"]["whiten"] = "whitening_matrix"
    (tmp_path / "manifest.json").write_text(json.dumps(man))
    with pytest.raises(ModelError, match=r"normal_statistics name \['whitening_matrix'\], which the model lacks"):
        build_detector(DetectorConfig(model=model, manifest=tmp_path / "manifest.json"))


def test_committed_model_is_what_the_head_script_builds():
    """models/normal_head.py on the trained network reproduces the committed model byte for byte
    (so the head, its defaults and the manifest's sha256 cannot drift apart silently)."""
    import onnx

    from models.normal_head import add_head, strip_head

    committed = onnx.load(str(DetectorConfig().model))
    inits = {i.name: onnx.numpy_helper.to_array(i) for i in committed.graph.initializer}
    rebuilt = add_head(strip_head(committed), inits["normal_mean"], inits["normal_whiten"], inits["normal_scale"],
                       inits["normal_offset"])
    assert rebuilt.SerializeToString() == committed.SerializeToString()


def test_statistics_saved_before_the_weighting_still_load(tmp_path):
    import hashlib
    import io

    buf = io.BytesIO()
    np.savez(buf, mean=np.zeros(2, np.float32), whiten=np.eye(2, dtype=np.float32), scale=np.ones(1, np.float32),
             cells=np.int64(10))  # the file format of older calibrations: no anomaly_cells
    (tmp_path / "old.npz").write_bytes(buf.getvalue())
    st = normal.load(tmp_path / "old.npz", hashlib.sha256(buf.getvalue()).hexdigest(), 2, 1)
    assert st.cells == 10 and st.anomaly_cells == 0
    assert st.components == 1 and st.mean.shape == (1, 2) and st.offset.shape == (1, 1) and not st.offset.any()


def test_a_mixture_sees_what_lies_between_two_kinds_of_surface():
    """Cells of two kinds (say stone faces and the shadows between them): one Gaussian spans the
    gap between them, so a cell there looks normal to it; a mixture of two does not."""
    from inspector.prefilter import mixture

    rng = np.random.default_rng(5)
    kinds = rng.normal(size=(3, 20000))
    kinds[0] += np.where(rng.random(20000) < 0.5, -4.0, 4.0)
    fit = NormalFit()
    fit.add(kinds.reshape(1, 3, 100, 200))
    one = fit.result([3])
    two = normal.mix(one, kinds.T, [3], 2)
    assert two.components == 2 and two.offset.min() == 0 and two.offset.max() < 0.1  # equal halves
    between = np.array([[0.0, 0.0, 0.0]])
    inside = rng.normal(size=(2000, 3)) + np.array([4.0, 0.0, 0.0])
    assert one.group_distances(between, [3])[0, 0] < 0.5  # the middle of one Gaussian
    assert two.group_distances(between, [3])[0, 0] > 3.5  # 4 sigma from either kind
    assert np.median(two.group_distances(inside, [3])) < 2.0  # a good cell stays near normal
    # The composed statistics (what the graph is fed) are the mixture fitted in whitened space.
    def whitened(x):
        return (x - one.mean[0]) @ one.whiten[0].T.astype(np.float64)

    m = mixture.fit(whitened(kinds.T), 2)
    assert np.allclose(two.group_distances(inside, [3])[:, 0], np.sqrt(m.distance2(whitened(inside))), rtol=1e-4)


def test_a_mixture_is_not_fitted_on_fewer_cells_than_it_needs():
    from inspector.prefilter import mixture

    x = np.random.default_rng(6).normal(size=(100, 10))  # 100 cells carry 2 components of 10-D at most
    assert len(mixture.fit(x, 8).weights) == 2


def test_mirrored_context_keeps_good_parts_peaks_off_the_roi_edge(det, gravel):
    """Without context the network's zero padding makes cells along the ROI's edge unlike the
    surface: most good parts' highest distance sat there, and set the threshold."""
    import dataclasses

    good, _ = gravel
    frames = [cv2.imread(str(p)) for p in sorted(good.frames_dir.glob("*.png"))]
    assert det.feed.context == 16  # from the manifest
    share = {}
    for context in (16, 0):
        d = build_detector(DetectorConfig())
        d.feed = dataclasses.replace(d.feed, context=context)
        st = normal.fit_on(d, frames, ROI, weighted=False, components=1)
        at_edge = []
        for f in frames:
            m = d.anomaly_map(np.ascontiguousarray(f[ROI[1]:ROI[3], ROI[0]:ROI[2]]), st)[0]
            assert m.shape == (78, 106)  # the context's cells are cropped off again
            y, x = np.unravel_index(m.argmax(), m.shape)
            at_edge.append(min(y, x, m.shape[0] - 1 - y, m.shape[1] - 1 - x) < 2)
        share[context] = float(np.mean(at_edge))
    assert share[0] >= 0.6 and share[16] <= 0.4  # measured 0.83 and 0.25; the 2-cell band is 9% of the map


def test_a_context_pad_that_is_not_a_multiple_of_the_stride_is_refused(tmp_path):
    import json

    model = tmp_path / "default-anomaly.onnx"
    shutil.copy(DetectorConfig().model, model)
    man = json.loads(DetectorConfig().manifest.read_text())
    man["models"][0]["input"]["context_pad"] = 6
    (tmp_path / "manifest.json").write_text(json.dumps(man))
    with pytest.raises(ModelError, match="context_pad of default-anomaly.onnx is 6; expected a whole multiple of the output stride 4"):
        build_detector(DetectorConfig(model=model, manifest=tmp_path / "manifest.json"))


def test_a_group_with_fewer_cells_than_components_repeats_its_first_at_its_own_cost():
    """120 cells carry 4 components of the 2-feature group but only 2 of the 12-feature one: the
    12-feature group's spare slots repeat its first component with that component's own offset,
    so each group is still scored by exactly its own mixture."""
    from inspector.prefilter import mixture

    rng = np.random.default_rng(10)  # a draw whose first 12-feature component is the rarer kind
    x = rng.normal(size=(120, 14))
    x[:, 0] += np.where(rng.random(120) < 0.3, -5.0, 5.0)
    x[:, 2] += np.where(rng.random(120) < 0.3, -6.0, 6.0)  # two kinds of unequal share: unequal offsets
    fit = NormalFit()
    fit.add(x.T.reshape(1, 14, 10, 12))
    one = fit.result([2, 12])
    mixed = normal.mix(one, x, [2, 12], 4)
    z = (x - one.mean[0]) @ one.whiten[0].T.astype(np.float64)
    small, wide = mixture.fit(z[:, :2], 4), mixture.fit(z[:, 2:], 4)
    assert len(small.weights) == 4 and len(wide.weights) == 2 and wide.penalty()[0] > 0.5
    assert np.allclose(mixed.offset[:, 1], wide.penalty()[[0, 1, 0, 0]], atol=1e-5)
    got = mixed.group_distances(x, [2, 12])
    assert np.allclose(got[:, 0], np.sqrt(small.distance2(z[:, :2])), rtol=1e-4)
    assert np.allclose(got[:, 1], np.sqrt(wide.distance2(z[:, 2:])), rtol=1e-4)
