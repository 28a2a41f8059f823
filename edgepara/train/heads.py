"""Training the shipped heads on the default student's int8 embeddings."""
from __future__ import annotations

from pathlib import Path

import numpy as np

from ..assets import heads_dir, resolve_model
from ..heads import save_probe
from .bench import Item, evaluate_mask, features, int8_system, mask_design, mask_items
from .masks import HELD_OUT_MASK, MASK_TYPES, curves_path, load_curves
from .data import data_root as find_data_root, load_manifest
from .probes import fit_probe, scores


def masked_ravdess_features(model: str, cache: Path, data_root, log) -> tuple[list, np.ndarray]:
    """The simulated-mask items (clean + four masks) and their int8 utterance embeddings."""
    root = find_data_root(data_root)
    items = mask_items(load_manifest("ravdess", root))
    return items, features(int8_system(model), items, cache, "ravdess_masked", load_curves(str(curves_path(root))),
                           log=log)


def probe_card(name: str, task: str, probe, model: str, metrics: dict, data: str,
               license: str = "CC BY-NC-SA 4.0 (trained on RAVDESS; non-commercial use only)", **extra) -> dict:
    _, model_card = resolve_model(model)
    return {"name": name, "version": "0.2.0", "task": task, "classes": probe.classes, "model": model_card["name"],
            "model_sha256": model_card["sha256"], "dim": model_card["embedding_dim"],
            "kind": "logistic regression on standardised utterance embeddings", "C": probe.C, "metrics": metrics,
            **extra, "data": data, "license": license}


# Every labelled emotion corpus in the data root, mapped onto RAVDESS's eight classes (EmoDB's boredom has
# no counterpart and is left out; emospeech_in's labels are self-reported by its users).
EMOTION_MAPS = {
    "ravdess": {c: c for c in ("neutral", "calm", "happy", "sad", "angry", "fearful", "disgust", "surprised")},
    "emodb": {"neutral": "neutral", "happiness": "happy", "sadness": "sad", "anger": "angry", "fear": "fearful",
              "disgust": "disgust"},
    "emospeech_in": {"calm": "calm", "angry": "angry", "fearful": "fearful", "happy": "happy"},
}


def emotion_corpora(model: str, cache: Path, data_root, log) -> dict[str, tuple[np.ndarray, np.ndarray, np.ndarray]]:
    """corpus -> (int8 utterance embeddings, mapped labels, split) for the utterances whose label maps.
    Splits are speaker-disjoint: RAVDESS 1-16/17-18/19-24, EmoDB's and emospeech_in's manifest splits
    (emospeech_in has no test split: its val users are its test speakers here, never used to choose C)."""
    root = find_data_root(data_root)
    out = {}
    for corpus, mapping in EMOTION_MAPS.items():
        rows = [u for u in load_manifest(corpus, root) if u.label in mapping]
        # RAVDESS maps whole, the very rows of the benchmark's set: share its cached features
        set_name = "ravdess" if corpus == "ravdess" else f"{corpus}_emotion_head"
        X = features(int8_system(model), [Item(u) for u in rows], cache, set_name, log=log)
        split = np.array([("test" if u.split == "val" else u.split) if corpus == "emospeech_in" else u.split
                          for u in rows])
        out[corpus] = (X, np.array([mapping[u.label] for u in rows]), split)
    return out


def _fit_on(corpora: dict, names) -> object:
    """A probe on the train splits of `names`, C chosen on their validation splits."""
    pick = lambda part: [(X[s == part], y[s == part]) for X, y, s in (corpora[n] for n in names)]
    (Xt, yt), (Xv, yv) = [(np.concatenate([a for a, _ in p]), np.concatenate([b for _, b in p]))
                          for p in (pick("train"), pick("val"))]
    return fit_probe(Xt, yt, Xv, yv)


def train_emotion_head(model: str, cache: Path, data_root=None, out_dir: Path | None = None, log=print,
                       command: str = "") -> dict:
    """One head on every labelled emotion corpus (RAVDESS, EmoDB, emospeech_in); each corpus reported on its
    own test speakers, and leave-one-corpus-out (fitted on the other two, scored on the classes they share)."""
    corpora = emotion_corpora(model, cache, data_root, log)
    probe = _fit_on(corpora, list(corpora))
    per_corpus, loco = {}, {}
    for name, (X, y, split) in corpora.items():
        test = split == "test"
        per_corpus[name] = {k: round(v, 4) for k, v in scores(y[test], probe.predict(X[test])).items()}
        others = [n for n in corpora if n != name]
        held_out = _fit_on(corpora, others)
        known = test & np.isin(y, held_out.classes)
        loco[name] = {k: round(v, 4) for k, v in scores(y[known], held_out.predict(X[known])).items()}
        loco[name]["classes"] = sorted(set(y[known]))
    card = probe_card("emotion", "emotion (8 classes: RAVDESS's set; acted English, acted German, self-reported "
                      "Indian phone speech)", probe, model, {
        "test_speakers": per_corpus,
        "leave_one_corpus_out": loco,
        "split": "fit on the train speakers of RAVDESS (actors 1-16), EmoDB and emospeech_in, C chosen on their "
                 "validation speakers (RAVDESS 17-18, EmoDB's val), refit on train + val; tested on RAVDESS 19-24, "
                 "EmoDB's test speakers, emospeech_in's val users. Leave-one-corpus-out: fitted on two corpora, "
                 "scored on the third's test speakers over the classes the two know",
        "command": command}, data="RAVDESS (Livingstone & Russo 2018), EmoDB (Burkhardt et al. 2005; research "
                                  "use), Indian EmoSpeech Command Dataset (Banga et al. 2019)",
        license="CC BY-NC-SA 4.0 and research use only (trained on RAVDESS, emospeech_in and EmoDB)")
    card = save_probe((out_dir or heads_dir() / model) / "emotion.npz", card, probe.arrays())
    log(f"emotion head on {model}: " + ", ".join(f"{n} acc {r['accuracy']:.3f} UAR {r['uar']:.3f}"
                                                 for n, r in per_corpus.items()))
    return card


