"""Training the shipped heads on the default student's int8 embeddings."""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from ..assets import heads_dir, resolve_model
from ..errors import EdgeparaError
from ..heads import BAND_SHAPE_INPUT, save_probe
from .bench_sets import Item, mask_curves, mask_items, robust_items
from .bench_systems import band_shape_system, features, int8_system
from .bench_tasks import evaluate_mask, mask_design
from .masks import HELD_OUT_MASK, MASK_TYPES
from .data import data_root as find_data_root, load_manifest
from .probes import fit_probe, scores


def masked_ravdess_features(model: str, cache: Path, data_root, log) -> tuple[list, np.ndarray, np.ndarray]:
    """The simulated-mask items (clean + four masks), their int8 utterance embeddings and their band shapes (the mean
    of their speech windows' frontend.band_shape): what the mask heads read."""
    root = find_data_root(data_root)
    items = mask_items(load_manifest("ravdess", root))
    return (items, features(int8_system(model), items, cache, "ravdess_masked", mask_curves(root), log=log),
            features(band_shape_system(model), items, cache, "ravdess_masked", mask_curves(root), log=log))


def band_shape_fields(model: str) -> dict:
    """The card fields of a head that reads the band shape beside the embedding (version 0.5.0 of the mask heads)."""
    from ..frontend import FrontendConfig

    _, model_card = resolve_model(model)
    return {"input": BAND_SHAPE_INPUT, "band_shape_dim": FrontendConfig.from_card(model_card["frontend"]).n_mels,
            "kind": "logistic regression on standardised utterance embeddings and band shapes"}


def probe_card(name: str, task: str, probe, model: str, metrics: dict, data: str,
               license: str = "CC BY-NC-SA 4.0 (trained on RAVDESS; non-commercial use only)", **extra) -> dict:
    _, model_card = resolve_model(model)
    return {"name": name, "version": "0.2.0", "task": task, "classes": probe.classes, "model": model_card["name"],
            "model_sha256": model_card["sha256"], "dim": model_card["embedding_dim"],
            "kind": "logistic regression on standardised utterance embeddings", "C": probe.C, "metrics": metrics,
            **extra, "data": data, "license": license}


CORPUS_CITATIONS = {
    "ravdess": "RAVDESS (Livingstone & Russo 2018; CC BY-NC-SA 4.0)",
    "emodb": "EmoDB (Burkhardt et al. 2005; research use)",
    "ased_amharic": "ASED (Retta et al. 2023; research use)",
    "emospeech_in": "Indian EmoSpeech Command Dataset (Banga et al. 2019; CC BY-NC-SA 4.0)",
    "baved_arabic": "BAVED (Aouf 2019; research use)",
}
TASK_DESCRIPTIONS = {
    "emotion": "emotion, the 4 classes every labelled corpus shares (neutral/calm, happy, sad, angry), read against "
               "the speaker's own baseline",
    "arousal": "arousal (low / neutral / high), from BAVED's three levels and the categories' place on the arousal "
               "axis, read against the speaker's own baseline",
}


def train_emotion_head(model: str, cache: Path, data_root=None, out_dir: Path | None = None, log=print,
                       command: str = "") -> dict:
    """The shipped `emotion` (shared classes) and `arousal` heads, fitted and measured by the recipe in
    train/emotion.py (the same run as `bench quality`'s live tables), and the 8-class RAVDESS head."""
    from .emotion import corpus_features, head_from_probe
    from .emotion_bench import live_tables
    from .emotion_corpora import AROUSAL_MAPS, EMOTION_MAPS

    root = find_data_root(data_root)
    X = corpus_features(int8_system(model), root, cache, log)
    report, heads = live_tables(model, X, root, log)
    cards = {}
    for task, (probe, extra) in heads.items():
        _, arrays, fields = head_from_probe(task, probe, {"uncertain_below": extra["uncertain_below"]})
        maps = EMOTION_MAPS if task == "emotion" else AROUSAL_MAPS
        metrics = dict(extra["metrics"])
        if task == "emotion":
            metrics["leave_one_corpus_out_live"] = {k: v for k, v in report.items()
                                                    if k.startswith(("loco_live", "certain", "uncertain"))}
        card = probe_card(task, TASK_DESCRIPTIONS[task], probe, model, dict(
            metrics,
            split="fit on the training and validation speakers of every corpus below (C chosen on the validation "
                  "speakers, every (corpus, class) weighted equally), each speaker's embeddings standardised by that "
                  "speaker's own statistics; reported on each corpus's test speakers through the live pipeline (one "
                  "stream per speaker, cold start included), clean and through held-out rooms and noise at 10 dB",
            command=command),
            data=", ".join(CORPUS_CITATIONS[c] for c in maps),
            license=f"CC BY-NC-SA 4.0 and research use only (trained on {', '.join(maps)})",
            **{k: v for k, v in fields.items() if k in ("input", "adaptation", "uncertain_below")},
            label_maps=maps)
        card["version"] = "0.4.0"
        cards[task] = save_probe((out_dir or heads_dir() / model) / f"{task}.npz", card, arrays)
    cards["emotion8"] = train_ravdess_head(model, cache, root, out_dir, log, command)
    return cards


