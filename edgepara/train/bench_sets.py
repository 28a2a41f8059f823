"""What `bench quality` measures on: the evaluation corpora and speechocean762's ages, RAVDESS through held-out
rooms and noise, and RAVDESS through simulated masks."""
from __future__ import annotations

import csv
import hashlib
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

import numpy as np

from ..audio import read_audio
from ..errors import EdgeparaError
from .augment import Corruptor, add_noise_at_snr
from .data import Utterance, load_manifest, noise_paths, read_manifest_rows, room_paths
from .masks import MASK_TYPES, apply_mask, curves_path, load_curves


def corpus(root: Path) -> dict[str, list]:
    """Every evaluation set: the emotion/speaker corpora, and the held-out speakers of the newer sets."""
    data = {name: load_manifest(name, root) for name in ("ravdess", "emodb", "fsdd")}
    data["speechocean762"] = [u for u in load_manifest("speechocean762", root) if u.split == "test"]
    emospeech = [u for u in load_manifest("emospeech_in", root) if u.split == "val"]
    counts = {s: sum(u.speaker == s for u in emospeech) for s in {u.speaker for u in emospeech}}
    data["emospeech_in"] = [u for u in emospeech if counts[u.speaker] >= 4]  # 3 to enroll, >= 1 to verify
    return data


def speechocean_ages(root: Path) -> dict[str, int]:
    rows = read_manifest_rows("speechocean762", root, columns=("speaker", "age"))
    try:
        return {r["speaker"]: int(r["age"]) for r in rows}
    except ValueError as err:
        raise EdgeparaError(f"expected whole-number ages in {root / 'speechocean762' / 'manifest.csv'}, got {err}") \
            from None


ROBUST_SNR_DB = 10.0


@dataclass(frozen=True)
class Item:
    """One utterance as a system hears it: clean, or through a simulated mask (seeded per utterance)."""

    utterance: Utterance
    mask: str | None = None
    room_noise: tuple[str, str] | None = None  # (room file, noise file): the robustness set, heads' room copies
    snr_db: float = ROBUST_SNR_DB  # the noise's level with room_noise

    def audio(self, curves: dict | None = None) -> np.ndarray:
        audio = read_audio(self.utterance.path)
        if self.room_noise is not None:
            seed = int(hashlib.sha1(f"{self.utterance.path.name}|{self.room_noise}".encode()).hexdigest()[:8], 16)
            return through_room_and_noise(audio, *self.room_noise, np.random.default_rng(seed), self.snr_db)
        if self.mask is None:
            return audio
        seed = int(hashlib.sha1(f"{self.utterance.path.name}|{self.mask}".encode()).hexdigest()[:8], 16)
        return apply_mask(audio, *curves[self.mask], rng=np.random.default_rng(seed))



@lru_cache(maxsize=16)
def _room_only(room: str) -> Corruptor:
    return Corruptor([], [room], p_room=1.0, p_noise=0.0, p_codec=0.0, gain_db=(0.0, 0.0))


@lru_cache(maxsize=16)
def _noise_recording(noise: str) -> np.ndarray:
    return read_audio(noise)


def through_room_and_noise(audio: np.ndarray, room: str, noise: str, rng: np.random.Generator,
                           snr_db: float = ROBUST_SNR_DB) -> np.ndarray:
    """A measured room response, then real noise at `snr_db` (a random stretch of the noise file)."""
    reverberant = _room_only(room)(audio, rng)
    noise_audio = _noise_recording(noise)
    start = int(rng.integers(0, max(1, len(noise_audio) - len(audio))))
    return add_noise_at_snr(reverberant, noise_audio[start : start + len(audio)], snr_db)


TRAIN_SNR_DB = (0.0, 20.0)  # the heads' room copies: an SNR drawn per utterance, not the test's 10 dB


def room_noise_items(utterances: list[Utterance], root: Path, part: str = "eval") -> list[Item]:
    """Each utterance through one measured room and one real noise. "eval": the held-out third of each (never
    heard in distillation or by a head), taken in turn, at 10 dB SNR; "train": the rest, drawn per utterance,
    at an SNR drawn from TRAIN_SNR_DB (the room copies the shipped emotion heads are fitted on)."""
    rooms, noises = room_paths(root, part), noise_paths(root, part)
    for name, listed in (("rirs_real", rooms), ("noise_real", noises)):
        if not listed:  # every third file listed is held out: the manifest lists too few
            raise EdgeparaError(f"expected recordings listed in {root / name / 'manifest.csv'} (a third of them "
                                "held out for the robustness set), got none" + (" for training" * (part == "train")))
    if part == "eval":
        return [Item(u, room_noise=(str(rooms[i % len(rooms)]), str(noises[(i // len(rooms)) % len(noises)])))
                for i, u in enumerate(utterances)]
    items = []
    for u in utterances:
        rng = np.random.default_rng(int(hashlib.sha1(f"{u.path.name}|train rooms".encode()).hexdigest()[:8], 16))
        items.append(Item(u, room_noise=(str(rooms[rng.integers(len(rooms))]), str(noises[rng.integers(len(noises))])),
                          snr_db=round(float(rng.uniform(*TRAIN_SNR_DB)), 1)))
    return items


def robust_items(ravdess: list[Utterance], root: Path) -> list[Item]:
    """RAVDESS test actors, each utterance through one held-out room and one held-out noise (never heard in
    distillation), chosen per utterance."""
    return room_noise_items([u for u in ravdess if u.split == "test"], root, "eval")


def mask_items(ravdess: list[Utterance]) -> list[Item]:
    """RAVDESS repetition 1 (720 utterances, all 24 actors), clean and through each of the four masks."""
    first_takes = [u for u in ravdess if u.path.name.split("-")[5] == "01"]
    return [Item(u, m) for m in (None,) + MASK_TYPES for u in first_takes]


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
                          mask_curves(root) if with_masks else {})


def mask_curves(root: Path) -> dict:
    """masks/curves.csv with a curve for every mask type, read before any embedding: one line naming the file
    when it is missing or unreadable (not an error deep in the masked set's embedding)."""
    path = curves_path(root)
    try:
        curves = load_curves(str(path))
    except FileNotFoundError:
        raise EdgeparaError(f"expected the mask attenuation curves at {path} (see ../shared/data/README), got no "
                            f"such file") from None
    except (OSError, UnicodeDecodeError, KeyError, ValueError, csv.Error) as err:
        raise EdgeparaError(f"expected a CSV with columns mask_type,freq_hz,attenuation_db (numbers) at {path}, "
                            f"got {type(err).__name__}: {err}") from None
    missing = [m for m in MASK_TYPES if m not in curves]
    if missing:
        raise EdgeparaError(f"expected a curve for each of {', '.join(MASK_TYPES)} in {path}, got none for "
                            f"{', '.join(missing)}")
    return curves
