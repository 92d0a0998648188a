from inspector.store.store import Store, StoreError

__all__ = ["Store", "StoreError"]
