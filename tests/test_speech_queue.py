"""The daemon's speech queue: daemon-side playback into ALSA's file sink, priorities,
interrupt / stop-all, stop by client, pause / resume — real daemon, several clients."""

from __future__ import annotations

import time
from collections import defaultdict
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from conftest import Speaker
from helpers import RawConn, read_alsa_capture, without_silence
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from kokorod_client import Client
from kokorod_common.protocol import MODES, PRIORITIES, ErrorCode

SHORT = "The build finished."
LONG = " ".join(f"Sentence number {i} of a long text that keeps the speaker busy for a while."
                for i in range(1, 40))


class Peer(RawConn):
    """A raw connection with a client name, as an editor plugin would hold one."""

    def __init__(self, path: Path, name: str) -> None:
        super().__init__(path)
        self.name = name
        self.n = 0
        self.inbox: dict[Any, list[dict[str, Any]]] = defaultdict(list)
        self.request("hello", client_name=name)

    def __enter__(self) -> Peer:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def say(self, text: str, **fields: Any) -> str:
        self.n += 1
        rid = f"{self.name}-{self.n}"
        self.send({"op": "synthesize", "id": rid, "text": text, "play": True, **fields})
        return rid

    def request(self, op: str, **fields: Any) -> dict[str, Any]:
        self.n += 1
        rid = f"{op}-{self.n}"
        self.send({"op": op, "id": rid, **fields})
        return self.wait(rid, "pong" if op == "ping" else op)

    def wait(self, rid: str, op: str) -> dict[str, Any]:
        """The first frame of `rid` with `op`, or its final frame (end/error)."""
        while True:
            box = self.inbox[rid]
            while box:
                frame = box.pop(0)
                if frame["op"] == op or frame["op"] in ("end", "error"):
                    return frame
            frame = self.recv()
            self.inbox[frame.get("id")].append(frame)

    def final(self, rid: str) -> dict[str, Any]:
        frame = self.wait(rid, "end")
        assert frame["op"] in ("end", "error"), frame
        return frame


def idle(speaker: Speaker) -> None:
    """Nothing left playing from an earlier test."""
    with Client(speaker.socket) as c:
        c.resume()
        c.stop(everyone=True)
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            q = c.speech_queue()
            if q["playing"] is None and not q["waiting"]:
                return
            time.sleep(0.05)
    raise AssertionError("the speech queue did not empty")


@pytest.fixture
def quiet(speaker: Speaker) -> Speaker:
    idle(speaker)
    return speaker


def test_play_true_plays_in_the_daemon(quiet: Speaker) -> None:
    """The daemon itself plays through sounddevice; the samples that land in the ALSA
    file are the samples the daemon synthesizes for the same text."""
    with Peer(quiet.socket, "player-test") as p:
        rid = p.say(SHORT)
        start = p.wait(rid, "start")
        assert start["play"] is True and start["client_name"] == "player-test"
        assert p.wait(rid, "playing")["op"] == "playing"
        end = p.final(rid)
    assert end["op"] == "end" and end["reason"] == "done" and not end["cancelled"]
    assert 0.03 * len(SHORT) < end["audio_seconds"] < 0.15 * len(SHORT) + 1
    played = without_silence(read_alsa_capture(quiet.capture))
    with Client(quiet.socket) as client:
        sent = without_silence(np.concatenate([c.samples for c in client.synthesize(SHORT)]))
    assert played.size >= sent.size - 1
    np.testing.assert_allclose(played[: sent.size], sent, atol=1e-6)


def test_queue_mode_plays_one_after_another(quiet: Speaker) -> None:
    with Peer(quiet.socket, "queue-a") as a, Peer(quiet.socket, "queue-b") as b:
        first = a.say("First in line.")
        a.wait(first, "playing")
        second = b.say("Second in line.")
        third = a.say("Third in line.")
        queue = a.request("queue")
        assert [w["id"] for w in queue["waiting"]] == [second, third]
        assert queue["playing"]["id"] == first
        assert a.final(first)["reason"] == "done"
        assert b.wait(second, "playing")["op"] == "playing"
        assert b.final(second)["reason"] == "done"
        assert a.final(third)["reason"] == "done"


def test_higher_priority_interrupts_lower_from_another_client(quiet: Speaker) -> None:
    with Peer(quiet.socket, "reader") as reader, Peer(quiet.socket, "alerts") as alerts:
        long_id = reader.say(LONG, priority="text")
        reader.wait(long_id, "playing")
        alert = alerts.say("Battery low.", priority="important")
        end = reader.final(long_id)
        assert end["reason"] == "interrupted" and end["cancelled"]
        assert end["interrupted_by"] == {"client_name": "alerts", "priority": "important",
                                         "mode": "queue"}  # who, and why it could
        assert 0 < end["audio_seconds"] < 0.06 * len(LONG)  # cut, not played out
        assert alerts.wait(alert, "playing")["op"] == "playing"
        assert alerts.final(alert)["reason"] == "done"