def train_mask_head(model: str, cache: Path, data_root=None, out_dir: Path | None = None, log=print,
                    command: str = "") -> dict:
    """Masked vs not masked, on simulated masks; one mask type is held out of training and reported."""

    items, X = masked_ravdess_features(model, cache, data_root, log)
    design = mask_design(items)
    y = design["label"]
    probe = fit_probe(X[design["train"]], y[design["train"]], X[design["val"]], y[design["val"]])
    uar = evaluate_mask(X, design)
    card = probe_card("mask", "face mask worn (binary), SIMULATED", probe, model, {
        "simulated_uar_seen_mask_types": round(uar["test_seen"], 4),
        f"simulated_uar_held_out_{HELD_OUT_MASK}": round(uar["test_held_out"], 4),
        "split": f"RAVDESS first takes; fit on actors 01-18 (C chosen on 17-18), tested on actors 19-24; "
                 f"trained with {', '.join(m for m in MASK_TYPES if m != HELD_OUT_MASK)}, {HELD_OUT_MASK} held out",
        "command": command,
    }, data="RAVDESS speech (Livingstone & Russo 2018) through simulated masks", caveat=(
        "No recordings of masked speech were available: masks were simulated by filtering clean speech with "
        "measured attenuation curves (Corey, Jones & Singer 2020). Not validated on real masked speech; for scale, "
        "the ComParE 2020 Mask sub-challenge on real recordings had a 71.8% UAR baseline. "
        f"{HELD_OUT_MASK} is held out of this head's training only: the student's distillation augmentation "
        "filtered some unlabelled training clips through all four curves."))
    card = save_probe((out_dir or heads_dir() / model) / "mask.npz", card, probe.arrays())
    log(f"mask head (simulated): UAR seen types {uar['test_seen']:.3f}, held-out {HELD_OUT_MASK} {uar['test_held_out']:.3f}")
    return card


def train_mask_type_head(model: str, cache: Path, data_root=None, out_dir: Path | None = None, log=print,
                         command: str = "") -> dict:
    """Which mask (or none), among the three seen types: measures whether the types can be told apart at all
    (the held-out type cannot be named by a head that never saw it)."""
    from .user_heads import confusion_table

    items, X = masked_ravdess_features(model, cache, data_root, log)
    y = np.array([it.mask or "none" for it in items])
    split = np.array([it.utterance.split for it in items])
    seen = y != HELD_OUT_MASK
    rows = {name: seen & (split == name) for name in ("train", "val", "test")}
    probe = fit_probe(X[rows["train"]], y[rows["train"]], X[rows["val"]], y[rows["val"]])
    predicted = probe.predict(X[rows["test"]])
    test = scores(y[rows["test"]], predicted)
    card = probe_card("mask_type", "which face mask (none or one of three types), SIMULATED", probe, model, {
        "simulated_test_accuracy": round(test["accuracy"], 4), "simulated_test_uar": round(test["uar"], 4),
        "chance_uar": round(1 / len(probe.classes), 4),
        "test_confusion": confusion_table(y[rows["test"]], predicted, probe.classes).splitlines(),
        "split": f"RAVDESS first takes; fit on actors 01-18 (C chosen on 17-18), tested on actors 19-24; "
                 f"types {', '.join(m for m in MASK_TYPES if m != HELD_OUT_MASK)}; {HELD_OUT_MASK} left out",
        "command": command,
    }, data="RAVDESS speech (Livingstone & Russo 2018) through simulated masks",
        caveat="Simulated masks only (see the mask head's card); not validated on real masked speech.")
    card = save_probe((out_dir or heads_dir() / model) / "mask_type.npz", card, probe.arrays())
    log(f"mask type head (simulated): test UAR {test['uar']:.3f} over {len(probe.classes)} classes on {model}")
    return card


