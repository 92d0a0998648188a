"""`inspector db` and `export`: the database's schema, and what is in it taken out."""

from __future__ import annotations

from pathlib import Path

from inspector.cli.common import _fail, _load, _open_store


def cmd_db(args) -> int:
    from sqlalchemy import create_engine

    from inspector.store import schema

    from sqlalchemy.exc import DBAPIError

    from inspector.util.redact import redact_text, redact_url

    cfg = _load(args)
    url = cfg.database_url
    shown = redact_url(url)
    if url.startswith("sqlite:///"):
        Path(url.removeprefix("sqlite:///")).parent.mkdir(parents=True, exist_ok=True)
    engine = create_engine(url)
    try:
        if args.action == "current":
            rev = schema.current(engine)
            print(f"{shown}: schema revision {rev or 'none'} (this version needs {schema.head()})")
            return 0
        with schema.one_at_a_time(engine, url):
            before, after = schema.upgrade(engine)
    except schema.SchemaError as e:
        _fail(f"{shown}: {e}")
    except DBAPIError as e:
        _fail(redact_text(f"{shown}: cannot use the database: {str(getattr(e, 'orig', e)).splitlines()[0]}"))
    finally:
        engine.dispose()
    if before == after:
        print(f"{shown}: already at schema revision {after}")
    else:
        print(f"{shown}: schema revision {before or 'none (made before migrations)'} -> {after}")
    return 0


def _when(text: str, what: str):
    """An ISO date/time (UTC), or an age back from now: 30m, 12h, 7d."""
    import re
    from datetime import datetime, timedelta, timezone

    now = datetime.now(timezone.utc).replace(tzinfo=None)
    m = re.fullmatch(r"(\d+)([mhd])", text.strip())
    if m:
        unit = {"m": "minutes", "h": "hours", "d": "days"}[m[2]]
        return now - timedelta(**{unit: int(m[1])})
    try:
        t = datetime.fromisoformat(text.strip().removesuffix("Z"))
    except ValueError:
        _fail(f"{what} {text!r}: expected an ISO date or time (2026-11-24, 2026-11-24T06:00) or an age "
              f"(30m, 12h, 7d)")
    return t.astimezone(timezone.utc).replace(tzinfo=None) if t.tzinfo else t


def cmd_export(args) -> int:
    from inspector.store.export import export

    if args.include_good and args.format not in ("coco", "yolo"):
        _fail("--include-good adds defect-free parts to a dataset: use it with --format coco or yolo")
    cfg = _load(args)
    since = _when(args.since, "--since")
    until = _when(args.until, "--until") if args.until else None
    if until is not None and until <= since:
        _fail("--until must be after --since")
    store = _open_store(cfg)
    try:
        counts = export(store, args.out, args.format, since, until, include_good=args.include_good)
    except OSError as e:
        _fail(f"cannot write {args.out}: {e.strerror or e}")
    finally:
        store.close()
    what = (f"{counts['rows']} inspections" if "rows" in counts else
            f"{counts['images'] - counts['good']} reviewed defective parts, {counts['boxes']} boxes, classes "
            f"{counts['classes']}" + (f", {counts['good']} parts reviewed good" if args.include_good else ""))
    print(f"exported {what} from {since.isoformat()}Z{' to ' + until.isoformat() + 'Z' if until else ''} "
          f"to {args.out} ({args.format})")
    return 0
