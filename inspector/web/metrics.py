"""`/metrics` for Prometheus: the line's status, read when scraped (no second set of counters to
keep in step with the pipeline's)."""

from __future__ import annotations

from collections.abc import Callable

from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, SummaryMetricFamily

from inspector.line.status import LineStatus

CONNECTIONS = ("connecting", "connected", "reconnecting")
STATES = ("starting", "running", "exhausted", "failed")


class LineCollector:
    def __init__(self, status: Callable[[], LineStatus]):
        self.status = status

    def collect(self):
        st = self.status()
        cams = st.cameras
        line = GaugeMetricFamily("inspector_line_up", "1 while the line runs (0: a separate dashboard's line "
                                                      "does not answer)")
        line.add_metric([], 1.0 if st.line.up else 0.0)
        yield line
        per_cam = [
            ("frames_in", "inspector_camera_frames", "frames captured", CounterMetricFamily),
            ("frames_inspected", "inspector_camera_frames_inspected", "frames through the pre-filter", CounterMetricFamily),
            ("dropped", "inspector_camera_frames_dropped", "frames dropped by the capture buffer", CounterMetricFamily),
            ("untriggered", "inspector_camera_frames_untriggered", "frames the trigger let pass", CounterMetricFamily),
            ("read_errors", "inspector_camera_read_errors", "frames that could not be read", CounterMetricFamily),
            ("reconnects", "inspector_camera_reconnects", "reconnect attempts of a live camera", CounterMetricFamily),
            ("lost", "inspector_camera_frames_lost", "frames a camera sent that never arrived (frame id gaps)",
             CounterMetricFamily),
            ("buffered", "inspector_camera_buffered_frames", "frames waiting for the pre-filter", GaugeMetricFamily),
            ("last_frame_wall", "inspector_camera_last_frame_timestamp_seconds", "when the last frame came", GaugeMetricFamily),
        ]
        for key, name, doc, kind in per_cam:
            m = kind(name, doc, labels=["camera"])
            for c in cams:
                if getattr(c, key) is not None:
                    m.add_metric([c.id], float(getattr(c, key)))
            yield m
        lat = GaugeMetricFamily("inspector_camera_latency_seconds",
                                "capture-to-verdict latency over the last verdicts", labels=["camera", "quantile"])
        for c in cams:
            for q, key in (("0.5", "latency_p50_ms"), ("0.95", "latency_p95_ms")):
                if getattr(c, key) is not None:
                    lat.add_metric([c.id, q], getattr(c, key) / 1000)
        yield lat
        up = GaugeMetricFamily("inspector_camera_state", "1 for the camera's current state",
                               labels=["camera", "state"])
        for c in cams:
            for s in (*STATES, *CONNECTIONS):
                up.add_metric([c.id, s], 1.0 if s == c.shown_state else 0.0)
        yield up
        verdicts = CounterMetricFamily("inspector_verdicts", "verdicts stored", labels=["verdict"])
        for k, v in st.verdicts.items():
            verdicts.add_metric([k], float(v))
        yield verdicts
        for key, doc in (("vlm_queue", "crops waiting for the VLM"), ("vlm_backlog", "crops kept on disk for the VLM"),
                         ("vlm_spool", "frames spooled on disk for the VLM")):
            g = GaugeMetricFamily(f"inspector_{key}", doc)
            g.add_metric([], float(getattr(st, key)))
            yield g
        dec = st.decisions
        told = CounterMetricFamily("inspector_line_decisions", "OK/NG decisions told to the line",
                                   labels=["answer"])
        for answer in ("ok", "ng"):
            told.add_metric([answer], float(getattr(dec, answer)))
        yield told
        basis = CounterMetricFamily("inspector_line_decision_basis", "line decisions by what decided them "
                                    "(verdict; deadline: the late policy; overrun; error: not inspected)",
                                    labels=["basis"])
        for b in ("verdict", "deadline", "overrun", "error"):
            basis.add_metric([b], float(getattr(dec, b)))
        yield basis
        late = CounterMetricFamily("inspector_line_decisions_late", "line decisions published after the "
                                                                    "product's deadline")
        late.add_metric([], float(dec.late))
        yield late
        plc_fams = [("clients", GaugeMetricFamily, "inspector_plc_clients", "PLC connections now"),
                    ("triggers", CounterMetricFamily, "inspector_plc_triggers", "triggers from the PLC"),
                    ("overruns", CounterMetricFamily, "inspector_plc_overruns", "PLC triggers refused while busy"),
                    ("errors", CounterMetricFamily, "inspector_plc_errors", "error codes set for the PLC"),
                    ("no_image", CounterMetricFamily, "inspector_plc_no_image",
                     "PLC triggers whose image never came (answered NG)"),
                    ("ready", GaugeMetricFamily, "inspector_plc_ready",
                     "1 while the link takes triggers (reject: the I/O module is reachable)")]
        for key, kind, name, doc in plc_fams:
            m = kind(name, doc, labels=["link", "camera"])
            for p in st.plc:
                m.add_metric([p.kind, p.camera], float(getattr(p, key)))
            yield m
        cands = CounterMetricFamily("inspector_candidates", "detector candidates (regions flagged)")
        cands.add_metric([], float(st.candidates))
        yield cands
        r = st.reasoner
        if r is not None:
            for key, name, doc in (("calls", "inspector_vlm_calls", "VLM model calls (answers and repairs)"),
                                   ("call_errors", "inspector_vlm_call_errors", "VLM calls that failed (down, "
                                                                               "timeout, HTTP error)"),
                                   ("unusable_answers", "inspector_vlm_unusable_answers",
                                    "VLM answers refused by validation"),
                                   ("zoom_rounds", "inspector_vlm_zoom_rounds", "zoomed regions the VLM asked "
                                                                               "for and was shown"),
                                   ("zoom_errors", "inspector_vlm_zoom_errors", "VLM zoom requests answered "
                                                                               "with an error (bad region, none left)"),
                                   ("zooms_past_deadline", "inspector_vlm_zooms_past_deadline",
                                    "VLM calls made without offering the zoom: the part's deadline left no room")):
                m = CounterMetricFamily(name, doc)
                m.add_metric([], float(getattr(r, key)))
                yield m
            lat = SummaryMetricFamily("inspector_vlm_call_seconds", "time per VLM model call")
            lat.add_metric([], count_value=float(r.calls), sum_value=float(r.call_seconds))
            yield lat
        store = st.store
        if store is not None:
            for key, name, doc, kind in (
                ("images_paused", "inspector_store_images_paused", "1 while pictures are not saved (disk full or "
                                  "over budget): the alert", GaugeMetricFamily),
                ("images_skipped", "inspector_store_images_skipped", "pictures not saved", CounterMetricFamily),
                ("images_bytes", "inspector_store_images_bytes", "disk the saved pictures take", GaugeMetricFamily),
                ("disk_free_bytes", "inspector_disk_free_bytes", "free space on the data directory's disk",
                 GaugeMetricFamily),
                ("writer_queue", "inspector_store_writer_queue", "verdicts waiting for the writer", GaugeMetricFamily),
                ("writer_committed", "inspector_store_verdicts_committed", "verdicts committed by the writer",
                 CounterMetricFamily),
                ("writer_failed", "inspector_store_verdicts_refused", "verdicts the database refused",
                 CounterMetricFamily),
                ("retention_deleted_files", "inspector_store_retention_deleted", "pictures removed by retention",
                 CounterMetricFamily),
            ):
                m = kind(name, doc)
                m.add_metric([], float(getattr(store, key) or 0))
                yield m
        sinks = st.events
        for key, name, doc, kind in (
            ("sent", "inspector_events_sent", "events delivered", CounterMetricFamily),
            ("failures", "inspector_events_failures", "failed delivery attempts", CounterMetricFamily),
            ("dropped", "inspector_events_dropped", "events skipped because the backlog was full", CounterMetricFamily),
            ("pending", "inspector_events_pending", "events waiting to be delivered", GaugeMetricFamily),
        ):
            m = kind(name, doc, labels=["sink"])
            for e in sinks:
                m.add_metric([e.name], float(getattr(e, key)))
            yield m


def render(status: Callable[[], LineStatus]) -> bytes:
    reg = CollectorRegistry(auto_describe=False)
    reg.register(LineCollector(status))
    return generate_latest(reg)
