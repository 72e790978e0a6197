"""Hostile input, access control, disconnects, backpressure, crashes and load.

Nothing a client sends may crash the daemon or cost another client its audio.
"""

from __future__ import annotations

import os
import random
import signal
import socket
import struct
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any

import msgpack
import pytest
from helpers import DaemonProc, RawConn, daemon_env, raw_conn, start_daemon
from test_daemon import MEDIUM, check_stream, synth

from kokorod.protocol import SAMPLE_RATE, ErrorCode
from kokorod_client import Client, ConnectionLost


def status(path: Path) -> dict[str, Any]:
    with raw_conn(path) as c:
        c.send({"op": "status", "id": "st"})
        return c.recv()


def wait_for(predicate: Any, timeout: float = 20.0) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(0.1)
    return False


# ---------------------------------------------------------------- access


def test_other_uid_is_refused(daemon: DaemonProc) -> None:
    """With the file permissions opened up, the peer-uid check still keeps others out."""
    if os.getuid() != 0:
        pytest.skip("needs root to connect as another uid")
    mode = daemon.socket.stat().st_mode
    parent_mode = daemon.socket.parent.stat().st_mode
    script = (
        "import os, socket, struct, sys, msgpack\n"
        "os.setgid(65534); os.setuid(65534)\n"
        "s = socket.socket(socket.AF_UNIX); s.connect(sys.argv[1])\n"
        "b = msgpack.packb({'op': 'ping', 'id': 1})\n"
        "s.sendall(struct.pack('>I', len(b)) + b)\n"
        "data = b''\n"
        "while chunk := s.recv(4096): data += chunk\n"
        "print(msgpack.unpackb(data[4:]) if data else 'closed')\n"
    )
    try:
        daemon.socket.parent.chmod(0o711)
        daemon.socket.chmod(0o666)
        out = subprocess.run([sys.executable, "-c", script, str(daemon.socket)],
                             capture_output=True, text=True, timeout=30)
    finally:
        daemon.socket.chmod(mode & 0o777)
        daemon.socket.parent.chmod(parent_mode & 0o777)
    assert out.returncode == 0, out.stderr
    assert "pong" not in out.stdout and "not the daemon's user" in out.stdout


@pytest.mark.parametrize("problem", ["world-writable", "other-owner"])
def test_refuses_unsafe_socket_directory(run_dir: Path, data_dir: Path, problem: str) -> None:
    unsafe = run_dir / "unsafe"
    unsafe.mkdir()
    if problem == "world-writable":
        unsafe.chmod(0o777)
    else:
        if os.getuid() != 0:
            pytest.skip("needs root to chown")
        unsafe.chmod(0o700)
        os.chown(unsafe, 65534, 65534)
    env = daemon_env(unsafe / "k.sock", data_dir)
    out = subprocess.run([sys.executable, "-m", "kokorod", "run"], env=env, capture_output=True,
                         text=True, timeout=60)
    assert out.returncode == 2
    assert ("writable by others" if problem == "world-writable" else "owned by uid") \
        in out.stderr
    assert not (unsafe / "k.sock").exists()


# ---------------------------------------------------------------- frames


def test_truncated_frame_then_eof_and_garbage_keep_daemon_serving(daemon: DaemonProc) -> None:
    before = status(daemon.socket)
    for payload in (struct.pack(">I", 100) + b"\x81\xa2op",  # truncated, then EOF
                    b"\x00\x00",  # half a header
                    os.urandom(64)):
        s = socket.socket(socket.AF_UNIX)
        s.connect(str(daemon.socket))
        s.sendall(payload)
        s.close()
    nested: Any = "x"
    for _ in range(500):
        nested = [nested]
    with raw_conn(daemon.socket) as c:
        body = msgpack.packb({"op": "ping", "id": 1, "junk": nested})
        c.send_raw(struct.pack(">I", len(body)) + body)
        reply = c.recv()
        assert reply["op"] in ("pong", "error")
        c.send({"op": "ping", "id": 2})
        assert c.recv()["op"] == "pong"
    assert wait_for(lambda: status(daemon.socket)["num_tasks"] <= before["num_tasks"] + 1)


def test_idle_connection_is_closed(daemon: DaemonProc) -> None:
    silent = RawConn(daemon.socket)
    stalled = RawConn(daemon.socket)
    stalled.send_raw(struct.pack(">I", 50) + b"\x81")  # a frame that never completes
    talker = RawConn(daemon.socket)
    talker.send({"op": "ping", "id": 1})
    assert talker.recv()["op"] == "pong"
    time.sleep(4.5)  # the session daemon's idle timeout is 3 s
    assert silent.closed_by_peer() and stalled.closed_by_peer()
    talker.send({"op": "ping", "id": 2})  # a client that has spoken may idle
    assert talker.recv()["op"] == "pong"
    for c in (silent, stalled, talker):
        c.close()


