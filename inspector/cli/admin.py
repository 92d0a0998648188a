"""`inspector doctor`, `install`, `config` and `bench`: the box, its config and its speed."""

from __future__ import annotations

import json
import logging
import sys

from inspector.cli.common import _fail, _known_product, _load
from inspector.errors import InspectorError


def cmd_doctor(args) -> int:
    from inspector.service import doctor

    if not args.verbose:  # the checks' own words, not the libraries' start-up chatter
        logging.getLogger().setLevel(logging.WARNING)
    cfg = _load(args)
    checks = doctor.run(cfg)
    # With --json, stdout is the JSON alone (a script parses it); the words go to stderr.
    human = sys.stderr if args.json else sys.stdout
    for c in checks:
        print(f"{'ok  ' if c.ok else 'FAIL'} {c.name}: {c.detail}", file=human)
    bad = [c for c in checks if not c.ok]
    if args.json:
        print(json.dumps([{"name": c.name, "ok": c.ok, "detail": c.detail} for c in checks]))
    print(f"{len(bad)} problem(s): {', '.join(c.name for c in bad)}" if bad else "all checks passed",
          file=sys.stderr)
    return 1 if bad else 0


def cmd_install(args) -> int:
    from inspector.service import install

    try:
        return install.main(args.root.resolve(), args.reasoner, args.dry_run)
    except (install.InstallError, OSError) as e:
        _fail(f"install: {e}")


def cmd_config(args) -> int:
    from inspector.config import defaults_yaml

    if args.config:
        import yaml

        from inspector.util.redact import redact_config

        cfg = _load(args)
        # Secrets stay out of a dump that gets pasted into tickets: URLs' passwords, api_key.
        print(yaml.safe_dump(redact_config(cfg.model_dump(mode="json")), sort_keys=False), end="")
    else:
        print(defaults_yaml(), end="")
    return 0


def cmd_bench(args) -> int:
    if args.what == "store":
        from inspector.bench import store as bench_store

        return bench_store.main(writes_n=args.calls or 5000, inspections=args.inspections, as_json=args.json)
    if args.what == "web":
        from inspector.bench import web as bench_web

        return bench_web.main(inspections=args.inspections, rounds=args.calls or 30, as_json=args.json)
    if args.what == "loop" and args.source != "video":
        from inspector.bench import camera as bench_camera

        # enough frames for about a second of the simulated camera's rate
        return bench_camera.main(args.source, frames=args.calls or (1000 if args.source == "aravis" else 5000),
                                 as_json=args.json)
    if args.what == "loop":
        from inspector.bench import loop as bench_loop

        return bench_loop.main(frames=args.calls or 200, as_json=args.json)
    if args.what == "plc":
        from inspector.bench import plc as bench_plc

        return bench_plc.main(parts=args.calls or 50, as_json=args.json)
    if args.what == "line":
        from inspector.bench import line as bench_line

        return bench_line.main(parts=args.calls or 60, as_json=args.json)
    if args.what == "stop":
        from inspector.bench import stop as bench_stop

        return bench_stop.main(rounds=args.calls or 3, as_json=args.json)
    if args.what == "prefilter":
        from inspector.bench import prefilter as bench_prefilter

        cfg = _load(args)
        _known_product(cfg, args.product)
        try:
            return bench_prefilter.main(cfg.detector, frames=args.calls or 20, as_json=args.json, cfg=cfg,
                                        product=args.product)
        except InspectorError as e:
            _fail(str(e))
    from inspector.bench import reasoner as bench_reasoner

    return bench_reasoner.main(calls=args.calls or 20, as_json=args.json, workdir=args.workdir)
