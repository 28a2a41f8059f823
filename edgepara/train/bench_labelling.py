"""`edgepara bench labelling`: teacher-labelling throughput on this machine, in one run on the same clips: the
single-machine path with one worker (the reference) and Ray Data with each number of teacher actors asked
for. Clips per second, audio seconds per second, and an estimate for N such nodes (labelled as one)."""
from __future__ import annotations

import json
import tempfile
import time
from pathlib import Path

import numpy as np

from .data import data_root as find_data_root, distillation_utterances, user_utterances
from .masks import MASK_TYPES
from .ray_labelling import connect, extract_targets_ray
from .targets import build_clips, clip_seconds, extract_targets

ESTIMATE_NODES = (4, 16, 64)


def labelling(out: Path, data_root=None, address: str = "auto", worker_counts: tuple[int, ...] = (1, 2),
              n_clips: int = 200, data: str | None = None, command: str = "", log=print) -> dict:
    root = find_data_root(data_root)
    utterances = user_utterances(data) if data else distillation_utterances(root)
    every = build_clips(utterances, 0, MASK_TYPES)
    clips = [every[i] for i in sorted(np.random.default_rng(0).permutation(len(every))[:n_clips])]
    durations = {str(u.path): u.duration_s for u in utterances}
    audio_s = sum(clip_seconds(c, durations.get(c.path, 0.0)) for c in clips)
    log(f"{len(clips)} clips, {audio_s:.0f} s of audio, from {data or root}")
    connect(address, log)  # cluster start-up is not part of any row
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        t0 = time.perf_counter()
        extract_targets(clips, Path(tmp) / "process", root, 0, workers=1, log=lambda *_: None, durations=durations)
        rows.append(_row("single machine, 1 process (reference)", 1, time.perf_counter() - t0, None, clips, audio_s))
        for workers in worker_counts:
            stats: dict = {}
            t0 = time.perf_counter()
            extract_targets_ray(clips, Path(tmp) / f"ray{workers}", root, 0, address, workers,
                                log=lambda *_: None, durations=durations, stats=stats)
            rows.append(_row(f"Ray Data, {workers} teacher actor(s)", workers, time.perf_counter() - t0, stats,
                             clips, audio_s))
            log(_line(rows[-1], rows[0]))
    log(_line(rows[0], rows[0]))
    best = max(rows[1:], key=lambda r: r["clips_per_s"])
    report = {"command": command, "clips": len(clips), "audio_seconds": round(audio_s, 1), "rows": rows,
              "estimate": {
                  "note": "ESTIMATE, not measured: N nodes like this one, each running the best row's actors, "
                          "scaling linearly (labelling shares nothing between clips); the driver writes shards "
                          "and must keep up (it did here at the measured rate)",
                  "per_node_clips_per_s": best["clips_per_s"],
                  "nodes": {n: {"clips_per_s": round(n * best["clips_per_s"], 1),
                                "audio_hours_per_hour": round(n * best["audio_s_per_s"], 1)} for n in ESTIMATE_NODES}}}
    out.mkdir(parents=True, exist_ok=True)
    (out / "labelling.json").write_text(json.dumps(report, indent=2) + "\n")
    return report


def _row(name: str, workers: int, seconds: float, stats: dict | None, clips: list, audio_s: float) -> dict:
    return {"path": name, "workers": workers, "seconds": round(seconds, 1),
            "clips_per_s": round(len(clips) / seconds, 2), "audio_s_per_s": round(audio_s / seconds, 2),
            "first_clip_s": round(stats["first_clip_s"], 1) if stats else None,
            # after the actors have loaded their teachers: what a long run approaches
            "clips_per_s_after_first": round((len(clips) - 1) / (seconds - stats["first_clip_s"]), 2) if stats else None,
            "actor_peak_rss_mb": round(stats["actor_peak_rss_mb"]) if stats else None}


def _line(row: dict, reference: dict) -> str:
    after = f", {row['clips_per_s_after_first']} clips/s once loaded" if row["first_clip_s"] is not None else ""
    return (f"{row['path']}: {row['clips_per_s']} clips/s, {row['audio_s_per_s']} audio s/s "
            f"({row['clips_per_s'] / reference['clips_per_s']:.2f}x the reference){after}")
