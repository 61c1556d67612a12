"""The desktop's view of an agent's call (acd.web.calls): offered, connected, ended."""

from __future__ import annotations

from acd.web.calls import AgentCall, AgentCalls


def test_offer_connect_end_and_figures() -> None:
    calls = AgentCalls()
    call = AgentCall("c1", "+442079460123", "support", joined=100.0, offered=130.0, customer=7)
    assert calls.offered("1001", call)
    assert not calls.offered("1001", call)  # the same offer again: no second pop
    assert calls.get("1001") is call
    assert call.to_json(135.0) | {} == {
        "call_id": "c1",
        "number": "+442079460123",
        "queue": "support",
        "ivr": "",
        "customer": 7,
        "state": "ringing",
        "wait": 35.0,
        "duration": 0.0,
        "offered": 130.0,
        "connected": None,
        "ended": None,
    }
    assert calls.connected("1001", "other", 140.0) is None
    up = calls.connected("1001", "c1", 140.0)
    assert up is not None
    view = up.to_json(150.0)
    assert (view["state"], view["wait"], view["duration"]) == ("connected", 40.0, 10.0)
    down = calls.ended("1001", "c1", 200.0)
    assert down is not None
    view = down.to_json(999.0)
    assert (view["state"], view["wait"], view["duration"]) == ("ended", 40.0, 60.0)
    assert calls.ended("1001", "c1", 300.0) is None  # ended once
    assert calls.took("1001", "c1") and not calls.took("1002", "c1")
    # An offer that rang without an answer ends with no duration; the next call replaces it.
    assert calls.offered("1001", AgentCall("c2", "+1", "support", 300.0, 310.0))
    missed = calls.ended("1001", "c2", 320.0)
    assert missed is not None and missed.to_json(400.0)["duration"] == 0.0
    assert calls.offered("1001", AgentCall("c2", "+1", "support", 300.0, 330.0))  # re-offered