def window_embeddings(model: str, rows: list, cache: Path, set_name: str, log) -> list[np.ndarray]:
    """Each utterance's speech-window embeddings (whole vectors), as the live pipeline computes them."""
    from ..assets import atomic_write
    from ..embed import embed_recording
    from ..runtime import Embedder

    path = cache / f"{set_name}_windows_{int8_system(model)[0]}.npz"
    if not path.exists():
        log(f"  {path.stem} ({len(rows)} utterances)")
        embedder = Embedder(model)
        per = [embed_recording(embedder, Item(u).audio())[2] for u in rows]
        cache.mkdir(parents=True, exist_ok=True)
        atomic_write(path, lambda tmp: np.savez(tmp, embeddings=np.concatenate(per), counts=np.array([len(p) for p in per])))
    data = np.load(path)
    return np.split(data["embeddings"], np.cumsum(data["counts"])[:-1])


def live_speaker_trials(windows: list[np.ndarray], speakers: np.ndarray, model_card: dict, seed: int = 0):
    """Verification trials scored exactly as the live head decides: a profile is the mean of 3 enrollment
    utterances' unit embeddings (each the mean of its windows, as `edgepara enroll` stores it); the head
    compares the speaker part of that centroid with each window's speaker part, and the final prediction
    averages the window scores over the utterance."""
    from ..speaker import speaker_part

    rng = np.random.default_rng(seed)
    utterances = np.stack([w.mean(axis=0) for w in windows])
    unit = utterances / (np.linalg.norm(utterances, axis=1, keepdims=True) + 1e-9)
    centroids, trial = {}, np.ones(len(speakers), bool)
    for s in sorted(set(speakers)):
        idx = rng.choice(np.flatnonzero(speakers == s), 3, replace=False)
        c = speaker_part(unit[idx].mean(axis=0), model_card.get("speaker_dims"))
        centroids[s] = c / np.linalg.norm(c)
        trial[idx] = False
    scores_, same = [], []
    for i in np.flatnonzero(trial):
        w = speaker_part(windows[i], model_card.get("speaker_dims"))
        w = w / (np.linalg.norm(w, axis=1, keepdims=True) + 1e-9)
        for s, c in centroids.items():
            scores_.append(float(np.mean(w @ c)))
            same.append(speakers[i] == s)
    return np.array(scores_), np.array(same)


def calibrate_speaker_threshold(model: str, cache: Path, data_root=None, out_dir: Path | None = None, log=print,
                                command: str = "") -> dict:
    """The speaker head's default 'unknown' threshold: the EER point of the live head's score on speakers
    the student never heard (RAVDESS validation actors 17-18 and speechocean762's validation speakers),
    reported on RAVDESS test actors 19-24 (across emotions) and speechocean762's test speakers."""
    from .export import write_json
    from ..speaker import equal_error_rate

    root = find_data_root(data_root)
    _, model_card = resolve_model(model)
    ravdess = load_manifest("ravdess", root)
    speechocean = load_manifest("speechocean762", root)
    sets = {"calibration": [u for u in ravdess if u.split == "val"] + [u for u in speechocean if u.split == "val"],
            "ravdess_test": [u for u in ravdess if u.split == "test"],
            "speechocean762_test": [u for u in speechocean if u.split == "test"]}
    trials = {}
    for name, rows in sets.items():
        windows = window_embeddings(model, rows, cache, name, log)
        trials[name] = live_speaker_trials(windows, np.array([f"{u.dataset}:{u.speaker}" for u in rows]), model_card)
    _, threshold = equal_error_rate(*trials["calibration"])
    metrics = {}
    for name in ("ravdess_test", "speechocean762_test"):
        scores_, same = trials[name]
        metrics[f"{name}_verification_eer"] = round(equal_error_rate(scores_, same)[0], 4)
        metrics[f"{name}_false_accept_at_threshold"] = round(float(np.mean(scores_[~same] >= threshold)), 4)
        metrics[f"{name}_false_reject_at_threshold"] = round(float(np.mean(scores_[same] < threshold)), 4)
    card = {
        "name": "speaker", "version": "0.2.0", "task": "speaker identification against enrolled profiles",
        "kind": "cosine to enrolled centroids (profiles made with `edgepara enroll`)", "classes": "enrolled names + unknown",
        "model": model_card["name"], "model_sha256": model_card["sha256"], "dim": model_card["embedding_dim"],
        "speaker_dims": model_card.get("speaker_dims"),
        "threshold": round(threshold, 4),
        "metrics": dict(metrics, protocol=(
            "score = mean over an utterance's speech windows of the cosine (speaker part) to a profile of 3 "
            "enrollment utterances, as the live final prediction decides; threshold at the EER point on "
            "speakers never trained on (RAVDESS actors 17-18, speechocean762 val speakers); EER and error rates "
            "at that threshold on RAVDESS actors 19-24 (all emotions) and speechocean762 test speakers"),
            command=command),
        "data": "RAVDESS (Livingstone & Russo 2018), speechocean762 (Zhang et al. 2021)",
        "license": "CC BY-NC-SA 4.0 (calibrated on RAVDESS)",
    }
    write_json((out_dir or heads_dir() / model) / "speaker.json", card)
    log(f"speaker threshold {threshold:.3f} on {model}: " + ", ".join(f"{k} {v}" for k, v in metrics.items()))
    return card
