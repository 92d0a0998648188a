"""`inspector bench reasoner`: calls/s and latency of each backend on the tiny test VLM, and our
layer's overhead against the bare call it wraps, all on the same crop in the same run.

Cases:
- bare llama-cpp-python: `Llama.create_chat_completion` with our exact messages and schema.
- llama_cpp backend: `LlamaCppReasoner.analyze` (prompt, PNG, call, validation, mapping).
- bare HTTP: one `httpx` POST of our exact request body to `python -m llama_cpp.server`.
- openai backend: `OpenAIReasoner.analyze` against that server, 1 worker, then 4 in parallel.
Temperature 0 makes every call generate the same tokens, so bare and wrapped calls do the same
model work; an analysis that needed a repair call is counted per model call.
"""

from __future__ import annotations

import json
import logging
import statistics
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import cv2


def _pct(xs: list[float], q: float) -> float:
    xs = sorted(xs)
    return xs[min(len(xs) - 1, round(q * (len(xs) - 1)))]


def _row(name: str, lat_ms: list[float], wall_s: float, calls: int) -> dict:
    return {"case": name, "calls": calls, "p50_ms": round(statistics.median(lat_ms), 2),
            "p95_ms": round(_pct(lat_ms, 0.95), 2), "calls_per_s": round(calls / wall_s, 2)}


def _crop(workdir: Path):
    from inspector.config import CropperConfig, DetectorConfig
    from inspector.cropper import make_crops
    from inspector.demo.line import ROI, generate
    from inspector.prefilter import build_detector

    line = generate(workdir / "line", parts=6, seed=11)
    det = build_detector(DetectorConfig())
    for f in sorted(line.frames_dir.iterdir()):
        img = cv2.imread(str(f))
        crops = make_crops(img, det.detect(img, ROI), CropperConfig(max_crops=1))
        if crops:
            return crops[0]
    raise RuntimeError("the bench line produced no candidate to ask about")