def train_ravdess_head(model: str, cache: Path, root: Path, out_dir: Path | None, log, command: str) -> dict:
    """RAVDESS's own 8 classes, for acted studio English: fit on actors 1-16, C on 17-18, refit on 1-18; tested
    on actors 19-24, clean and through held-out rooms and noise (bench quality's robustness set)."""
    rows = load_manifest("ravdess", root)
    X = features(int8_system(model), [Item(u) for u in rows], cache, "ravdess", log=log)
    held_out_rooms = features(int8_system(model), robust_items(rows, root), cache, "ravdess_robust", log=log)
    y, split = np.array([u.label for u in rows]), np.array([u.split for u in rows])
    probe = fit_probe(X[split == "train"], y[split == "train"], X[split == "val"], y[split == "val"])
    test = {k: round(v, 4) for k, v in scores(y[split == "test"], probe.predict(X[split == "test"])).items()}
    rooms = {k: round(v, 4) for k, v in scores(y[split == "test"], probe.predict(held_out_rooms)).items()}
    card = probe_card("emotion8", "emotion, RAVDESS's 8 classes (acted studio English; no speaker adaptation)", probe,
                      model, {"ravdess_test_actors": test, "ravdess_test_actors_rooms_noise_10db": rooms,
                              "split": "fit on RAVDESS actors 1-16, C on 17-18, refit on 1-18; tested on actors 19-24 "
                                       "(utterance means), clean and through held-out rooms and noise at 10 dB",
                              "command": command},
                      data="RAVDESS (Livingstone & Russo 2018)")
    card = save_probe((out_dir or heads_dir() / model) / "emotion8.npz", card, probe.arrays())
    log(f"emotion8 head on {model}: RAVDESS test actors acc {test['accuracy']:.3f} UAR {test['uar']:.3f}; through "
        f"held-out rooms and noise acc {rooms['accuracy']:.3f}")
    return card


def train_mask_head(model: str, cache: Path, data_root=None, out_dir: Path | None = None, log=print,
                    command: str = "") -> dict:
    """Masked vs not masked, on simulated masks; one mask type is held out of training and reported. The head
    reads each window's spectral shape beside the embedding (card input "embedding+band_shape"): a mask's loss of
    high frequencies, which the student keeps little of (the embedding alone is reported too)."""
    items, X, shapes = masked_ravdess_features(model, cache, data_root, log)
    design = mask_design(items, every_seen_type=True)
    y = design["label"]
    joined = np.hstack([X, shapes])
    probe = fit_probe(joined[design["train"]], y[design["train"]], joined[design["val"]], y[design["val"]])
    uar, embedding_only = evaluate_mask(joined, design), evaluate_mask(X, design)
    card = probe_card("mask", "face mask worn (binary), SIMULATED", probe, model, {
        "simulated_uar_seen_mask_types": round(uar["test_seen"], 4),
        f"simulated_uar_held_out_{HELD_OUT_MASK}": round(uar["test_held_out"], 4),
        "embedding_only": {"simulated_uar_seen_mask_types": round(embedding_only["test_seen"], 4),
                           f"simulated_uar_held_out_{HELD_OUT_MASK}": round(embedding_only["test_held_out"], 4)},
        "split": f"RAVDESS first takes; fit on actors 01-18 (C chosen on 17-18), tested on actors 19-24; "
                 f"each utterance clean and through every one of {', '.join(m for m in MASK_TYPES if m != HELD_OUT_MASK)} "
                 f"(clean rows weighted to balance), {HELD_OUT_MASK} held out",
        "command": command,
    }, data="RAVDESS speech (Livingstone & Russo 2018) through simulated masks", caveat=(
        "No recordings of masked speech were available: masks were simulated by filtering clean speech with "
        "measured attenuation curves (Corey, Jones & Singer 2020). Not validated on real masked speech; for scale, "
        "the ComParE 2020 Mask sub-challenge on real recordings had a 71.8% UAR baseline. "
        f"{HELD_OUT_MASK} is held out of this head's training only: the student's distillation augmentation "
        "filtered some unlabelled training clips through all four curves. The head reads the loss of high "
        "frequencies: audio that never had them (8 kHz recordings, narrow-band phone codecs) reads as masked."),
        **band_shape_fields(model))
    card["version"] = "0.5.0"  # 0.5.0: reads the band shape too
    card = save_probe((out_dir or heads_dir() / model) / "mask.npz", card, probe.arrays())
    log(f"mask head (simulated): UAR seen types {uar['test_seen']:.3f}, held-out {HELD_OUT_MASK} "
        f"{uar['test_held_out']:.3f} (the embedding alone {embedding_only['test_seen']:.3f}, "
        f"{embedding_only['test_held_out']:.3f})")
    return card


