"""`edgepara bench quality|speed`: every teacher, the teachers concatenated, eGeMAPS and each student
(float and int8) on the same speaker-independent splits, in one run."""
from __future__ import annotations

import hashlib
import json
import re
import time
from functools import lru_cache
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ..assets import atomic_write, available_models, resolve_model
from ..errors import EdgeparaError
from ..audio import read_audio
from ..stream.windower import offline_windows
from .data import Utterance, data_root as find_data_root, load_manifest, noise_paths, room_paths
from .masks import HELD_OUT_MASK, MASK_TYPES, apply_mask, curves_path, load_curves
from .export import write_json
from .augment import Corruptor, add_noise_at_snr
from .probes import (first_n_per_speaker, fit_probe, identification_accuracy, leave_one_speaker_out, scores,
                     split_protocol, verification_eer, zero_shot_uar)
from .targets import WHISPER_LAYERS

TEACHER_NAMES = ("speech_embedding", "resemblyzer", "egemaps")
# The Whisper layers the students learn from: one system per model (its blocks' utterance means side by
# side, one encoder pass), reported as one row per layer.
WHISPER_SYSTEMS = {model: tuple(b for m, b in WHISPER_LAYERS if m == model) for model, _ in WHISPER_LAYERS}
DISTILLATION_TEACHERS = tuple(f"whisper {m} b{b}" for m, b in WHISPER_LAYERS) + ("resemblyzer",)


def corpus(root: Path) -> dict[str, list]:
    """Every evaluation set: the emotion/speaker corpora, and the held-out speakers of the newer sets."""
    data = {name: load_manifest(name, root) for name in ("ravdess", "emodb", "fsdd")}
    data["speechocean762"] = [u for u in load_manifest("speechocean762", root) if u.split == "test"]
    emospeech = [u for u in load_manifest("emospeech_in", root) if u.split == "val"]
    counts = {s: sum(u.speaker == s for u in emospeech) for s in {u.speaker for u in emospeech}}
    data["emospeech_in"] = [u for u in emospeech if counts[u.speaker] >= 4]  # 3 to enroll, >= 1 to verify
    return data


def speechocean_ages(root: Path) -> dict[str, int]:
    import csv

    with open(root / "speechocean762" / "manifest.csv", newline="") as f:
        return {r["speaker"]: int(r["age"]) for r in csv.DictReader(f)}


def _cached(cache: Path, key: str, compute) -> np.ndarray:
    path = cache / f"{key}.npy"
    if path.exists():
        return np.load(path)
    value = compute()
    cache.mkdir(parents=True, exist_ok=True)
    atomic_write(path, lambda tmp: np.save(tmp, value))
    return value


@dataclass(frozen=True)
class Item:
    """One utterance as a system hears it: clean, or through a simulated mask (seeded per utterance)."""

    utterance: Utterance
    mask: str | None = None
    room_noise: tuple[str, str] | None = None  # (room file, noise file) for the robustness set

    def audio(self, curves: dict | None = None) -> np.ndarray:
        audio = read_audio(self.utterance.path)
        if self.room_noise is not None:
            seed = int(hashlib.sha1(f"{self.utterance.path.name}|{self.room_noise}".encode()).hexdigest()[:8], 16)
            return through_room_and_noise(audio, *self.room_noise, np.random.default_rng(seed))
        if self.mask is None:
            return audio
        seed = int(hashlib.sha1(f"{self.utterance.path.name}|{self.mask}".encode()).hexdigest()[:8], 16)
        return apply_mask(audio, *curves[self.mask], rng=np.random.default_rng(seed))


ROBUST_SNR_DB = 10.0


@lru_cache(maxsize=16)
def _room_only(room: str) -> Corruptor:
    return Corruptor([], [room], p_room=1.0, p_noise=0.0, p_codec=0.0, gain_db=(0.0, 0.0))


@lru_cache(maxsize=16)
def _noise_recording(noise: str) -> np.ndarray:
    return read_audio(noise)


def through_room_and_noise(audio: np.ndarray, room: str, noise: str, rng: np.random.Generator) -> np.ndarray:
    """A measured room response, then real noise at 10 dB SNR (a random stretch of the noise file)."""
    reverberant = _room_only(room)(audio, rng)
    noise_audio = _noise_recording(noise)
    start = int(rng.integers(0, max(1, len(noise_audio) - len(audio))))
    return add_noise_at_snr(reverberant, noise_audio[start : start + len(audio)], ROBUST_SNR_DB)