# ---------------------------------------------------------------- hostile text


@pytest.mark.parametrize("text", [
    "😀🎉🚀 👍",
    "שלום עולם، مرحبا بالعالم",
    "12345 67.89 $%& @#! 3/4 100%",
    "Control\x07 characters\x1b[31m and a NUL\x00 in the middle.",
    "a" * 10_000,
    "Ünïcödé façade, naïve café — “quotes” and ‘more’…",
], ids=["emoji", "rtl", "digits-symbols", "control", "long-word", "accents"])
def test_hostile_text_gets_audio_or_clear_error(daemon: DaemonProc, text: str) -> None:
    with raw_conn(daemon.socket) as c:
        c.send({"op": "synthesize", "id": 1, "text": text})
        frames = c.until_final(1, cancel_at_seq=40)  # 2 s of audio: enough, it streams
        final = frames[-1]
        if final["op"] == "error":
            assert final["code"] == ErrorCode.EMPTY_TEXT and final["message"]
        else:
            chunks = [f for f in frames if f["op"] == "chunk"]
            assert chunks and [f["seq"] for f in chunks] == list(range(len(chunks)))
        c.send({"op": "ping", "id": 2})
        assert c.recv()["op"] == "pong"


def test_one_megabyte_text_is_rejected_by_limit(daemon: DaemonProc) -> None:
    with raw_conn(daemon.socket) as c:
        c.send({"op": "synthesize", "id": 1, "text": "word " * 190_000})  # ~950 KB
        reply = c.recv()
        assert reply["code"] == ErrorCode.TEXT_TOO_LONG and "500000" in reply["message"]


# ---------------------------------------------------------------- backpressure


def test_client_that_never_reads_is_paused_not_buffered(daemon: DaemonProc) -> None:
    long_text = " ".join([MEDIUM] * 12)
    hog = socket.socket(socket.AF_UNIX)
    hog.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 16 * 1024)
    hog.connect(str(daemon.socket))
    body = msgpack.packb({"op": "synthesize", "id": 1, "text": long_text, "chunk_ms": 500})
    hog.sendall(struct.pack(">I", len(body)) + body)
    try:
        assert wait_for(lambda: status(daemon.socket)["paused_requests"] >= 1, 120)
        rss1 = status(daemon.socket)["rss_bytes"]
        # Meanwhile another client is served at once.
        with raw_conn(daemon.socket) as c:
            check_stream(synth(c, 2, "Another client is not held up."),
                         "Another client is not held up.")
        time.sleep(3)
        st = status(daemon.socket)
        assert st["paused_requests"] >= 1
        assert st["rss_bytes"] - rss1 < 30 * 2**20
    finally:
        hog.close()
    assert wait_for(lambda: status(daemon.socket)["active_requests"] == 0)


# ---------------------------------------------------------------- crashes


def test_kill_9_mid_stream_gives_clients_an_error_and_restart_works(
        run_dir: Path, data_dir: Path, tmp_path: Path) -> None:
    handle = start_daemon(run_dir / "k.sock", data_dir)
    errors: list[BaseException] = []

    def listen() -> None:
        try:
            with Client(handle.socket) as client:
                list(client.synthesize(" ".join([MEDIUM] * 6)))
        except BaseException as exc:
            errors.append(exc)

    threads = [threading.Thread(target=listen) for _ in range(2)]
    for t in threads:
        t.start()
    time.sleep(3)
    handle.proc.send_signal(signal.SIGKILL)
    for t in threads:
        t.join(20)
    assert not any(t.is_alive() for t in threads), "a client hung after the daemon died"
    assert len(errors) == 2 and all(isinstance(e, ConnectionLost) for e in errors)
    assert handle.socket.exists()  # stale
    out = tmp_path / "after.wav"
    env = daemon_env(handle.socket, data_dir)
    result = subprocess.run([sys.executable, "-m", "kokorod_client.say", "-o", str(out),
                             "Back again."], env=env, capture_output=True, text=True,
                            timeout=180)
    assert result.returncode == 0, result.stderr
    assert out.stat().st_size > 1000
    subprocess.run([sys.executable, "-m", "kokorod", "stop"], env=env, timeout=60)


# ---------------------------------------------------------------- load