def test_lower_priority_waits_and_notification_is_dropped(quiet: Speaker) -> None:
    with Peer(quiet.socket, "chat") as chat, Peer(quiet.socket, "editor") as editor:
        message = chat.say("You have a new message from the build server.", priority="message")
        chat.wait(message, "playing")
        text = editor.say("Reading the buffer.", priority="text")
        note = editor.say("Saved.", priority="notification")
        dropped = editor.final(note)
        assert dropped["reason"] == "discarded" and dropped["audio_seconds"] == 0
        assert chat.final(message)["reason"] == "done"  # text did not interrupt it
        assert editor.final(text)["reason"] == "done"


def test_important_drops_waiting_notifications_and_postpones_text(quiet: Speaker) -> None:
    with Peer(quiet.socket, "mix") as p:
        first = p.say("One moment please.", priority="notification")
        p.wait(first, "playing")
        text = p.say("Text waits.", priority="text")  # interrupts the notification
        assert p.final(first)["reason"] == "interrupted"
        p.wait(text, "playing")
        later = p.say("Later notification.", priority="notification")
        assert p.final(later)["reason"] == "discarded"
        assert p.final(text)["reason"] == "done"


def test_stop_is_per_client_unless_asked(quiet: Speaker) -> None:
    with Peer(quiet.socket, "emacs") as emacs, Peer(quiet.socket, "nvim") as nvim:
        speech = emacs.say(LONG)
        emacs.wait(speech, "playing")
        waiting = nvim.say("Nvim waits its turn.")
        reply = nvim.request("stop")  # nvim's own speech only
        assert reply["stopped"] == 1 and reply["client_name"] == "nvim"
        assert nvim.final(waiting)["reason"] == "stopped"
        assert emacs.request("queue")["playing"]["id"] == speech
        reply = nvim.request("stop", client_name="emacs")  # by name
        assert reply["stopped"] == 1
        end = emacs.final(speech)
        assert end["reason"] == "stopped" and end["audio_seconds"] < 0.06 * len(LONG)
        again = emacs.say(LONG)
        emacs.wait(again, "playing")
        assert nvim.request("stop", scope="all")["stopped"] >= 1
        assert emacs.final(again)["reason"] == "stopped"


def test_interrupt_mode_replaces_own_speech_only(quiet: Speaker) -> None:
    with Peer(quiet.socket, "ed") as ed, Peer(quiet.socket, "other") as other:
        first = ed.say(LONG)
        ed.wait(first, "playing")
        theirs = other.say("Someone else's turn.")
        second = ed.say("Speak this instead.", mode="interrupt")
        end = ed.final(first)
        assert end["reason"] == "interrupted"
        assert end["interrupted_by"] == {"client_name": "ed", "priority": "text",
                                         "mode": "interrupt"}  # not "more urgent"
        # The interrupt goes first among equals, and the other client's speech survives.
        assert ed.wait(second, "playing")["op"] == "playing"
        assert ed.final(second)["reason"] == "done"
        assert other.final(theirs)["reason"] == "done"


def test_stop_all_mode_clears_everyone(quiet: Speaker) -> None:
    with Peer(quiet.socket, "one") as one, Peer(quiet.socket, "two") as two:
        first = one.say(LONG)
        one.wait(first, "playing")
        queued = one.say("Queued behind.")
        now = two.say("Everyone stop.", mode="stop-all")
        for ended in (one.final(first), one.final(queued)):
            assert ended["reason"] == "interrupted"
            assert ended["interrupted_by"]["mode"] == "stop-all"
            assert ended["interrupted_by"]["client_name"] == "two"
        assert two.final(now)["reason"] == "done"


def test_pause_holds_and_resume_continues(quiet: Speaker) -> None:
    with Peer(quiet.socket, "pauser") as p:
        rid = p.say("A sentence that is paused in the middle and then resumed to the end.")
        p.wait(rid, "playing")
        time.sleep(0.5)
        assert p.request("pause")["paused"] is True
        time.sleep(0.3)  # the device callback sees the flag
        before = p.request("queue")["playing"]["played_seconds"]
        time.sleep(1.0)
        held = p.request("queue")
        assert held["paused"] and held["playing"]["played_seconds"] == before
        assert p.request("resume")["paused"] is False
        end = p.final(rid)
        assert end["reason"] == "done" and end["audio_seconds"] > before


def test_played_speech_outlives_its_connection(quiet: Speaker) -> None:
    """A shell script may send one frame and hang up; the speech goes on, and the same
    client_name can stop it later."""
    p = Peer(quiet.socket, "script")
    rid = p.say(LONG)
    p.wait(rid, "start")
    p.close()
    with Peer(quiet.socket, "script") as again:
        deadline = time.monotonic() + 30
        while (again.request("queue")["playing"] or {}).get("id") != rid:
            assert time.monotonic() < deadline
            time.sleep(0.1)
        assert again.request("stop")["stopped"] == 1


