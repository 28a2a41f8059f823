"""The scoring of one system in `bench quality`: emotion, speaker, zero-shot and robustness probes on the clean
sets, and the simulated-mask task."""
from __future__ import annotations

import hashlib

import numpy as np

from .bench_sets import EvaluationSets, Item
from .masks import HELD_OUT_MASK, MASK_TYPES
from .probes import (first_n_per_speaker, fit_probe, identification_accuracy, leave_one_speaker_out, scores,
                     split_protocol, verification_eer, zero_shot_uar)


# RAVDESS -> EmoDB zero-shot: the four classes both corpora share (EmoDB label -> RAVDESS label)
SHARED_EMOTIONS = {"neutral": "neutral", "happiness": "happy", "sadness": "sad", "anger": "angry"}


def evaluate_clean(X: dict[str, np.ndarray], S: dict[str, np.ndarray], data: dict[str, list], ages: dict) -> dict:
    """Every task but the masks. X: utterance embeddings per set (with "ravdess_robust", the RAVDESS test
    actors through rooms and noise); S: the part a speaker head scores (the same for systems without one)."""
    rav, emo, fsdd = data["ravdess"], data["emodb"], data["fsdd"]
    rav_label = np.array([u.label for u in rav])
    rav_split = np.array([u.split for u in rav])
    test = rav_split == "test"
    rav_spk = np.array([u.speaker for u in rav])
    # one probe (C on the validation actors) scores the clean test actors and the same actors through rooms
    emotion_probe = fit_probe(X["ravdess"][rav_split == "train"], rav_label[rav_split == "train"],
                              X["ravdess"][rav_split == "val"], rav_label[rav_split == "val"])
    clean = scores(rav_label[test], emotion_probe.predict(X["ravdess"][test]))
    robust_accuracy = scores(rav_label[test], emotion_probe.predict(X["ravdess_robust"]))["accuracy"]
    out = {
        "ravdess_emotion": dict(clean, C=emotion_probe.C),
        # no ratio to a clean accuracy of 0 (a system that got no test utterance right): None, shown as "-"
        "robustness_rooms_noise_10db": {"accuracy": robust_accuracy,
                                        "ratio_to_clean": robust_accuracy / clean["accuracy"] if clean["accuracy"]
                                        else None},
        "emodb_emotion": leave_one_speaker_out(X["emodb"], np.array([u.label for u in emo]), [u.speaker for u in emo]),
        "fsdd_speaker": split_protocol(X["fsdd"], np.array([u.speaker for u in fsdd]), [u.split for u in fsdd]),
        "ravdess_verification_eer": verification_eer(S["ravdess"][test], rav_spk[test])[0],
        # 3 neutral/calm utterances enroll each test actor; the utterances of the six other emotions are queried
        "ravdess_speaker_id_across_emotions": identification_accuracy(
            S["ravdess"][test], rav_spk[test],
            first_n_per_speaker(rav_spk[test], 3, np.isin(rav_label[test], ["neutral", "calm"])),
            query=~np.isin(rav_label[test], ["neutral", "calm"])),
    }
    shared = np.isin(rav_label, list(SHARED_EMOTIONS.values()))
    emo_label = np.array([SHARED_EMOTIONS.get(u.label, "") for u in emo])
    tr, va = shared & (rav_split == "train"), shared & (rav_split == "val")
    out["zero_shot_ravdess_to_emodb_uar"] = zero_shot_uar(
        X["ravdess"][tr], rav_label[tr], X["ravdess"][va], rav_label[va], X["emodb"][emo_label != ""],
        emo_label[emo_label != ""])
    so_spk = np.array([u.speaker for u in data["speechocean762"]])
    for group, keep in (("children", np.array([ages[s] < 18 for s in so_spk])),
                        ("adults", np.array([ages[s] >= 18 for s in so_spk]))):
        out[f"speechocean762_{group}_eer"] = verification_eer(S["speechocean762"][keep], so_spk[keep])[0]
        out[f"speechocean762_{group}_speaker_id"] = identification_accuracy(
            S["speechocean762"][keep], so_spk[keep], first_n_per_speaker(so_spk[keep]))
    es_spk = np.array([u.speaker for u in data["emospeech_in"]])
    out["emospeech_in_eer"] = verification_eer(S["emospeech_in"], es_spk)[0]
    out["emospeech_in_speaker_id"] = identification_accuracy(S["emospeech_in"], es_spk, first_n_per_speaker(es_spk))
    return out


def mask_design(items: list[Item], every_seen_type: bool = False) -> dict[str, np.ndarray]:
    """Row selections for the simulated-mask task; the held-out mask never enters training. The benchmark's
    protocol (the same for every system): each training utterance clean and through one seen mask, chosen per
    utterance so classes stay balanced. With `every_seen_type` (the shipped mask head's recipe, 2-4 points more
    on the held-out type): through every seen mask, its clean row repeated once per seen mask so the classes
    weigh the same. "train" and "val" are row indices (with repeats), the test selections masks."""
    seen = [m for m in MASK_TYPES if m != HELD_OUT_MASK]
    split = np.array([it.utterance.split for it in items])
    mask = np.array([it.mask or "none" for it in items])
    if every_seen_type:
        fit_rows, repeat_clean = mask != HELD_OUT_MASK, len(seen) - 1
    else:
        chosen = np.array([seen[int(hashlib.sha1(it.utterance.path.name.encode()).hexdigest(), 16) % len(seen)]
                           for it in items])
        fit_rows, repeat_clean = (mask == "none") | (mask == chosen), 0

    def fit_indices(which: str) -> np.ndarray:
        clean = np.flatnonzero((split == which) & (mask == "none"))
        return np.concatenate([np.flatnonzero((split == which) & fit_rows)] + [clean] * repeat_clean)

    return {
        "label": np.where(mask == "none", "no_mask", "mask"),
        "train": fit_indices("train"), "val": fit_indices("val"),
        "test_seen": (split == "test") & fit_rows,
        "test_held_out": (split == "test") & ((mask == "none") | (mask == HELD_OUT_MASK)),
    }


def evaluate_mask(X: np.ndarray, design: dict) -> dict:
    from .probes import fit_probe, scores

    y = design["label"]
    probe = fit_probe(X[design["train"]], y[design["train"]], X[design["val"]], y[design["val"]])
    return {f"{which}": scores(y[design[which]], probe.predict(X[design[which]]))["uar"]
            for which in ("test_seen", "test_held_out")}


def clean_row(name: str, X: dict[str, np.ndarray], ev: EvaluationSets, log=print, speaker_dims=None) -> dict:
    """One system's results on the clean sets (a student's speaker part, `speaker_dims`, for the speaker tasks;
    everything for systems without one)."""
    from ..speaker import speaker_part

    log(f"  probes: {name}")
    return evaluate_clean(X, {ds: speaker_part(x, speaker_dims) for ds, x in X.items()}, ev.data, ev.ages)
