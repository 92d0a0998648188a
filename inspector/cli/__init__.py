"""Command line: `inspector run | web | demo | detect | reason | bench | doctor | install | ...`.

Thin: `parser.py` holds the flags, one module per command group turns them into calls
(`run`, `images`, `calibrate`, `accounts`, `data`, `admin`); running the line and the dashboard
is `inspector.service`'s."""

from __future__ import annotations

import logging
import sys

from inspector.cli.parser import build_parser

__all__ = ["build_parser", "main"]


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    from inspector.service import journal

    level = logging.DEBUG if args.verbose else logging.INFO
    if path := journal.wanted():  # under systemd: entries with fields, not lines of text
        logging.basicConfig(level=level, handlers=[journal.JournalHandler(path)])
    else:
        logging.basicConfig(level=level, format="%(asctime)s %(levelname)s %(name)s: %(message)s", stream=sys.stderr)
    # a line per request, file, plugin, node added (asyncua builds its address space at INFO), connection
    for noisy in ("httpx", "httpcore", "gguf", "alembic.runtime.plugins", "asyncua", "pymodbus"):
        logging.getLogger(noisy).setLevel(logging.DEBUG if args.verbose else logging.WARNING)
    from inspector.errors import InspectorError

    try:
        return args.func(args) or 0
    except InspectorError as e:  # a failure we know about: its words, not a traceback
        print(f"inspector: {e}", file=sys.stderr)
        return e.exit_code