def robust_items(ravdess: list[Utterance], root: Path) -> list[Item]:
    """RAVDESS test actors, each utterance through one held-out room and one held-out noise (never heard in
    distillation), chosen per utterance."""
    rooms, noises = room_paths(root, "eval"), noise_paths(root, "eval")
    test = [u for u in ravdess if u.split == "test"]
    return [Item(u, room_noise=(str(rooms[i % len(rooms)]), str(noises[(i // len(rooms)) % len(noises)])))
            for i, u in enumerate(test)]


def mask_items(ravdess: list[Utterance]) -> list[Item]:
    """RAVDESS repetition 1 (720 utterances, all 24 actors), clean and through each of the four masks."""
    first_takes = [u for u in ravdess if u.path.name.split("-")[5] == "01"]
    return [Item(u, m) for m in (None,) + MASK_TYPES for u in first_takes]


def system_embedders(runs: Path, ablation: Path | None) -> dict[str, tuple[str, object, int | None]]:
    """name -> (cache key, factory of `audio -> vector`, size in bytes or None for hand-crafted)."""
    systems = {}
    sizes = teacher_sizes()
    for name in TEACHER_NAMES:
        systems[name] = (name, lambda name=name: _teacher(name), sizes.get(name))
    for model, blocks in WHISPER_SYSTEMS.items():
        systems[f"whisper {model}"] = (f"whisper_{model}_b{'-'.join(map(str, blocks))}",
                                       lambda m=model, b=blocks: _whisper(m, b), sizes.get(f"whisper {model}"))
    for model in available_models():
        systems[f"{model} int8"] = int8_system(model)
        _, card = resolve_model(model)
        path = runs / model / "backbone.keras"
        if path.exists():
            systems[f"{model} float"] = (f"{model}_floatvad_{_digest(path)}", lambda m=model, p=path: _float(m, p),
                                         card["params"] * 4)
    for variant in sorted(p for p in (ablation.iterdir() if ablation and ablation.is_dir() else []) if p.is_dir()):
        for path in sorted(variant.glob("*/backbone.keras")):
            model = path.parent.name
            systems[ablation_name(variant.name, model)] = (
                f"{model}_floatvad_{_digest(path)}", lambda m=model, p=path: _float(m, p), None)
    return systems


def int8_system(model: str) -> tuple[str, object, int]:
    _, card = resolve_model(model)
    return f"{model}_int8vad_{card['sha256'][:12]}", lambda: _int8(model), card["bytes"]


def _digest(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()[:12]


def _teacher(name: str):
    from .teachers import TEACHERS

    return TEACHERS[name]().utterance


def _whisper(model: str, blocks: tuple[int, ...]):
    from .whisper import WhisperEncoder

    encoder = WhisperEncoder(model)

    def embed(audio):
        frames = encoder.blocks(audio[: 30 * 16000], blocks)
        return np.concatenate([frames[b].mean(axis=0) for b in blocks])

    return embed


def split_whisper_rows(per_system: dict) -> None:
    """'whisper MODEL' (its blocks side by side) -> one 'whisper MODEL bN' row per block."""
    for model, blocks in WHISPER_SYSTEMS.items():
        joined = per_system.pop(f"whisper {model}", None)
        if joined is None:
            continue
        for i, block in enumerate(blocks):
            per_system[f"whisper {model} b{block}"] = {
                ds: X[:, i * X.shape[1] // len(blocks) : (i + 1) * X.shape[1] // len(blocks)] for ds, X in joined.items()}


def speech_or_all_windows(audio: np.ndarray, window: int, hop: int) -> np.ndarray:
    """The VAD speech windows the live path and `embed` use; the whole clip when the VAD finds no speech
    (a few very short FSDD digits), so every utterance gets an embedding."""
    from ..embed import recording_windows

    windows, _ = recording_windows(audio, window, hop, use_vad=True)
    if not windows:
        return offline_windows(audio, window, hop)
    return np.stack([w.samples for w in windows])


def _int8(model: str):
    from ..runtime import Embedder

    embedder = Embedder(model)
    return lambda audio: np.mean([embedder.embed(w) for w in speech_or_all_windows(audio, embedder.window, embedder.hop)],
                                 axis=0)


def run_layout(model: str, backbone_path: Path):
    """The student layout a distill run trained (its student.json); runs from before 0.3.0 wrote none and
    have the 0.2.0 layout: the shipped size without a speaker branch."""
    import dataclasses

    from .student import SIZES, StudentConfig

    recorded = backbone_path.parent / "student.json"
    if recorded.exists():
        return StudentConfig.from_dict(json.loads(recorded.read_text()))
    return dataclasses.replace(SIZES[model], speaker_blocks=(), shared_blocks=0)


def _float(model: str, path: Path):
    from .distill import log_mels
    from .student import build_backbone

    cfg = run_layout(model, path)
    backbone = build_backbone(cfg)  # rebuilt from code: a saved Lambda layer does not deserialise portably
    backbone.load_weights(path)

    def embed(audio):
        mels = log_mels(speech_or_all_windows(audio, cfg.window_samples, cfg.hop_samples), cfg)[..., None]
        return np.asarray(backbone(mels, training=False)[0]).mean(axis=0)

    return embed


def features(system: tuple, items: list[Item], cache: Path, set_name: str, curves=None, log=print) -> np.ndarray:
    key, factory, _ = system

    def compute():
        log(f"  {key} on {set_name} ({len(items)} utterances)")
        embed = factory()
        return np.stack([embed(item.audio(curves)) for item in items]).astype(np.float32)

    return _cached(cache, f"{set_name}_{key}", compute)


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
        "robustness_rooms_noise_10db": {"accuracy": robust_accuracy,
                                        "ratio_to_clean": robust_accuracy / clean["accuracy"]},
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


def mask_design(items: list[Item]) -> dict[str, np.ndarray]:
    """Row selections for the simulated-mask task. Each training utterance appears clean and through one
    seen mask (chosen per utterance, so classes stay balanced); the held-out mask never enters training."""
    seen = [m for m in MASK_TYPES if m != HELD_OUT_MASK]
    split = np.array([it.utterance.split for it in items])
    mask = np.array([it.mask or "none" for it in items])
    chosen = np.array([seen[int(hashlib.sha1(it.utterance.path.name.encode()).hexdigest(), 16) % len(seen)]
                       for it in items])
    fit_rows = (mask == "none") | (mask == chosen)
    return {
        "label": np.where(mask == "none", "no_mask", "mask"),
        "train": (split == "train") & fit_rows, "val": (split == "val") & fit_rows,
        "test_seen": (split == "test") & fit_rows,
        "test_held_out": (split == "test") & ((mask == "none") | (mask == HELD_OUT_MASK)),
    }


def evaluate_mask(X: np.ndarray, design: dict) -> dict:
    from .probes import fit_probe, scores

    y = design["label"]
    probe = fit_probe(X[design["train"]], y[design["train"]], X[design["val"]], y[design["val"]])
    return {f"{which}": scores(y[design[which]], probe.predict(X[design[which]]))["uar"]
            for which in ("test_seen", "test_held_out")}


def teacher_sizes() -> dict[str, int]:
    import importlib.util

    sizes = {}
    ow = Path(importlib.util.find_spec("openwakeword").origin).parent / "resources" / "models"
    sizes["speech_embedding"] = (ow / "embedding_model.tflite").stat().st_size + (ow / "melspectrogram.tflite").stat().st_size
    rz = Path(importlib.util.find_spec("resemblyzer").origin).parent / "pretrained.pt"
    sizes["resemblyzer"] = rz.stat().st_size
    from .whisper import read_ct2_variables, resolve_model_dir

    for model in WHISPER_SYSTEMS:  # the encoder's weights as shipped (fp16), not the decoder's
        weights = read_ct2_variables(resolve_model_dir(model) / "model.bin")
        sizes[f"whisper {model}"] = int(sum(w.nbytes for w in weights.values()))
    return sizes


def speaker_view(system: str, X: np.ndarray) -> np.ndarray:
    """What a speaker head scores: a student's speaker part (its card's speaker_dims), else everything."""
    from ..speaker import speaker_part

    for model in available_models():
        if system.startswith(model) or f"({model} " in system:
            return speaker_part(X, resolve_model(model)[1].get("speaker_dims"))
    return X


@dataclass
class EvaluationSets:
    """The clean evaluation sets (with RAVDESS through held-out rooms and noise), speechocean762's ages, and
    RAVDESS through simulated masks (empty when not wanted) with the mask curves."""

    data: dict
    ages: dict
    sets: dict
    masked: list
    curves: dict


def evaluation_sets(root: Path, with_masks: bool = True) -> EvaluationSets:
    data = corpus(root)
    sets = {name: [Item(u) for u in rows] for name, rows in data.items()}
    sets["ravdess_robust"] = robust_items(data["ravdess"], root)
    return EvaluationSets(data, speechocean_ages(root), sets, mask_items(data["ravdess"]) if with_masks else [],
                          load_curves(str(curves_path(root))))


def clean_row(name: str, X: dict[str, np.ndarray], ev: EvaluationSets, log=print) -> dict:
    """One system's results on the clean sets (its speaker part for the speaker tasks)."""
    log(f"  probes: {name}")
    return evaluate_clean(X, {ds: speaker_view(name, x) for ds, x in X.items()}, ev.data, ev.ages)


def quality(out: Path, cache: Path, runs: Path, data_root=None, log=print, command: str = "",
            ablation: Path | None = None, with_masks: bool = True) -> dict:
    root = find_data_root(data_root)
    ev = evaluation_sets(root, with_masks)
    sets, masked, curves = ev.sets, ev.masked, ev.curves
    systems = system_embedders(runs, ablation)
    per_system = {name: {ds: features(sys_, items, cache, ds, log=log) for ds, items in sets.items()}
                  for name, sys_ in systems.items()}
    split_whisper_rows(per_system)
    per_system["teachers_concat"] = {ds: np.concatenate([per_system[t][ds] for t in DISTILLATION_TEACHERS], axis=1)
                                     for ds in sets}
    results = {name: clean_row(name, X, ev, log) for name, X in per_system.items()}
    if masked:
        design = mask_design(masked)
        mask_X = {name: features(sys_, masked, cache, "ravdess_masked", curves, log)
                  for name, sys_ in systems.items() if not name.startswith("ablation")}
        mask_X = mask_X_rows(mask_X)
        mask_X["teachers_concat"] = np.concatenate([mask_X[t] for t in DISTILLATION_TEACHERS], axis=1)
        for name, X in mask_X.items():
            results[name]["mask_simulated_uar"] = evaluate_mask(X, design)
    sizes = {name: sys_[2] for name, sys_ in systems.items() if sys_[2] is not None}
    for model in WHISPER_SYSTEMS:
        for block in WHISPER_SYSTEMS[model]:
            sizes[f"whisper {model} b{block}"] = sizes[f"whisper {model}"]
    sizes["teachers_concat"] = sum(sizes[f"whisper {m}"] for m in WHISPER_SYSTEMS) + sizes["resemblyzer"]
    from .emotion_bench import emotion_quality

    emotion, _ = emotion_quality(systems, root, cache, log)
    speakers_open_set = dict(speaker_open_set(cache, root, log), command=command)
    report = {"command": command, "utterances": {k: len(v) for k, v in sets.items()},
              "mask_task": {"utterances": len(masked), "held_out_mask": HELD_OUT_MASK,
                            "note": "simulated: clean speech filtered with measured mask attenuation curves"},
              "robustness": f"RAVDESS test actors through held-out rirs_real rooms + noise_real noise at "
                            f"{ROBUST_SNR_DB:g} dB SNR (files never heard in distillation)",
              "teachers_concat": list(DISTILLATION_TEACHERS),
              "sizes_bytes": sizes, "results": results, "retention": retention(results),
              "seeds": seed_summary(results), "emotion": emotion, "speaker_open_set": speakers_open_set}
    record_in_model_cards(report)
    emotion["command"] = command
    record_emotion_in_model_cards(emotion)
    out.mkdir(parents=True, exist_ok=True)
    write_json(out / "results.json", report)
    (out / "results.md").write_text(markdown_table(report))
    plot(report, out / "size_quality.png")
    return report


def tables_only(tables: str, out: Path, cache: Path, runs: Path, data_root=None, log=print,
                command: str = "", ablation: Path | None = None) -> dict:
    """`bench quality --tables emotion|speaker`: only those tables, written into the existing results.json
    beside the other tables (which a run of the same models measured), and into the model cards. The emotion
    probes include the `ablation` runs, if given (e.g. the student that never heard ASED)."""
    from .emotion_bench import emotion_quality

    path = out / "results.json"
    if not path.exists():
        raise EdgeparaError(f"expected {path} from a full `edgepara bench quality` run to add the {tables} tables "
                            f"to, got none")
    report = json.loads(path.read_text())
    root = find_data_root(data_root)
    if tables == "students":
        report = student_rows(report, cache, runs, root, ablation, log)
        report["students_command"] = command
        record_in_model_cards(report)
        plot(report, out / "size_quality.png")
    elif tables == "emotion":
        report["emotion"], _ = emotion_quality(system_embedders(runs, ablation), root, cache, log)
        report["emotion"]["command"] = command
        record_emotion_in_model_cards(report["emotion"])
    else:
        report["speaker_open_set"] = dict(speaker_open_set(cache, root, log), command=command)
    write_json(path, report)
    (out / "results.md").write_text(markdown_table(report))
    return report


def student_rows(report: dict, cache: Path, runs: Path, root: Path, ablation: Path | None, log=print) -> dict:
    """`--tables students`: the students' rows (int8, float, ablations) recomputed on every set of the full run,
    the teachers' rows (unchanged teachers, same code) kept from it; retention and seeds follow."""
    ev = evaluation_sets(root)
    design = mask_design(ev.masked)
    systems = {name: sys_ for name, sys_ in system_embedders(runs, ablation).items()
               if name.startswith(("edgepara", "ablation"))}
    results = {name: r for name, r in report["results"].items() if not name.startswith(("edgepara", "ablation"))}
    for name, sys_ in systems.items():
        results[name] = clean_row(name, {ds: features(sys_, items, cache, ds, log=log) for ds, items in ev.sets.items()},
                                  ev, log)
        if not name.startswith("ablation"):
            results[name]["mask_simulated_uar"] = evaluate_mask(features(sys_, ev.masked, cache, "ravdess_masked",
                                                                          ev.curves, log), design)
        if sys_[2] is not None:
            report["sizes_bytes"][name] = sys_[2]
    report["results"] = results
    report["retention"], report["seeds"] = retention(results), seed_summary(results)
    return report


def speaker_open_set(cache: Path, root: Path, log=print) -> dict:
    """Each shipped model's open-set identification at its shipped calibration, as the live head decides
    (train/open_set.py: the same sets and draws as the speaker card): the default false-accept rate, turned
    into the cosine bar for each number of people enrolled."""
    from ..speaker import shipped_calibration
    from ..speaker import CONFIDENT_SHARE
    from .open_set import N_ENROLLED, enrollment_table, open_set_table, session_table, speaker_sets

    out = {}
    for model in available_models():
        _, card = resolve_model(model)
        calibration = shipped_calibration(card)
        if isinstance(calibration, float):
            rate, bar = None, (lambda n, fixed=calibration: fixed)
            confident = (lambda n, fixed=calibration: min(1.0, fixed + 0.1))
        else:
            rate, curve = calibration
            bar = (lambda n, rate=rate, curve=curve: curve.cosine_for(rate, n))
            confident = (lambda n, rate=rate, curve=curve: curve.cosine_for(rate * CONFIDENT_SHARE, n))
        windows, speakers, sets = speaker_sets(model, cache, root, log)
        out[model] = {"false_accept": rate, "thresholds": {f"N={n}": round(bar(n), 4) for n in N_ENROLLED},
                      "open_set": open_set_table(card, windows, speakers, sets, root, bar),
                      "by_enrollment_speech": enrollment_table(card, windows, speakers, sets, root, bar),
                      "session": session_table(card, windows, speakers, sets, root, bar, confident)}
    return out


def speaker_markdown(report: dict) -> str:
    lines = ["", "Open-set speaker identification at the shipped false-accept rate (live decision: the cosine bar "
                 "for N people enrolled from the model's impostor curve; mean over random draws of who is enrolled): "
                 "enrolled named right / named wrong / strangers called unknown:", "",
             "| model (false-accept rate) | set | N (cosine bar) | named right | named wrong | strangers unknown |",
             "|---|---|---:|---:|---:|---:|"]
    for model, r in report.items():
        if not isinstance(r, dict):
            continue
        for name, by_n in r["open_set"].items():
            for n, v in by_n.items():
                lines.append(f"| {model} ({r['false_accept']}) | {name} | {n[2:]} ({r['thresholds'][n]:.3f}) | "
                             f"{v['named_right']['mean']:.3f} | {v['named_wrong']['mean']:.3f} | "
                             f"{v['strangers_unknown']['mean']:.3f} |")
    lines += ["", "Against seconds of enrollment speech (N = 4; a profile of 1, 2, 3 or 5 utterances; mean seconds of "
                  "speech per profile): enrolled named right / strangers called unknown:", "",
              "| model | set | utterances | seconds | named right | strangers unknown |", "|---|---|---:|---:|---:|---:|"]
    for model, r in report.items():
        for name, by_k in (r.get("by_enrollment_speech", {}) if isinstance(r, dict) else {}).items():
            for k, v in by_k.items():
                lines.append(f"| {model} | {name} | {k.split('=')[1]} | {v['enroll_seconds']['mean']:.1f} | "
                             f"{v['named_right']['mean']:.3f} | {v['strangers_unknown']['mean']:.3f} |")
    lines += ["", "A long session with and without `--adapt-profiles` (N = 4 enrolled from 3 utterances, then every other "
                  "utterance of the set in random order, decided one after another; second half of the session; mean "
                  "over draws): enrolled named right / strangers called unknown, and utterances that moved a profile:", "",
              "| model | set | fixed profiles | adapted profiles | utterances adapted |", "|---|---|---:|---:|---:|"]
    for model, r in report.items():
        for name, modes in (r.get("session", {}) if isinstance(r, dict) else {}).items():
            fixed, adapted = modes["fixed"], modes["adapted"]
            lines.append(f"| {model} | {name} | {fixed['named_right_second_half']['mean']:.3f} / "
                         f"{fixed['strangers_unknown_second_half']['mean']:.3f} | "
                         f"{adapted['named_right_second_half']['mean']:.3f} / "
                         f"{adapted['strangers_unknown_second_half']['mean']:.3f} | "
                         f"{adapted['adapted_utterances']['mean']:.0f} |")
    return "\n".join(lines) + "\n"


def record_emotion_in_model_cards(emotion: dict) -> None:
    for model in available_models():
        path, card = resolve_model(model)
        probes, live = emotion["probes"].get(f"{model} int8"), emotion["live"].get(model)
        if probes is None or live is None:
            continue
        card["metrics"]["emotion_int8"] = {"probe": probes, "live": live, "command": emotion.get("command")}
        card["metrics"]["targets_emotion"] = against_emotion_targets(model, emotion)
        write_json(path.with_suffix(".json"), card)


# Issue targets for the shipped heads through the live pipeline: (small, tiny)
EMOTION_TARGETS = {
    "loco_live_uar_adaptation_speaker.mean": (0.60, 0.55),
    "shipped_arousal_test_speakers.baved_arabic.uar": (0.65, 0.60),
}


# Issue "Students 0.4.0": the students' own emotion probes (int8; small, tiny). ASED held out of everything is
# the probe on a student distilled without ASED audio (`scripts/ablation.sh without-ased_amharic`, float).
STUDENT_EMOTION_TARGETS = {
    "loco_uar_raw.mean": (0.55, 0.50),
    "loco_uar_speaker_normalised.mean": (0.68, 0.62),
    "ased_4class_uar.raw": (0.94, 0.90),
    "baved_arousal_uar.raw": (0.70, 0.65),
}
ASED_HELD_OUT_TARGET = (0.53, 0.50)


def _target_row(value: float, target: float) -> dict:
    return {"value": value, "target": target, "met": value >= target,
            "missed_by": None if value >= target else round(target - value, 4)}


def _dotted(tree: dict, key: str):
    for part in key.split("."):
        tree = tree[part]
    return tree


def against_emotion_targets(model: str, emotion: dict) -> dict:
    live, pick = emotion["live"][model], (0 if model == "edgepara-small" else 1)
    out = {key: _target_row(_dotted(live, key), targets[pick]) for key, targets in EMOTION_TARGETS.items()}
    probes = emotion["probes"].get(f"{model} int8", {})
    for key, targets in STUDENT_EMOTION_TARGETS.items():
        if key.split(".")[0] in probes:
            out[f"probe.{key}"] = _target_row(_dotted(probes, key), targets[pick])
    held_out = emotion["probes"].get(ablation_name("without-ased_amharic", model))
    if held_out:
        out["probe.ased_held_out_of_everything"] = _target_row(held_out["loco_uar_raw"]["ased_amharic"],
                                                               ASED_HELD_OUT_TARGET[pick])
    certain = [v["certain_accuracy"] for v in live["certain_loco_test_speakers"].values()]
    out["certain_loco_accuracy_min"] = {"value": min(certain), "target": 0.70, "met": min(certain) >= 0.70,
                                        "coverage": {k: v["certain_coverage"]
                                                     for k, v in live["certain_loco_test_speakers"].items()}}
    return out


def mask_X_rows(mask_X: dict) -> dict:
    """The masked set's features with the Whisper systems split into one row per layer."""
    wrapped = {k: {"m": v} for k, v in mask_X.items()}
    split_whisper_rows(wrapped)
    return {k: v["m"] for k, v in wrapped.items()}


# The student targets: result key -> (higher is better, edgepara-small, edgepara-tiny). EER targets are points
# above resemblyzer's EER on the same trials.
TARGETS = {
    "ravdess_emotion.accuracy": (True, 0.70, 0.65),
    "emodb_emotion.accuracy": (True, 0.77, 0.72),
    "zero_shot_ravdess_to_emodb_uar": (True, 0.60, 0.55),
    "ravdess_speaker_id_across_emotions": (True, 0.85, 0.80),
    "ravdess_verification_eer_minus_resemblyzer_points": (False, 2.0, 4.0),
    "speechocean762_children_eer_minus_resemblyzer_points": (False, 2.0, 4.0),
    "speechocean762_adults_eer_minus_resemblyzer_points": (False, 2.0, 4.0),
    "robustness_rooms_noise_10db.ratio_to_clean": (True, 0.90, 0.90),
    "mask_simulated_uar.test_held_out": (True, 0.85, 0.85),
}


def against_targets(model: str, results: dict) -> dict:
    """Each target with the measured int8 value and whether it is met (or by how much it is missed)."""
    r, rz = results[f"{model} int8"], results["resemblyzer"]
    out = {}
    for key, (higher, small, tiny) in TARGETS.items():
        target = small if model == "edgepara-small" else tiny
        if key.endswith("_minus_resemblyzer_points"):
            eer = key.removesuffix("_minus_resemblyzer_points")
            value = round(100 * (r[eer] - rz[eer]), 1)
        else:
            value = round(_value(r, key), 3)
        gap = round(value - target if higher else target - value, 3)
        out[key] = {"value": value, "target": target, "met": gap >= 0, "missed_by": None if gap >= 0 else -gap}
    return out


def record_in_model_cards(report: dict) -> None:
    """Each shipped model's card carries its own benchmark rows and the command that measured them."""
    for model in available_models():
        path, card = resolve_model(model)
        int8, flt = report["results"].get(f"{model} int8"), report["results"].get(f"{model} float")
        if int8 is None:
            continue
        card["metrics"]["quality_int8"] = int8
        if flt is not None:
            card["metrics"]["quality_float"] = flt
        card["metrics"]["retention_vs_teachers_concat"] = report["retention"].get(f"{model} int8")
        if report.get("seeds", {}).get(model):  # the shipped configuration over seeds (float), mean and sd
            card["metrics"]["seeds_float"] = report["seeds"][model]
        if ablations := ablation_summary(report["results"], model):
            card["metrics"]["ablation_float"] = ablations
        if model in ("edgepara-small", "edgepara-tiny"):
            card["metrics"]["targets"] = against_targets(model, report["results"])
        card["metrics"]["quality_command"] = report.get("students_command") or report["command"]
        card["metrics"]["protocol"] = (
            "utterance embedding = mean of the VAD speech windows; standardise + logistic regression, C on "
            "validation speakers; RAVDESS test actors 19-24, EmoDB leave-one-speaker-out, FSDD by take; speaker "
            "tasks on the card's speaker_dims with 3 enrollment utterances (RAVDESS: neutral/calm, identify the "
            "other emotions); speechocean762 test and emospeech_in val speakers; zero-shot = RAVDESS-trained "
            "probe on EmoDB's 4 shared classes; robustness = held-out rooms + noise at 10 dB; mask task simulated")
        write_json(path.with_suffix(".json"), card)


# (column title, result key, metric or None) of the main table
COLUMNS = (
    ("RAVDESS acc", "ravdess_emotion", "accuracy"),
    ("EmoDB LOSO acc", "emodb_emotion", "accuracy"),
    ("zero-shot RAVDESS→EmoDB UAR", "zero_shot_ravdess_to_emodb_uar", None),
    ("rooms+noise acc", "robustness_rooms_noise_10db", "accuracy"),
    ("rooms+noise / clean", "robustness_rooms_noise_10db", "ratio_to_clean"),
    ("mask UAR held-out (sim.)", "mask_simulated_uar", "test_held_out"),
    ("RAVDESS spk-ID across emotions", "ravdess_speaker_id_across_emotions", None),
    ("RAVDESS EER", "ravdess_verification_eer", None),
    ("speechocean762 EER children / adults", ("speechocean762_children_eer", "speechocean762_adults_eer"), None),
    ("speechocean762 spk-ID children / adults", ("speechocean762_children_speaker_id", "speechocean762_adults_speaker_id"), None),
    ("emospeech_in EER / spk-ID", ("emospeech_in_eer", "emospeech_in_speaker_id"), None),
    ("FSDD spk acc", "fsdd_speaker", "accuracy"),
)
HIGHER_IS_BETTER = ("ravdess_emotion.accuracy", "ravdess_emotion.uar", "emodb_emotion.accuracy",
                    "zero_shot_ravdess_to_emodb_uar", "robustness_rooms_noise_10db.accuracy",
                    "mask_simulated_uar.test_held_out", "ravdess_speaker_id_across_emotions",
                    "speechocean762_adults_speaker_id", "speechocean762_children_speaker_id",
                    "emospeech_in_speaker_id", "fsdd_speaker.accuracy")
EER_KEYS = ("ravdess_verification_eer", "speechocean762_children_eer", "speechocean762_adults_eer", "emospeech_in_eer")


def _value(r: dict, dotted: str):
    key, _, metric = dotted.partition(".")
    value = r.get(key)
    return value.get(metric) if isinstance(value, dict) and metric else (None if isinstance(value, dict) else value)


def retention(results: dict) -> dict:
    """Student score / concatenated-teacher score for each higher-is-better task; for each EER, points above
    resemblyzer (the speaker teacher; lower EER is better)."""
    ref, rz = results["teachers_concat"], results["resemblyzer"]
    out = {}
    for system, r in results.items():
        if "edgepara" not in system:
            continue
        row = {k: round(_value(r, k) / _value(ref, k), 3) for k in HIGHER_IS_BETTER
               if _value(r, k) is not None and _value(ref, k)}
        row.update({f"{k}_minus_resemblyzer_points": round(100 * (r[k] - rz[k]), 1) for k in EER_KEYS})
        out[system] = row
    return out


def _cell(r: dict, key, metric) -> str:
    keys = key if isinstance(key, tuple) else (key,)
    values = [_value(r, f"{k}.{metric}" if metric else k) for k in keys]
    return " / ".join("-" if v is None else f"{v:.3f}" for v in values)


SEED_VARIANT = re.compile(r"seed-(\d+)")  # `scripts/ablation.sh seed-N`: the shipped configuration, seed N
SEED_METRICS = HIGHER_IS_BETTER + ("robustness_rooms_noise_10db.ratio_to_clean",) + EER_KEYS


def ablation_name(variant: str, model: str) -> str:
    """The benchmark's row for a `scripts/ablation.sh` run (float)."""
    return f"ablation {variant} ({model} float)"


def ablation_runs(results: dict, model: str) -> dict[str, dict]:
    """variant -> results, for the ablation rows of one model (named by `ablation_name`)."""
    row = re.compile(re.escape(ablation_name("VARIANT", model)).replace("VARIANT", "(.+)"))
    return {match.group(1): r for name, r in results.items() if (match := row.fullmatch(name))}


def seed_summary(results: dict) -> dict:
    """Mean and sd (n - 1) over seeds of each model's shipped configuration, float: seed 0 is the shipped run
    (`MODEL float`), the others are `scripts/ablation.sh seed-N` runs."""
    out = {}
    for model in available_models():
        runs = {0: results.get(f"{model} float")}
        for variant, r in ablation_runs(results, model).items():
            if seed := SEED_VARIANT.fullmatch(variant):
                runs[int(seed.group(1))] = r
        runs = {seed: r for seed, r in sorted(runs.items()) if r is not None}
        if len(runs) < 2:
            continue
        summary = {"seeds": list(runs)}
        for key in SEED_METRICS:
            values = [_value(r, key) for r in runs.values()]
            if all(v is not None for v in values):
                summary[key] = {"mean": round(float(np.mean(values)), 4), "sd": round(float(np.std(values, ddof=1)), 4),
                                "values": [round(float(v), 4) for v in values]}
        out[model] = summary
    return out


def ablation_summary(results: dict, model: str) -> dict:
    """The `scripts/ablation.sh` variants of one model other than its seeds (float, seed 0), on the seed metrics:
    what each loss, teacher or schedule change did, for the card."""
    return {variant: {key: round(float(v), 4) for key in SEED_METRICS if (v := _value(r, key)) is not None}
            for variant, r in ablation_runs(results, model).items() if not SEED_VARIANT.fullmatch(variant)}


def markdown_table(report: dict) -> str:
    lines = ["| system | size | " + " | ".join(c[0] for c in COLUMNS) + " |",
             "|---|---:|" + "---:|" * len(COLUMNS)]
    for system, r in report["results"].items():
        size = report["sizes_bytes"].get(system)
        size_s = ("hand-crafted" if system == "egemaps" else "" if size is None
                  else f"{size / 1e6:.1f} MB" if size > 1e6 else f"{size / 1e3:.0f} KB")
        lines.append(f"| {system} | {size_s} | " + " | ".join(_cell(r, k, m) for _, k, m in COLUMNS) + " |")
    names = list(HIGHER_IS_BETTER) + [f"{k}_minus_resemblyzer_points" for k in EER_KEYS]
    lines += ["", f"Retention (student / teachers concatenated = {' + '.join(report['teachers_concat'])}; "
                  "EER: points above resemblyzer):", "",
              "| system | " + " | ".join(names) + " |", "|---|" + "---:|" * len(names)]
    for system, r in report["retention"].items():
        lines.append(f"| {system} | " + " | ".join(str(r.get(n, "-")) for n in names) + " |")
    if report.get("emotion"):
        from .emotion_bench import markdown as emotion_markdown

        lines.append(emotion_markdown(report["emotion"]))
    if report.get("speaker_open_set"):
        lines.append(speaker_markdown(report["speaker_open_set"]))
    if report.get("seeds"):
        lines += ["", "Seeds (shipped configuration, float; mean ± sd over the seeds listed):", "",
                  "| model | seeds | " + " | ".join(SEED_METRICS) + " |", "|---|---|" + "---:|" * len(SEED_METRICS)]
        for model, summary in report["seeds"].items():
            cells = [f"{summary[k]['mean']:.3f} ± {summary[k]['sd']:.3f}" if k in summary else "-" for k in SEED_METRICS]
            lines.append(f"| {model} | {', '.join(map(str, summary['seeds']))} | " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n"


def plot(report: dict, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, 3, figsize=(13, 4))
    for ax, (task, metric) in zip(axes, (("ravdess_emotion", "accuracy"), ("emodb_emotion", "accuracy"),
                                         ("fsdd_speaker", "accuracy"))):
        for system, r in report["results"].items():
            size = report["sizes_bytes"].get(system)
            if system == "egemaps":
                ax.axhline(r[task][metric], ls="--", color="grey", lw=1)
                ax.text(2e4, r[task][metric], " eGeMAPS", va="bottom", fontsize=8, color="grey")
                continue
            if size is None:
                continue
            ax.scatter(size, r[task][metric], color="tab:red" if "edgepara" in system else "tab:blue")
            ax.annotate(system, (size, r[task][metric]), fontsize=7, xytext=(3, 3), textcoords="offset points")
        ax.set_xscale("log")
        ax.set_xlabel("model size (bytes)")
        ax.set_title(f"{task} {metric}")
    axes[0].set_ylabel("score")
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def _median_ms(fn, repeats: int, warmup: int = 5) -> float:
    for _ in range(warmup):
        fn()
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return float(np.median(times) * 1000)


# openWakeWord's README: "a single core of a Raspberry Pi 3 can run 15-20 openWakeWord models simultaneously in
# real-time". Its shared features (melspectrogram every 80 ms + one speech_embedding per 80 ms) plus those heads
# therefore cost at most one Pi 3 core-second per second of audio.
OWW_PI3_CORE_SECONDS_PER_AUDIO_SECOND_AT_MOST = 1.0
OWW_STEP_S = 0.08
FRILL_PIXEL1_MS_PER_EMBEDDING = 8.5  # published (FRILL paper), for comparison only


def pi3_estimate(timings: dict, repeats: int) -> dict:
    """An ESTIMATE, not a measurement: the x86/Pi 3 slowdown is bounded by openWakeWord's published Pi 3 figure
    and its own models timed here with the same interpreter, one thread; applied to our students' measured
    time per window it bounds their Pi 3 cost. Assumes our int8 ops slow down no more than its float ones."""
    import importlib.util

    from ..runtime import _import_interpreter
    from ..tflite_model import multiply_accumulates

    models = Path(importlib.util.find_spec("openwakeword").origin).parent / "resources" / "models"
    interpreter_cls = _import_interpreter()[1]
    mel = interpreter_cls(model_path=str(models / "melspectrogram.tflite"), num_threads=1)
    mel.resize_tensor_input(mel.get_input_details()[0]["index"], [1, 1280 + 480])  # 80 ms + the STFT overlap
    mel.allocate_tensors()
    emb = interpreter_cls(model_path=str(models / "embedding_model.tflite"), num_threads=1)
    emb.allocate_tensors()
    rng = np.random.default_rng(0)
    for it in (mel, emb):
        detail = it.get_input_details()[0]
        it.set_tensor(detail["index"], rng.standard_normal(detail["shape"]).astype(np.float32))
    step_ms = _median_ms(mel.invoke, repeats) + _median_ms(emb.invoke, repeats)
    oww_ms_per_audio_s = step_ms / OWW_STEP_S
    slowdown = 1000.0 * OWW_PI3_CORE_SECONDS_PER_AUDIO_SECOND_AT_MOST / oww_ms_per_audio_s
    students = {}
    for model in available_models():
        path, card = resolve_model(model)
        windows_per_s = card["sample_rate"] / card["hop_samples"]
        x86_ms_per_s = timings[model] * windows_per_s
        students[model] = {
            "macs_per_window": multiply_accumulates(path), "windows_per_speech_second": windows_per_s,
            "x86_ms_per_speech_second": round(x86_ms_per_s, 3),
            "percent_of_one_pi3_core_at_most": round(x86_ms_per_s * slowdown / 10.0, 1)}
    return {"label": "ESTIMATE from openWakeWord's published Pi 3 figure, not measured on a Pi",
            "openwakeword_x86_ms_per_audio_second": round(oww_ms_per_audio_s, 3),
            "openwakeword_embedding_macs_per_step": multiply_accumulates(models / "embedding_model.tflite"),
            "pi3_over_x86_slowdown_at_most": round(slowdown, 1), "students": students,
            "published_for_comparison": {"frill_pixel1_ms_per_embedding": FRILL_PIXEL1_MS_PER_EMBEDDING}}


def speed(out: Path | None = None, repeats: int = 200, log=print, command: str = "") -> dict:
    """One 1 s window, one thread, after warm-up: students (frontend + int8 model) vs the teachers. The
    Whisper-base teacher runs as far as the deepest block the students learn from, on the same 1 s window (so
    per second of audio, both at 1 s windows every 0.5 s, the ratio is the same as per window)."""
    from ..runtime import Embedder, interpreter_backend
    from .teachers import EGeMAPSTeacher, ResemblyzerTeacher, SpeechEmbeddingTeacher
    from .whisper import WhisperEncoder

    rng = np.random.default_rng(0)
    window = (rng.standard_normal(16000) * 3000).astype(np.int16)
    timings = {}
    se, rz, eg = SpeechEmbeddingTeacher(), ResemblyzerTeacher(), EGeMAPSTeacher()
    timings["speech_embedding"] = _median_ms(lambda: se.frames(window, step=8), max(repeats // 4, 20))
    timings["resemblyzer"] = _median_ms(lambda: rz.utterance(window), max(repeats // 4, 20))
    timings["egemaps"] = _median_ms(lambda: eg.utterance(window), max(repeats // 10, 10))
    base_block = max(b for m, b in WHISPER_LAYERS if m == "base")
    whisper_base, whisper_row = WhisperEncoder("base", threads=1), f"whisper base to block {base_block}"
    timings[whisper_row] = _median_ms(lambda: whisper_base.blocks(window, (base_block,)), max(repeats // 10, 10))
    for model in available_models():
        embedder = Embedder(model, threads=1)
        timings[model] = _median_ms(lambda: embedder.embed(window), repeats)
        timings[f"{model} frontend"] = _median_ms(lambda: embedder.features(window), repeats)
    reference = timings["speech_embedding"] + timings["resemblyzer"]
    report = {"command": command, "interpreter": interpreter_backend(), "window_s": 1.0, "threads": 1,
              "median_ms": {k: round(v, 4) for k, v in timings.items()},
              "speedup_vs_speech_embedding_plus_resemblyzer": {
                  m: round(reference / timings[m], 1) for m in available_models()},
              f"speedup_vs_whisper_base_to_block_{base_block}": {
                  m: round(timings[whisper_row] / timings[m], 1) for m in available_models()},
              "raspberry_pi_3_estimate": pi3_estimate(timings, repeats)}
    for k, v in report["median_ms"].items():
        log(f"  {k:32s} {v:9.3f} ms")
    for m, r in report["speedup_vs_speech_embedding_plus_resemblyzer"].items():
        log(f"  {m}: {r}x cheaper than speech_embedding + resemblyzer, "
            f"{report[f'speedup_vs_whisper_base_to_block_{base_block}'][m]}x than Whisper base to block {base_block}")
    pi = report["raspberry_pi_3_estimate"]
    for m, e in pi["students"].items():
        log(f"  ESTIMATE {m} on one Pi 3 core: at most {e['percent_of_one_pi3_core_at_most']}% while speech goes on "
            f"({e['macs_per_window'] / 1e6:.1f} M MACs per window)")
    if out:
        out.mkdir(parents=True, exist_ok=True)
        write_json(out / "speed.json", report)
    return report
