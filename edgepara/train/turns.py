"""Several people in one stream, through the live pipeline: three enrolled speakers take turns in one recording
(speechocean762 test adults, 4 turns each, in an order where the speaker always changes), with pauses between
turns or with each turn starting a few hundred ms before the previous one ends. Scored against the script: how
many turns got an utterance of their own, how many of those utterances name the right person, and how many of the
true speaker changes a `speaker_change` event reported (and how many it reported that were not there)."""
from __future__ import annotations

import tempfile
from pathlib import Path

import numpy as np

SR = 16000
PAUSE_S = 0.8  # between turns, when they do not overlap: longer than the VAD's end hangover
OVERLAPS_S = (0.0, 0.3)
SPEAKERS, TURNS_EACH, ENROLL_UTTERANCES = 3, 4, 3
DRAWS = 20


def _script(rng, by_speaker: dict) -> tuple[list[str], list[list], list]:
    """Three speakers; each one's enrollment utterances and turns; the turns' order, the speaker always changing."""
    names = list(rng.choice(sorted(by_speaker), SPEAKERS, replace=False))
    enroll, turns = {}, {}
    for name in names:
        own = rng.permutation(len(by_speaker[name]))
        enroll[name] = [by_speaker[name][i] for i in own[:ENROLL_UTTERANCES]]
        turns[name] = [by_speaker[name][i] for i in own[ENROLL_UTTERANCES:ENROLL_UTTERANCES + TURNS_EACH]]
    order, previous = [], None
    remaining = {n: list(t) for n, t in turns.items()}
    while any(remaining.values()):
        choices = [n for n in names if remaining[n] and n != previous] or [n for n in names if remaining[n]]
        # the speaker with most turns left first, so that the order never has to repeat a speaker at the end
        most = max(len(remaining[n]) for n in choices)
        name = rng.choice([n for n in choices if len(remaining[n]) == most])
        order.append((name, remaining[name].pop()))
        previous = name
    return names, [enroll[n] for n in names], order


def _mix(order: list, overlap_s: float) -> tuple[np.ndarray, list[tuple[str, float, float]]]:
    """The turns in one recording, and each turn's (speaker, start s, end s)."""
    from .bench_sets import Item

    pieces = [(name, Item(u).audio().astype(np.float64)) for name, u in order]
    total = sum(len(a) for _, a in pieces) + int(PAUSE_S * SR) * (len(pieces) + 1)
    audio, spans, at = np.zeros(total), [], int(PAUSE_S * SR)
    for name, a in pieces:
        audio[at:at + len(a)] += a
        spans.append((name, at / SR, (at + len(a)) / SR))
        at += len(a) - int(overlap_s * SR) if overlap_s else len(a) + int(PAUSE_S * SR)
    end = max(e for _, _, e in spans)
    return np.clip(audio[:int(end * SR) + int(PAUSE_S * SR)], -32768, 32767).astype(np.int16), spans


def _score(events: list, spans: list) -> dict:
    """Utterances matched to the turn they overlap most; names and turns scored against the script, and the
    speaker_change events counted."""
    from ..types import Prediction, SpeakerChange, SpeechEnd, SpeechStart

    starts = {e.utterance: e.t for e in events if isinstance(e, SpeechStart)}
    ends = {e.utterance: e.t for e in events if isinstance(e, SpeechEnd)}
    finals = {e.utterance: e.label for e in events if isinstance(e, Prediction) and e.final and e.head == "speaker"}
    reported = sum(isinstance(e, SpeakerChange) for e in events)
    matched, right = [], 0
    for u, label in finals.items():
        a, b = starts.get(u, 0.0), ends.get(u, 0.0)
        overlap = [max(0.0, min(b, e) - max(a, s)) for _, s, e in spans]
        if max(overlap, default=0.0) <= 0:
            continue
        turn = int(np.argmax(overlap))
        matched.append(turn)
        right += label == spans[turn][0]
    true_changes = sum(spans[i][0] != spans[i - 1][0] for i in range(1, len(spans)))
    return {"turns": len(spans), "utterances": len(finals), "turns_with_own_utterance": len(set(matched)),
            "named_right": right, "true_changes": true_changes, "changes_reported": reported}


def turn_taking(model: str, root: Path, draws: int = DRAWS, seed: int = 0, log=print) -> dict:
    """Per overlap: shares over `draws` random scripts (mean and sd over draws): turns that got an utterance of
    their own, utterances naming the right speaker, speaker changes reported per true change."""
    from ..enroll import enroll
    from ..stream.pipeline import Pipeline
    from ..stream.source import iterable_source
    from .bench_sets import speechocean_ages
    from .data import load_manifest

    ages = speechocean_ages(root)
    by_speaker: dict[str, list] = {}
    for u in load_manifest("speechocean762", root):
        if u.split == "test" and ages[u.speaker] >= 18:
            by_speaker.setdefault(u.speaker, []).append(u)
    by_speaker = {s: us for s, us in by_speaker.items() if len(us) >= ENROLL_UTTERANCES + TURNS_EACH}
    if len(by_speaker) < SPEAKERS:  # a small data root: no table rather than a crash
        log(f"  turn taking, {model}: skipped, {len(by_speaker)} speechocean762 test adults with "
            f"{ENROLL_UTTERANCES + TURNS_EACH} utterances, {SPEAKERS} needed")
        return {}
    rng = np.random.default_rng(seed)
    out = {}
    scripts = [_script(rng, by_speaker) for _ in range(draws)]
    for overlap in OVERLAPS_S:
        per = {"turns_with_own_utterance": [], "named_right": [], "changes_reported_per_true_change": []}
        for names, enroll_rows, order in scripts:
            with tempfile.TemporaryDirectory() as profiles:
                for name, rows in zip(names, enroll_rows):
                    enroll(f"s{name}", [str(u.path) for u in rows], model=model, profiles=profiles,
                           warn=lambda line: None)
                audio, spans = _mix([(f"s{n}", u) for n, u in order], overlap)
                pipeline = Pipeline(model=model, heads=["speaker"], profiles=profiles)
                s = _score(list(pipeline.run(iterable_source([audio]))), spans)
            per["turns_with_own_utterance"].append(s["turns_with_own_utterance"] / s["turns"])
            per["named_right"].append(s["named_right"] / max(1, s["utterances"]))
            per["changes_reported_per_true_change"].append(s["changes_reported"] / s["true_changes"])
        out[f"overlap_{overlap:.1f}s"] = {k: {"mean": round(float(np.mean(v)), 4), "sd": round(float(np.std(v)), 4)}
                                          for k, v in per.items()}
        log(f"  turn taking, {model}, overlap {overlap:.1f} s: {out[f'overlap_{overlap:.1f}s']}")
    return out
