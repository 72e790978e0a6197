"""Session ops: each inference session's health, what is optimised how, and a reset
that rebuilds the sessions and empties the caches while connections stay."""

from __future__ import annotations

import copy
from typing import Any

from helpers import STEADY_SCHEDULE, DaemonProc, kokorod_cli, raw_conn

from kokorod.serve.session_ops import optimization_status, session_status
from kokorod.synth import windows
from kokorod.synth.engine_status import describe_engine


def test_session_and_optimization_status(daemon: DaemonProc) -> None:
    with raw_conn(daemon.socket) as c:
        c.send({"op": "synthesize", "id": 0, "text": "Status check: the windows are timed, "
                "each against the cost it was planned by, and the daemon says how they went."})
        assert c.until_final(0)[-1]["op"] == "end"
        c.send({"op": "session-status", "id": 1})
        sessions = c.recv()
        c.send({"op": "optimization-status", "id": 2})
        optimised = c.recv()
    assert sessions["op"] == "session-status" and sessions["id"] == 1
    assert set(sessions["sessions"]) == {"front", "source", "gen"}
    assert all(s["providers"][-1] == "CPUExecutionProvider" for s in sessions["sessions"].values())
    schedule = sessions["schedule"]  # planned from the test daemons' fixed costs
    assert schedule["calibrated"] is True and schedule["source"] == "config"
    assert schedule["first_window_frames"] == int(STEADY_SCHEDULE.split(":")[0])
    steady = windows.parse(STEADY_SCHEDULE)
    assert steady is not None
    assert schedule["costs_ms"]["generator_per_frame"] == round(
        steady.costs.gen_frame_s * 1000, 3)
    # the request above ran: whatever failed before (fault tests share this daemon), the
    # run of failures is broken
    assert sessions["consecutive_failures"] == 0
    observed = schedule["observed"]  # the generator's windows timed against the plan
    assert observed["windows"] >= 1
    assert 0 < observed["real_to_planned"] <= observed["slowest"] + 0.01  # (rounded)
    assert optimised["schedule"] == schedule
    assert optimised["op"] == "optimization-status"
    assert optimised["quantized"] is True and optimised["streaming_vocoder"] is True
    assert optimised["word_durations"] is True and optimised["threads"] >= 1
    assert set(optimised["caches"]) == {"audio", "phonemes"}
    shown = kokorod_cli("status", "--verbose", env=daemon.env).stdout
    assert "session status:" in shown and "optimization status:" in shown, shown


def test_session_reset_rebuilds_and_empties_the_caches(daemon: DaemonProc) -> None:
    with raw_conn(daemon.socket) as c:
        for rid in (1, 2):  # a repeat: kept in the audio cache
            c.send({"op": "synthesize", "id": rid, "text": "Reset check, one two."})
            assert c.until_final(rid)[-1]["op"] == "end"
        c.send({"op": "status", "id": 3})
        assert c.recv()["caches"]["audio"]["entries"] >= 1
        c.send({"op": "session-reset", "id": 4})
        reply = c.recv()
        assert reply["op"] == "session-reset" and reply["rebuilt"] is True, reply
        c.send({"op": "status", "id": 5})
        after = c.recv()  # the same connection serves on
        assert after["caches"]["audio"]["entries"] == 0
        phonemes = after["caches"]["phonemes"]  # a new engine: its warm-up reading only
        assert phonemes["hits"] == 0 and phonemes["entries"] <= 1
        c.send({"op": "synthesize", "id": 6, "text": "Reset check, one two."})
        assert c.until_final(6)[-1]["op"] == "end"


def test_the_whole_model_shows_no_window_plan(engine: Any) -> None:
    """An engine that vocodes a batch at a time has no windows: no plan in any status."""
    whole = copy.copy(engine)
    whole.vocoder = None
    assert session_status(whole)["schedule"] is None
    assert optimization_status(whole, {})["schedule"] is None
    assert describe_engine(whole)["window_schedule"] is None
    assert session_status(engine)["schedule"] == engine.schedule.status()
