"""`inspector bench loop` measures what it says, in one run."""

import json

import pytest

from tests.conftest import run_cli


def test_bench_loop_prints_rates_ratios_and_keeps_every_crop():
    p = run_cli("bench", "loop", "--frames", "40", "--json")
    assert p.returncode == 0, p.stderr
    assert "bare cv2.VideoCapture.read() loop" in p.stdout and "VLM taking 2 s per crop" in p.stdout
    r = json.loads(p.stdout.strip().splitlines()[-1])
    assert r["frame"] == [1280, 1024] and r["frames"] == 40
    assert r["capture_ratio"] == pytest.approx(r["capture_fps"] / r["bare_read_fps"], abs=0.002)
    line, live, slow = r["line"], r["live"], r["slow_vlm"]
    assert line["frames_in"] == line["frames_inspected"] == 40 and line["dropped"] == 0  # replay: block
    for run in (live, slow):  # live: every frame either judged or counted as dropped
        assert run["frames_in"] == 40 and run["frames_inspected"] + run["dropped"] == 40
    assert slow["candidates"] > 0 and slow["vlm_queue_max"] <= 2
    # Nothing lost: every frame whose crops did not fit the VLM queue has them in the backlog.
    assert slow["vlm_backlog"] >= slow["vlm_overflow"]
    assert r["slow_vlm_capture_ratio"] == pytest.approx(slow["capture_fps"] / live["capture_fps"], abs=0.002)


def test_bench_store_prints_write_rates_and_read_percentiles():
    p = run_cli("bench", "store", "--frames", "300", "--inspections", "3000", "--json")
    assert p.returncode == 0, p.stderr
    r = json.loads(p.stdout.strip().splitlines()[-1])
    assert r["writes"] == 300 and r["inspections"] == 3000
    assert r["ratio"] == pytest.approx(r["writer_per_s"] / r["bare_insert_per_s"], abs=0.01)
    assert r["writer_per_s"] > r["save_one_by_one_per_s"] > 0  # batching is what the writer is for
    assert r["with_pictures"] == 50 and r["pictures_normal_per_s"] > 0 and r["pictures_full_per_s"] > 0
    assert r["full_over_normal"] == pytest.approx(r["pictures_full_per_s"] / r["pictures_normal_per_s"], abs=0.01)
    assert set(r["reads"]) == {"feed first page", "feed, fails only", "feed, one camera", "feed, an older page",
                               "verdict counts (stats)"}
    assert all(0 < v["p50_ms"] <= v["p95_ms"] for v in r["reads"].values())


def test_bench_store_database_holds_what_it_says(tmp_path):
    from inspector.bench.store import big_database
    from inspector.store import Store

    big_database(tmp_path, 1234)
    store = Store(f"sqlite:///{tmp_path / 'big.db'}", tmp_path)
    try:
        c = store.counts()
        assert c["total"] == 1234 and c["fail"] == 123 and len(store.feed(limit=50, kind="fail")) == 50
    finally:
        store.close()


def test_bench_web_times_every_page_against_its_bare_query():
    p = run_cli("bench", "web", "--inspections", "3000", "--calls", "3", "--json")
    assert p.returncode == 0, p.stdout + p.stderr  # the 100 ms bar is reported, not a failure
    r = json.loads(p.stdout.strip().splitlines()[-1])
    assert r["inspections"] == 3000 and r["rounds"] == 3 and r["bar_ms"] == 100
    cases = {c["case"]: c for c in r["cases"]}
    assert {"feed page (HTML)", "stats API, last 24 h", "stats API, 30 days (all rows)"} <= set(cases)
    for c in cases.values():
        assert 0 < c["server"]["p50_ms"] <= c["server"]["p95_ms"]
        assert c["over_bar"] == (c["server"]["p95_ms"] >= 100)
        assert (f"{c['case']:34s}" in p.stdout) and (("OVER the 100 ms bar" in next(
            line for line in p.stdout.splitlines() if line.strip().startswith(c["case"]))) == c["over_bar"])
        assert c["ratio_p50"] == pytest.approx(c["server"]["p50_ms"] / c["bare_store"]["p50_ms"], abs=0.01)
    # the frozen start-up heap is what keeps the collector's full passes out of the p95
    assert r["gc_full_pass_ms"]["frozen"] < r["gc_full_pass_ms"]["startup_heap"]


def test_bench_plc_measures_both_links_against_their_own_round_trip():
    p = run_cli("bench", "plc", "--calls", "6", "--json", timeout=600)
    assert p.returncode == 0, p.stderr
    assert "target < 2" in p.stdout and "Traceback" not in p.stderr
    r = json.loads(p.stdout.strip().splitlines()[-1])
    assert r["bench"] == "plc" and r["parts"] == 6 and r["acquisition"] == "triggered"
    assert [x["link"] for x in r["links"]] == ["opcua", "modbus"]
    for x in r["links"]:
        # Every part measured at both ends: heard by the PLC and stored by the line (warm-up parts
        # not counted). How fast is the bench's to print, not this test's to judge.
        assert x["results_heard"] == x["line_decisions_stored"] == 6
        assert x["trigger_to_result_p99_ms"] >= x["trigger_to_result_p50_ms"]  # percentiles of one set
        assert x["ratio"] == pytest.approx(x["trigger_to_result_p50_ms"]
                                           / (x["round_trip_median_ms"] + r["prefilter_median_ms"]), abs=0.02)


@pytest.mark.parametrize("source", ["pylon", "aravis"])
def test_bench_loop_on_a_simulated_machine_vision_camera(source):
    """Our capture worker against the library's bare loop on the same simulated camera, and software
    trigger latency: the numbers are printed; what is checked is that they were measured."""
    from tests import fake_gv_camera
    from tests.conftest import need

    if source == "aravis":
        need("Aravis", fake_gv_camera.available(), "./bootstrap.sh test installs it")
    else:
        import importlib.util

        need("pypylon", importlib.util.find_spec("pypylon") is not None, "./bootstrap.sh test installs it")
    p = run_cli("bench", "loop", "--source", source, "--frames", "100", "--json", timeout=600)
    assert p.returncode == 0, p.stderr[-2000:]
    res = json.loads(p.stdout.strip().splitlines()[-1])
    assert res["source"] == source and res["frames"] == 100 and res["triggers"] == 50
    assert res["bare_fps"] > 0 and res["capture_fps"] > 0
    assert res["capture_ratio"] == pytest.approx(res["capture_fps"] / res["bare_fps"], abs=0.01)
    t = res["trigger_ms"]
    assert 0 < t["ours_p50"] <= t["ours_p99"] and 0 < t["bare_p50"] <= t["bare_p99"]
    assert "our capture worker" in p.stdout and "(bar >= 0.9)" in p.stdout
