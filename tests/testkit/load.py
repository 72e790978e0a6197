"""Mixed traffic against a daemon, and the daemon's memory after each round of it.

Shared by the reliability tests (every accepted request must end exactly once,
complete and in order) and by `bench/memory_rounds.py` (RSS per round). It
speaks frames with `kokorod_common.protocol` directly, so a request can be cancelled
right after it is sent and bad frames can be sent on purpose.
"""

from __future__ import annotations

import random
import socket
import threading
import time
from pathlib import Path
from typing import Any

from kokorod_common.protocol import FrameDecoder, encode_frame

MEDIUM = ("The lighthouse keeper climbed the spiral stairs every evening, polishing the great "
          "lens until it gleamed, and then he watched the ships pass safely by the rocks.")
SHORTS = ["Short request number {}.", "Ping number {} arrived.", "Item {} is ready."]
KINDS = ("short", "medium", "cancel", "bad")


class Frames:
    """A connection that sends frames and reads them back."""

    def __init__(self, path: Path, timeout: float = 300.0) -> None:
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self.sock.settimeout(timeout)
        self.sock.connect(str(path))
        self.decoder = FrameDecoder(64 << 20)
        self.pending: list[dict[str, Any]] = []

    def send(self, message: dict[str, Any]) -> None:
        self.sock.sendall(encode_frame(message))

    def recv(self) -> dict[str, Any]:
        while not self.pending:
            data = self.sock.recv(1 << 16)
            if not data:
                raise ConnectionError("closed by the daemon")
            self.decoder.feed(data)
            self.pending.extend(self.decoder)
        return self.pending.pop(0)

    def until_final(self, rid: Any) -> list[dict[str, Any]]:
        """All frames for `rid` up to and including its end/error."""
        out = []
        while True:
            frame = self.recv()
            if frame.get("id") == rid:
                out.append(frame)
                if frame["op"] in ("end", "error"):
                    return out

    def close(self) -> None:
        self.sock.close()


def status(path: Path) -> dict[str, Any]:
    conn = Frames(path)
    try:
        conn.send({"op": "status", "id": "st"})
        return conn.recv()
    finally:
        conn.close()


def wait_idle(path: Path, timeout: float = 120.0) -> dict[str, Any]:
    """The daemon's status once no request is active (or at the timeout)."""
    deadline = time.monotonic() + timeout
    while True:
        st = status(path)
        if (st["active_requests"] == 0 and not st["worker_busy"]) \
                or time.monotonic() > deadline:
            return st
        time.sleep(0.1)


def run_load(path: Path, clients: int, requests: int, seed: int = 7,
             weights: tuple[float, ...] = (5, 1, 2, 2)) -> dict[str, Any]:
    """`requests` requests from `clients` connections; weights: how often short /
    medium / cancelled / bad requests occur. Returns every request's frames."""
    rng = random.Random(seed)
    plan = [(i, rng.choices(KINDS, weights)[0]) for i in range(requests)]
    outcomes: list[dict[str, Any]] = []
    lock = threading.Lock()
    failures: list[BaseException] = []

    def worker(jobs: list[tuple[int, str]]) -> None:
        conn = Frames(path)
        try:
            for i, kind in jobs:
                if kind == "bad":
                    conn.send(rng.choice([{"op": "synthesize", "id": i, "text": ""},
                                          {"op": "synthesize", "id": i, "text": "x",
                                           "voice": "nobody"},
                                          {"op": "nope", "id": i}]))
                elif kind == "cancel":
                    conn.send({"op": "synthesize", "id": i, "text": MEDIUM})
                    conn.send({"op": "cancel", "id": i})
                else:
                    text = (SHORTS[i % 3].format(i) if kind == "short"
                            else MEDIUM.replace("lighthouse", f"lighthouse {i}"))
                    conn.send({"op": "synthesize", "id": i, "text": text})
                frames = conn.until_final(i)
                with lock:
                    outcomes.append({"i": i, "kind": kind, "frames": frames})
        except BaseException as exc:  # reported by the caller as lost requests
            failures.append(exc)
        finally:
            conn.close()

    threads = [threading.Thread(target=worker, args=(plan[k::clients],))
               for k in range(clients)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(1800)
    return {"outcomes": outcomes, "planned": requests, "failures": [repr(e) for e in failures]}


def memory_reading(st: dict[str, Any]) -> dict[str, Any]:
    """What one status says about memory, in MiB where it is a size."""
    mib = 2 ** 20
    mem = st.get("memory", {})
    row = {"rss_mib": st["rss_bytes"] / mib, "fds": st["num_fds"], "tasks": st["num_tasks"],
           "threads": st.get("num_threads")}
    for key, value in mem.items():
        row[key.replace("_bytes", "_mib")] = value / mib if key.endswith("_bytes") else value
    return row


def rounds(path: Path, count: int, clients: int, requests: int,
           weights: tuple[float, ...] = (4, 0, 3, 3), settle_s: float = 1.0,
           check: Any = None) -> list[dict[str, Any]]:
    """The same load `count` times; the daemon's memory after each, once idle.

    Row 0 is the reading before the first round. Every round uses the same seed, so
    rounds differ only in what the daemon kept from the ones before. `check` is called
    with each round's result (the tests assert completeness there)."""
    readings = []
    time.sleep(settle_s)
    readings.append({"round": 0, **memory_reading(wait_idle(path))})
    for n in range(1, count + 1):
        result = run_load(path, clients, requests, weights=weights)
        if check is not None:
            check(result)
        wait_idle(path)
        time.sleep(settle_s)
        readings.append({"round": n, **memory_reading(wait_idle(path))})
    return readings
