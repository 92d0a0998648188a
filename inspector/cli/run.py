"""`inspector run`, `demo` and `web`: the flags onto the config, then the service runs it."""

from __future__ import annotations

from inspector.cli.common import _load


def cmd_run(args) -> int:
    from inspector.config import LlamaCppReasonerConfig
    from inspector.service.run_line import run_line

    cfg = _load(args)
    if args.test_vlm:
        cfg.reasoner = LlamaCppReasonerConfig(type="llama_cpp", test_model=True)
    if args.port:
        cfg.web.port = args.port
    if args.no_web:
        cfg.web.enabled = False
    if args.data_dir:
        cfg.data_dir = args.data_dir
    for cam in cfg.cameras:
        if args.exit_when_done and hasattr(cam.source, "loop"):
            cam.source.loop = False  # a looping replay would never be done
        if args.fast and hasattr(cam.source, "fps"):
            cam.source.fps = None
    return run_line(cfg, exit_when_done=args.exit_when_done, verdicts_out=args.verdicts_out)


def cmd_web(args) -> int:
    from inspector.service.dashboard import serve_dashboard

    cfg = _load(args)
    if args.port:
        cfg.web.port = args.port
    return serve_dashboard(cfg)