def run_load(path: Path, clients: int, requests: int, seed: int = 7,
             weights: tuple[float, ...] = (5, 1, 2, 2)) -> dict[str, Any]:
    """Mixed traffic; every accepted request must end exactly once, complete and in order.

    weights: how often short / medium / cancelled / bad requests occur.
    """
    rng = random.Random(seed)
    plan = []
    for i in range(requests):
        kind = rng.choices(["short", "medium", "cancel", "bad"], weights)[0]
        plan.append((i, kind))
    per_client = [plan[k::clients] for k in range(clients)]
    outcomes: list[dict[str, Any]] = []
    lock = threading.Lock()
    shorts = ["Short request number {}.", "Ping number {} arrived.", "Item {} is ready."]

    def worker(jobs: list[tuple[int, str]]) -> None:
        with raw_conn(path) as c:
            for i, kind in jobs:
                if kind == "bad":
                    msg = rng.choice([{"op": "synthesize", "id": i, "text": ""},
                                      {"op": "synthesize", "id": i, "text": "x",
                                       "voice": "nobody"},
                                      {"op": "nope", "id": i}])
                    c.send(msg)
                    frames = c.until_final(i)
                elif kind == "cancel":
                    c.send({"op": "synthesize", "id": i, "text": MEDIUM})
                    c.send({"op": "cancel", "id": i})
                    frames = c.until_final(i)
                else:
                    text = (shorts[i % 3].format(i) if kind == "short"
                            else MEDIUM.replace("lighthouse", f"lighthouse {i}"))
                    c.send({"op": "synthesize", "id": i, "text": text})
                    frames = c.until_final(i)
                with lock:
                    outcomes.append({"i": i, "kind": kind, "frames": frames})

    threads = [threading.Thread(target=worker, args=(jobs,)) for jobs in per_client]
    for t in threads:
        t.start()
    for t in threads:
        t.join(1800)
    return {"outcomes": outcomes, "planned": requests}


def check_load(result: dict[str, Any]) -> dict[str, int]:
    counts = {"end": 0, "cancelled": 0, "error": 0}
    assert len(result["outcomes"]) == result["planned"], "lost requests"
    for o in result["outcomes"]:
        frames = o["frames"]
        finals = [f for f in frames if f["op"] in ("end", "error")]
        assert len(finals) == 1 and frames[-1] is finals[0]
        final = finals[0]
        if final["op"] == "error":
            counts["error"] += 1
            assert o["kind"] == "bad", final
            continue
        chunks = [f for f in frames if f["op"] == "chunk"]
        assert [f["seq"] for f in chunks] == list(range(len(chunks)))
        assert final["chunks"] == len(chunks)
        assert final["samples"] == sum(f["samples"] for f in chunks)
        assert final["audio_seconds"] == pytest.approx(final["samples"] / SAMPLE_RATE, abs=1e-3)
        if final["cancelled"]:
            counts["cancelled"] += 1
            assert o["kind"] == "cancel"
        else:
            counts["end"] += 1
            assert chunks
    return counts


def load_test(daemon: DaemonProc, clients: int, requests: int,
              weights: tuple[float, ...] = (5, 1, 2, 2)) -> None:
    run_load(daemon.socket, clients, 16, seed=1)  # warm up with the same mix
    before = status(daemon.socket)
    result = run_load(daemon.socket, clients, requests, weights=weights)
    counts = check_load(result)
    assert counts["end"] > 0 and counts["error"] > 0
    assert wait_for(lambda: status(daemon.socket)["active_requests"] == 0)
    after = status(daemon.socket)
    assert after["num_fds"] <= before["num_fds"]
    assert after["num_tasks"] <= before["num_tasks"]
    growth = (after["rss_bytes"] - before["rss_bytes"]) / 2**20
    print(f"load: {requests} requests, {clients} clients, {counts}, lost 0, "
          f"RSS {before['rss_bytes'] / 2**20:.0f} → {after['rss_bytes'] / 2**20:.0f} MiB, "
          f"fds {before['num_fds']} → {after['num_fds']}")
    assert growth < 20, f"RSS grew {growth:.1f} MiB"


def test_load_shortened(daemon: DaemonProc) -> None:
    """The same checks as the full run, with fewer and mostly short requests."""
    load_test(daemon, clients=8, requests=64, weights=(4, 0, 3, 3))


@pytest.mark.slow
def test_load_full(daemon: DaemonProc) -> None:
    """1,000 mixed requests from 8 clients (~17 min on a 2-core AVX2 machine)."""
    load_test(daemon, clients=8, requests=1000, weights=(10, 0.5, 4, 4))
