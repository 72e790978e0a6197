"""The bench runs against a real daemon and its JSON has every metric with sane values.
No assertions on speed: the bench is where speed is judged, not the tests."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

from helpers import REPO, DaemonProc
from testkit.metrics import percentile, simulate_playback


def test_simulated_consumer_counts_underruns() -> None:
    # 50 ms chunks arriving every 50 ms: never runs dry after a 2-chunk pre-buffer.
    steady = [0.05 * i for i in range(40)]
    assert simulate_playback(steady, [1200] * 40, 2)["underruns"] == 0
    # A 1 s stall after the 10th chunk: one underrun, ~0.55 s of silence.
    late = steady[:10] + [t + 1.0 for t in steady[10:]]
    result = simulate_playback(late, [1200] * 40, 2)
    assert result["underruns"] == 1 and 0.5 < result["stall_s"] < 1.1
    assert result["at_s"] == [0.5]  # ran dry after the 10 chunks of 50 ms
    assert simulate_playback([], [], 2)["underruns"] == 0


def test_percentile_matches_linear_interpolation() -> None:
    assert percentile([1, 2, 3, 4], 50) == 2.5 and percentile([5], 95) == 5
    assert percentile(list(range(101)), 95) == 95


def test_bench_smoke(daemon: DaemonProc, tmp_path: Path) -> None:
    out = tmp_path / "bench.json"
    cmd = [sys.executable, str(REPO / "bench" / "run_bench.py"), "--socket", str(daemon.socket),
           "--preset", "short", "--preset", "first-sentence", "--preset", "soak",
           "--preset", "clocked-soak",
           "--duration", "2", "--trials", "1", "--memory", "--concurrency", "2",
           "--concurrency-preset", "short", "--compare", "--cold-trials", "1", "--stream",
           "--say-also", str(REPO), "--json", str(out)]
    result = subprocess.run(cmd, capture_output=True, text=True, timeout=600, cwd=REPO,
                            env=daemon.env)
    assert result.returncode == 0, result.stderr[-3000:]
    assert "AMD" in result.stdout or "CPU:" in result.stdout  # the machine is printed
    report = json.loads(out.read_text())
    assert report["machine"]["cpu_model"] and report["machine"]["cores"]
    assert report["daemon"]["model_sha256"]
    short = report["presets"]["short"]
    s = short["kokorod"]["summary"]
    assert s["ttfa_s"]["n"] == 1 and s["ttfa_s"]["min"] > 0
    assert s["rtf"]["min"] > 0 and s["seq_complete"] is True
    assert s["underruns"]["n"] == 1
    for anchor in ("one_shot", "create_stream", "cold_process"):
        assert short["anchors"][anchor]["summary"]["ttfa_s"]["min"] > 0
    assert short["ratios"]["one_shot"]["ttfa_p50"] > 0
    e2e = short["kokoro_say"]["summary"]["e2e_first_sound_s"]
    assert e2e["n"] == 1 and e2e["min"] > 0
    own = short["kokoro_say"]["summary"]["client_share_s"]  # e2e less the daemon's own time
    assert own["n"] == 1 and 0 < own["min"] < e2e["min"]
    # --say-also: another checkout (here the same one) on the same text, paired
    assert short["kokoro_say_also"]["summary"]["e2e_first_sound_s"]["n"] == 1
    assert short["kokoro_say_paired"]["client_share_s"]["n"] == 1
    assert short["kokoro_say"]["python"]["this_interpreter"] is True
    clocked = report["clocked_soak"]  # a sentence or more, played in real time
    assert clocked["played"] and clocked["sink"]["kind"] == "pulse", clocked
    assert clocked["audio_s"] >= 2 and clocked["wall_s"] >= clocked["audio_s"]
    assert isinstance(clocked["underruns"], int) and isinstance(clocked["device_underflows"], int)
    assert short["kokoro_say"]["checkout"] == short["kokoro_say_also"]["checkout"]
    # --stream plays at the clocked sink: the process lasts at least the audio it played
    assert short["kokoro_say"]["sink"]["kind"] == "pulse"
    say = short["kokoro_say"]["trials"][0]
    assert say["played"] and say["wall_s"] >= 0.8 * say["audio_s"] > 0
    assert say["underruns"] is not None and say["device_underflows"] is not None
    assert report["first_sentence"]["ratio_p95_long_over_short"] > 0
    assert report["concurrency"]["errors"] == [] and report["concurrency"]["clients"] == 2
    assert report["soak"]["requests"] >= 1 and report["soak"]["audio_s"] > 0
    assert len(report["soak"]["underrun_at"]) == report["soak"]["underruns"]
    assert all(len(t["underrun_at_s"]) == t["underruns"] for t in short["kokorod"]["trials"])
    mem = report["memory"]
    assert 0 < mem["before_mib"] <= mem["peak_mib"]
