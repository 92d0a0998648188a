"""`inspector models ...`: making the model files the reasoner runs."""

from __future__ import annotations

import sys


def cmd_convert_ernie_vl(args) -> int:
    from inspector.reasoner.ernie_vl.convert import convert, parse_quants

    quants = parse_quants(args.quant)  # a typo fails before minutes of converting
    done = convert(args.hf_dir, args.out_dir, quants, args.outtype, say=lambda s: print(s, file=sys.stderr))
    print(f"model:  {done.model}")
    print(f"mmproj: {done.mmproj}")
    for q, path in done.quantized.items():
        print(f"{q}: {path}")
    return 0