def train_mask_type_head(model: str, cache: Path, data_root=None, out_dir: Path | None = None, log=print,
                         command: str = "") -> dict:
    """Which mask (or none), among the three seen types: measures whether the types can be told apart at all
    (the held-out type cannot be named by a head that never saw it)."""
    from .user_heads import confusion_table

    items, X, shapes = masked_ravdess_features(model, cache, data_root, log)
    y = np.array([it.mask or "none" for it in items])
    split = np.array([it.utterance.split for it in items])
    seen = y != HELD_OUT_MASK
    rows = {name: seen & (split == name) for name in ("train", "val", "test")}

    def fit_and_test(F: np.ndarray):
        probe = fit_probe(F[rows["train"]], y[rows["train"]], F[rows["val"]], y[rows["val"]])
        predicted = probe.predict(F[rows["test"]])
        return probe, predicted, scores(y[rows["test"]], predicted)

    probe, predicted, test = fit_and_test(np.hstack([X, shapes]))
    embedding_only = fit_and_test(X)[2]
    card = probe_card("mask_type", "which face mask (none or one of three types), SIMULATED", probe, model, {
        "simulated_test_accuracy": round(test["accuracy"], 4), "simulated_test_uar": round(test["uar"], 4),
        "embedding_only": {"simulated_test_accuracy": round(embedding_only["accuracy"], 4),
                           "simulated_test_uar": round(embedding_only["uar"], 4)},
        "chance_uar": round(1 / len(probe.classes), 4),
        "test_confusion": confusion_table(y[rows["test"]], predicted, probe.classes).splitlines(),
        "split": f"RAVDESS first takes; fit on actors 01-18 (C chosen on 17-18), tested on actors 19-24; "
                 f"types {', '.join(m for m in MASK_TYPES if m != HELD_OUT_MASK)}; {HELD_OUT_MASK} left out",
        "command": command,
    }, data="RAVDESS speech (Livingstone & Russo 2018) through simulated masks",
        caveat="Simulated masks only (see the mask head's card); not validated on real masked speech.",
        **band_shape_fields(model))
    card["version"] = "0.5.0"  # 0.5.0: reads the band shape too
    card = save_probe((out_dir or heads_dir() / model) / "mask_type.npz", card, probe.arrays())
    log(f"mask type head (simulated): test UAR {test['uar']:.3f} over {len(probe.classes)} classes on {model} (the "
        f"embedding alone {embedding_only['uar']:.3f})")
    return card


def window_embeddings(model: str, rows: list, cache: Path, set_name: str, log) -> list[np.ndarray]:
    """Each utterance's speech-window embeddings (whole vectors), as the live pipeline computes them."""
    from ..assets import atomic_write
    from ..embed import embed_recording
    from ..errors import NoSpeechError
    from ..runtime import Embedder

    path = cache / f"{set_name}_windows_{int8_system(model)[0]}.npz"
    if not path.exists():
        log(f"  {path.stem} ({len(rows)} utterances)")
        embedder = Embedder(model)

        def windows(u) -> np.ndarray:
            try:
                return embed_recording(embedder, Item(u).audio())[2]
            except NoSpeechError as err:  # one clip of thousands: say which
                raise NoSpeechError(f"{u.path}: {err}") from None

        per = [windows(u) for u in rows]
        cache.mkdir(parents=True, exist_ok=True)
        atomic_write(path, lambda tmp: np.savez(tmp, embeddings=np.concatenate(per), counts=np.array([len(p) for p in per])))
    data = np.load(path)
    if len(data["counts"]) != len(rows):  # a cache made from another data root: utterances would mismatch
        raise EdgeparaError(f"expected {len(rows)} utterances ({set_name} in the data root) in {path}, got "
                            f"{len(data['counts'])} (a cache of another data root or manifest: use another --cache, "
                            "or delete the file)")
    return np.split(data["embeddings"], np.cumsum(data["counts"])[:-1])


def live_speaker_trials(windows: list[np.ndarray], speakers: np.ndarray, model_card: dict, seed: int = 0):
    """Verification trials scored exactly as the live head decides: a profile is the mean of 3 enrollment
    utterances' unit embeddings (each the mean of its windows, as `edgepara enroll` stores it); the head
    compares the speaker part of that centroid with the utterance's voice (the direction of the sum of its
    windows' unit speaker parts), as the final prediction does."""
    from .open_set import profile_centroid, unit_embeddings

    rng = np.random.default_rng(seed)
    dims = model_card.get("speaker_dims")
    unit, voices = unit_embeddings(windows, dims)
    centroids, trial = {}, np.ones(len(speakers), bool)
    for s in sorted(set(speakers)):
        idx = rng.choice(np.flatnonzero(speakers == s), 3, replace=False)
        centroids[s] = profile_centroid(unit, idx, dims)
        trial[idx] = False
    scores_, same = [], []
    for i in np.flatnonzero(trial):
        for s, c in centroids.items():
            scores_.append(float(voices[i] @ c))
            same.append(speakers[i] == s)
    return np.array(scores_), np.array(same)


