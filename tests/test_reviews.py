"""Operator reviews: recorded beside the machine verdict, never editing it; append-only in the
database itself."""

import numpy as np
import pytest
from sqlalchemy import text
from sqlalchemy.exc import DBAPIError

from inspector.config import StoreConfig
from inspector.messages import Frame, Verdict, VerdictKind
from inspector.store import Store


@pytest.fixture
def store(db_url, tmp_path):
    s = Store(db_url, tmp_path, StoreConfig(save_frames=[], save_thumbnails=[], save_crops=[]))
    yield s
    s.close()


def _inspection(store, kind=VerdictKind.fail) -> int:
    frame = Frame("cam", 1, np.zeros((8, 8, 3), np.uint8))
    return store.save(Verdict(frame, kind, "detector_only", "a dark blob", (), ()), "p", "none")


def test_reviews_add_history_and_the_verdict_in_force(store):
    iid = _inspection(store)
    first = store.add_review(iid, "anna", "pass", "glare, not a defect")
    second = store.add_review(iid, "ben", "review", "ask quality")
    assert (first["from"], first["to"]) == ("fail", "pass")
    assert (second["from"], second["to"]) == ("pass", "review")  # from what was in force, not the machine's
    d = store.inspection(iid)
    assert d["verdict"] == "fail"  # the machine's verdict stands as it was
    assert d["verdict_in_force"] == "review"
    assert [(r["reviewer"], r["note"]) for r in d["reviews"]] == [("anna", "glare, not a defect"), ("ben", "ask quality")]


@pytest.mark.parametrize("args,error", [
    (("anna", "ok"), "verdict must be one of"),
    (("  ", "pass"), "reviewer must be a name"),
    (("x" * 65, "pass"), "reviewer must be a name"),
])
def test_bad_reviews_are_refused(store, args, error):
    iid = _inspection(store)
    with pytest.raises(ValueError, match=error):
        store.add_review(iid, *args)
    assert store.inspection(iid)["reviews"] == []


@pytest.mark.parametrize("field", ["note", "defect_type"])
@pytest.mark.parametrize("bad", ["lone \ud800 surrogate", "\udfff", "nul \x00 byte"])
def test_text_no_database_can_store_is_refused_by_name(store, field, bad):
    """JSON carries lone surrogates and NUL; SQLite cannot encode the one, PostgreSQL refuses the
    other: a ValueError naming the field (the API's 422), and nothing half-written."""
    iid = _inspection(store)
    with pytest.raises(ValueError, match=f"{field} must be text without NUL characters or lone surrogates"):
        store.add_review(iid, "anna", "pass", **{field: bad})
    assert store.inspection(iid)["reviews"] == []
    assert store.add_review(iid, "anna", "pass", note="fine: ünïcode ✓ 😀")["note"] == "fine: ünïcode ✓ 😀"


def test_unknown_inspection(store):
    with pytest.raises(KeyError, match="no inspection 999"):
        store.add_review(999, "anna", "pass")


def test_the_database_refuses_to_rewrite_reviews(store):
    iid = _inspection(store)
    store.add_review(iid, "anna", "pass")
    for sql in ("UPDATE reviews SET to_verdict = 'fail'", "DELETE FROM reviews"):
        with pytest.raises(DBAPIError, match="reviews are append-only"):
            with store.engine.begin() as c:  # hand-run SQL, past the store's code
                c.execute(text(sql))
    assert store.inspection(iid)["reviews"][0]["to"] == "pass"
