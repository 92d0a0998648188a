"""What several commands share: the one-line failure, the config, the store, the detector."""

from __future__ import annotations

import sys


def _fail(msg: str, code: int = 2):
    print(f"inspector: {msg}", file=sys.stderr)
    sys.exit(code)


def _load(args):
    from inspector.config import ConfigError, load_config

    try:
        cfg = load_config(args.config)
    except ConfigError as e:
        _fail(str(e))
    return cfg


def _open_store(cfg):
    """The store for a command that reads or edits it (not the line): a one-line error for a
    database that cannot be used."""
    from inspector.store import Store, StoreError

    try:
        store = Store(cfg.database_url, cfg.data_dir, cfg.store)
    except (StoreError, ValueError, OSError) as e:
        _fail(str(e))
    return store


def _detector_for(cfg, product: str | None = None):
    """The shared detector, or `product`'s own model when `inspector train` made one."""
    from inspector.prefilter import ModelError
    from inspector.prefilter.product_model import detector_for

    try:
        return detector_for(cfg, product)
    except ModelError as e:
        _fail(str(e))


def _known_product(cfg, product: str | None) -> None:
    """Exit with one line when --product names no product of the config."""
    if product is not None and product not in {p.name for p in cfg.products}:
        _fail(f"--product {product!r} is not in the config (products: {[p.name for p in cfg.products]})")


def _parse_roi(text: str) -> tuple[int, int, int, int]:
    try:
        roi = tuple(int(v) for v in text.split(","))
        assert len(roi) == 4 and roi[0] < roi[2] and roi[1] < roi[3]
    except (ValueError, AssertionError):
        _fail(f"--roi must be x1,y1,x2,y2 with x1<x2 and y1<y2, got {text!r}")
    return roi