def main(calls: int = 20, as_json: bool = False, workdir: Path | None = None) -> int:
    from llama_cpp import Llama, LlamaGrammar
    from llama_cpp.llama_chat_format import MTMDChatHandler

    import httpx

    from inspector.config import LlamaCppReasonerConfig, OpenAIReasonerConfig, ProductConfig
    from inspector.reasoner import REPAIR_MARK, prompt
    from inspector.reasoner.answer import answer_schema
    from inspector.reasoner.grammar import answer_gbnf
    from inspector.reasoner.llama_cpp import LlamaCppReasoner, _quiet_native_logs
    from inspector.reasoner.local_server import LocalLlamaServer
    from inspector.reasoner.openai import OpenAIReasoner
    from inspector.reasoner.test_model import ensure_test_model

    tmp = tempfile.TemporaryDirectory(prefix="inspector-bench-") if workdir is None else None
    work = Path(tmp.name) if tmp else Path(workdir)
    work.mkdir(parents=True, exist_ok=True)
    files = ensure_test_model(work / "test-vlm")
    crop = _crop(work)
    product = ProductConfig()
    common = dict(temperature=0.0, max_tokens=1024, second_look={"max_looks": 1}, seed=0)
    rows = []

    # --- in process -------------------------------------------------------------------------
    ours = LlamaCppReasoner(LlamaCppReasonerConfig(type="llama_cpp", model=files.model,
                                                   mmproj=files.mmproj, **common), work)
    schema = answer_schema(list(product.defects), ours.profile.integer_boxes)
    gbnf = answer_gbnf(list(product.defects), ours.profile, *crop.image.shape[1::-1])
    grammar = LlamaGrammar.from_string(gbnf, verbose=False)
    msgs = prompt.messages(crop, product, ours.profile, schema, mark=True)
    _quiet_native_logs(False)
    bare = Llama(model_path=str(files.model), chat_handler=MTMDChatHandler(
        clip_model_path=str(files.mmproj), verbose=False), n_ctx=4096, seed=0, verbose=False)

    def bare_call():
        bare.create_chat_completion(messages=msgs, max_tokens=1024, temperature=0.0, seed=1,
                                    grammar=grammar)

    logging.getLogger("inspector.reasoner").setLevel(logging.WARNING)  # repairs are expected here

    def timed(fn, n):
        fn()  # warm-up: first image encode, grammar compile
        lat, t0 = [], time.perf_counter()
        for _ in range(n):
            t = time.perf_counter()
            fn()
            lat.append((time.perf_counter() - t) * 1000)
        return lat, time.perf_counter() - t0

    def wrapped_row(name, reasoner, bare_row):
        """Time `analyze`, per model call: a random model's answer may need the repair call."""
        per_call = []

        def call():
            t = time.perf_counter()
            rep = reasoner.analyze(crop, product)
            n = rep.raw.count(REPAIR_MARK) + 1  # one look (max_looks 1): raw holds every call
            per_call.append((time.perf_counter() - t) * 1000 / n)

        lat, wall = timed(call, calls)
        per_call = per_call[1:]  # drop the warm-up
        row = _row(name, lat, wall, calls)
        row["model_calls_per_analysis"] = round(statistics.mean(a / b for a, b in zip(lat, per_call)), 2)
        row["p50_ms_per_model_call"] = round(statistics.median(per_call), 2)
        row["overhead_ratio"] = round(row["p50_ms_per_model_call"] / bare_row["p50_ms"], 3)
        return row

    lat, wall = timed(bare_call, calls)
    rows.append(_row("bare llama-cpp-python", lat, wall, calls))
    rows.append(wrapped_row("llama_cpp backend", ours, rows[-1]))
    ours.close()
    bare.close()

    # --- over HTTP ----------------------------------------------------------------------------
    def http_reasoner(workers: int) -> OpenAIReasoner:
        return OpenAIReasoner(OpenAIReasonerConfig(type="openai", base_url=srv.base_url,
                                                   server="llama_cpp_python", workers=workers, **common))

    with LocalLlamaServer(files.model, files.mmproj, log_path=work / "server.log") as srv:
        r = http_reasoner(1)
        body = r.request_body(msgs, schema, gbnf)
        with httpx.Client(timeout=60) as c:
            lat, wall = timed(lambda: c.post(f"{srv.base_url}/chat/completions", json=body)
                              .raise_for_status(), calls)
        rows.append(_row("bare HTTP POST", lat, wall, calls))
        rows.append(wrapped_row("openai backend, 1 worker", r, rows[-1]))
        r.close()

        workers = 4
        r = http_reasoner(workers)
        r.analyze(crop, product)  # warm-up
        lat = []

        def one(_):
            t = time.perf_counter()
            r.analyze(crop, product)
            lat.append((time.perf_counter() - t) * 1000)

        t0 = time.perf_counter()
        with ThreadPoolExecutor(workers) as pool:
            list(pool.map(one, range(calls)))
        rows.append(_row(f"openai backend, {workers} workers", lat, time.perf_counter() - t0, calls))
        r.close()
    if tmp:
        tmp.cleanup()

    h, w = crop.image.shape[:2]
    print(f"reasoner bench: tiny test VLM (random weights), crop {w}x{h}, {calls} timed calls per "
          f"case, temperature 0, max_tokens 1024")
    print(f"{'case':34} {'p50 ms':>9} {'p95 ms':>9} {'calls/s':>9} {'per call':>9} {'ratio':>7}")
    for r in rows:
        print(f"{r['case']:34} {r['p50_ms']:9.2f} {r['p95_ms']:9.2f} {r['calls_per_s']:9.2f} "
              f"{r.get('p50_ms_per_model_call', r['p50_ms']):9.2f} "
              + (f"{r['overhead_ratio']:7.3f}" if "overhead_ratio" in r else f"{'-':>7}"))
    print("ratio = our p50 per model call / the bare p50 it wraps (1.000 = no overhead). In-process "
          "and HTTP rows are not comparable with each other: llama_cpp.server applies its own "
          "sampling defaults (e.g. repeat penalty), so the random model writes different answers.")
    if as_json:
        print(json.dumps({"bench": "reasoner", "calls": calls, "rows": rows}))
    return 0