def test_interrupt_cancels_own_streamed_request(quiet: Speaker) -> None:
    """Streamed (play: false) requests follow the same client rules."""
    with Peer(quiet.socket, "streamer") as p:
        p.send({"op": "synthesize", "id": "s1", "text": LONG})
        p.wait("s1", "chunk")
        p.send({"op": "synthesize", "id": "s2", "text": SHORT, "mode": "interrupt"})
        end = p.final("s1")
        assert end["cancelled"] and end["reason"] == "interrupted"
        assert p.final("s2")["reason"] == "done"


@pytest.mark.parametrize(("field", "value", "code"), [
    ("priority", "urgent", "bad_priority"), ("mode", "later", "bad_mode"),
    ("text_format", "html", "bad_text_format"), ("play", "yes", "bad_request"),
    ("marks", "syllable", "bad_marks"), ("marks", 1, "bad_request"),
    ("normalize", 1, "bad_request"),
])
def test_bad_fields_get_typed_errors(quiet: Speaker, field: str, value: Any,
                                     code: str) -> None:
    with Peer(quiet.socket, "bad") as p:
        rid = p.say(SHORT, **{field: value})
        error = p.final(rid)
        assert error["op"] == "error" and error["code"] == code
        assert p.request("ping")["op"] == "pong"  # still serving


def test_markdown_is_cleaned_before_speaking(quiet: Speaker) -> None:
    """`text_format: markdown` speaks the prose: the URL and markup add no audio."""
    with Client(quiet.socket) as c:
        plain = c.synthesize("See the docs for details.")
        md = c.synthesize("See [the docs](https://example.com/a/very/long/path/to/docs) "
                          "for **details**.", text_format="markdown")
        a = sum(ch.samples.size for ch in plain)
        b = sum(ch.samples.size for ch in md)
    assert abs(a - b) < 0.1 * a


def test_no_audio_device_is_a_typed_error(quiet: Speaker) -> None:
    quiet.config.write_text('audio_device = "no-such-device-anywhere"\n')
    try:
        with Client(quiet.socket) as c:
            c.reload()
            with Peer(quiet.socket, "nodev") as p:
                rid = p.say(SHORT)
                error = p.final(rid)
                assert error["op"] == "error" and error["code"] == "no_audio_device"
                assert "cannot play" in error["message"]
    finally:
        quiet.config.write_text("")
        with Client(quiet.socket) as c:
            c.reload()
    with Peer(quiet.socket, "nodev") as p:
        assert p.final(p.say(SHORT))["reason"] == "done"


INT64 = st.integers(-(2**63), 2**63 - 1)  # what msgpack can carry
SPEECH_OPS = st.fixed_dictionaries(
    {"op": st.sampled_from(["stop", "pause", "resume", "queue", "synthesize", "cancel"])},
    optional={"scope": st.none() | INT64 | st.text(max_size=6) | st.just("all"),
              "client_name": st.none() | INT64 | st.text(max_size=80),
              "text": st.just("Hi.") | st.text(max_size=20) | st.binary(max_size=8),
              "play": st.booleans() | INT64, "mode": st.sampled_from(MODES) | st.text(),
              "priority": st.sampled_from(PRIORITIES) | INT64,
              "text_format": st.sampled_from(["plain", "markdown", "code", "rtf"]),
              "normalize": st.booleans() | st.none() | st.text(max_size=2)},
)


@settings(max_examples=50, deadline=None, suppress_health_check=list(HealthCheck))
@given(SPEECH_OPS)
def test_fuzz_speech_ops_on_a_live_daemon(quiet: Speaker, message: dict[str, Any]) -> None:
    """Whatever a client sends to the queue ops, it gets its reply or a documented error,
    and the daemon keeps serving."""
    with Peer(quiet.socket, "fuzz") as p:
        p.send({**message, "id": "f"})
        op = message["op"]
        if op == "cancel":
            assert p.request("ping")["op"] == "pong"
            return
        reply = p.wait("f", "start" if op == "synthesize" else op)
        if reply["op"] == "error":
            assert reply["code"] in ErrorCode.all()
        else:
            assert reply["op"] == ("start" if op == "synthesize" else op)
        p.request("stop", scope="all")
        p.request("resume")
        assert p.request("ping")["op"] == "pong"


def test_cancel_stops_the_inference_in_progress(quiet: Speaker) -> None:
    """A cancelled request's running window is stopped (onnxruntime's terminate flag),
    not finished: the engine counts it as interrupted, not as a failure, and the next
    request is served normally."""
    with Client(quiet.socket) as c:
        before = c.status()["engine"]
        for _ in range(5):  # the cancel must land while a window runs; it nearly always does
            stream = c.synthesize(LONG)
            for chunk in stream:
                if chunk.seq == 40:  # 2 s in: the worker is busy on the next windows
                    stream.cancel()
            assert stream.end is not None and stream.end.cancelled
            if c.status()["engine"]["interrupted"] > before["interrupted"]:
                break
        after = c.status()["engine"]
        assert after["interrupted"] > before["interrupted"]
        assert after["failures"] == before["failures"]
        again = c.synthesize(SHORT)
        assert sum(ch.samples.size for ch in again) > 0.5 * 24_000
        assert again.end is not None and again.end.reason == "done"