def calibrate_speaker_threshold(model: str, cache: Path, data_root=None, out_dir: Path | None = None, log=print,
                                command: str = "") -> dict:
    """The speaker head's calibration for open-set identification: the single-profile impostor curve on speakers
    the student never heard (RAVDESS validation actors 17-18 and speechocean762's validation speakers), from
    which the live head sets its cosine bar for the number of people enrolled, and the default false-accept rate
    1 - TARGET_STRANGERS_UNKNOWN. Reported as the live head decides (train/open_set.py) for 1, 4 and 10 enrolled
    speakers on RAVDESS test actors (enrolled from neutral/calm, queried across emotions), speechocean762's test
    children and adults, emospeech_in's validation users (phones) and across corpora, with verification EER
    beside."""
    from .export import write_json
    from .open_set import N_ENROLLED, TARGET_STRANGERS_UNKNOWN, impostor_curve, open_set_table, speaker_sets
    from ..speaker import ImpostorCurve, equal_error_rate

    root = find_data_root(data_root)
    _, model_card = resolve_model(model)
    windows, speakers, sets = speaker_sets(model, cache, root, log)
    curve = impostor_curve(windows["calibration"], speakers["calibration"], model_card.get("speaker_dims"))
    rate = round(1.0 - TARGET_STRANGERS_UNKNOWN, 4)
    impostors = ImpostorCurve.from_card(curve, "impostor curve")

    def bar(n: int) -> float:
        return impostors.cosine_for(rate, n)

    open_set = open_set_table(model_card, windows, speakers, sets, root, bar)
    metrics = {"open_set_identification": open_set, "cosine_bar": {f"N={n}": round(bar(n), 4) for n in N_ENROLLED}}
    for name in ("ravdess_test", "speechocean762_test"):
        scores_, same = live_speaker_trials(windows[name], speakers[name], model_card)
        metrics[f"{name}_verification_eer"] = round(equal_error_rate(scores_, same)[0], 4)
        metrics[f"{name}_false_accept_one_profile"] = round(float(np.mean(scores_[~same] >= bar(1))), 4)
        metrics[f"{name}_false_reject_one_profile"] = round(float(np.mean(scores_[same] < bar(1))), 4)
    card = {
        "name": "speaker", "version": "0.4.1", "task": "speaker identification against enrolled profiles",
        "kind": "cosine to enrolled centroids (profiles made with `edgepara enroll`)", "classes": "enrolled names + unknown",
        "model": model_card["name"], "model_sha256": model_card["sha256"], "dim": model_card["embedding_dim"],
        "speaker_dims": model_card.get("speaker_dims"),
        "false_accept": rate,
        "impostor_curve": {k: curve[k] for k in ("false_accept", "cosine")},
        "metrics": dict(metrics, protocol=(
            "score = cosine (speaker part) of an utterance's voice (the direction of the sum of its speech "
            "windows' unit speaker parts) to a profile of 3 enrollment utterances, as the live final prediction "
            "decides; the best profile names the speaker when its score reaches the cosine bar, else 'unknown'. impostor_curve: the cosine that strangers' "
            f"utterances reach against one profile at each rate ({curve['impostor_scores']} impostor scores, 400 "
            "draws, on speakers never trained on: RAVDESS actors 17-18, speechocean762 val speakers); with N people "
            "enrolled the head's bar is the curve's cosine at 1 - (1 - false_accept)^(1/N), so about false_accept "
            f"of strangers are named whatever N (default {rate}: {TARGET_STRANGERS_UNKNOWN:.0%} called unknown). "
            "Open-set rates: mean and sd over random draws of who is enrolled; named_right / named_wrong / "
            "enrolled_unknown are shares of the enrolled speakers' other utterances, strangers_unknown of the "
            "other speakers' utterances"), command=command),
        "data": "RAVDESS (Livingstone & Russo 2018), speechocean762 (Zhang et al. 2021), Indian EmoSpeech Command "
                "Dataset (Banga et al. 2019)",
        "license": "CC BY-NC-SA 4.0 (calibrated on RAVDESS)",
    }
    write_json((out_dir or heads_dir() / model) / "speaker.json", card)
    log(f"speaker false-accept rate {rate} on {model} (cosine bars {metrics['cosine_bar']}): " + json.dumps(open_set))
    return card
