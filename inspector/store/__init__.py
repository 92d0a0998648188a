from inspector.store.store import Store

__all__ = ["Store"]
