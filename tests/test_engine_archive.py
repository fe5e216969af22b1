"""The one archive type every domain keeps, against a direct computation."""

import numpy as np
import pytest

from clm.engine.archive import ScoredArchive


def test_keeps_the_best_scored_one_per_key_in_arrival_order():
    a = ScoredArchive(3)
    scores = [0.5, 0.9, 0.1, 0.7, 0.9]
    assert a.add(list("abcde"), list("abcde"), [{"score": s} for s in scores]) == 5
    # the direct computation: the three best (ties: the older first), kept in arrival order
    best = sorted(np.argsort([-s for s in scores], kind="stable")[:3])
    assert a.items == [list("abcde")[i] for i in best] == ["b", "d", "e"]
    assert [r["score"] for r in a.records] == [0.9, 0.7, 0.9]


def test_a_key_once_seen_is_never_taken_again():
    a = ScoredArchive(1)
    assert a.add(["x"], ["k1"], [{"score": 0.1}]) == 1
    assert a.add(["y"], ["k2"], [{"score": 0.5}]) == 1 and a.items == ["y"]  # x evicted
    assert a.add(["x again"], ["k1"], [{"score": 9.0}]) == 0 and a.items == ["y"]  # k1 is not news
    assert a.add(["z", "z"], ["k3", "k3"], [{"score": 1.0}, {"score": 2.0}]) == 1  # one per key within a batch


def test_capacity_zero_counts_new_keys_and_keeps_nothing():
    a = ScoredArchive(0)
    assert a.add([1, 2, 2], ["a", "b", "b"], [{"score": 1}] * 3) == 2 and len(a) == 0


def test_state_round_trips_with_the_domains_encoding():
    a = ScoredArchive(2)
    a.add([np.ones(2), np.zeros(2)], [b"\x01", b"\x00"], [{"score": 1.0}, {"score": 2.0}])
    state = a.state_dict([x.tolist() for x in a.items])
    b = ScoredArchive(2)
    b.load_state_dict(state, [np.asarray(x) for x in state["items"]])
    assert [x.tolist() for x in b.items] == [[1.0, 1.0], [0.0, 0.0]] and b.records == a.records
    assert b.add([np.ones(2)], [b"\x01"], [{"score": 5.0}]) == 0  # the keys came back too
    with pytest.raises(ValueError, match="2 artefacts and 1 records"):
        b.load_state_dict({**state, "records": state["records"][:1]}, b.items)
