"""Open-set speaker identification as the live speaker head decides it: N people enrolled (3 utterances each),
everyone else a stranger. Each utterance's score against a profile is the cosine of its voice (the direction
of the sum of its speech windows' unit speaker parts, what the final prediction decides on) to the profile's
centroid; the best profile names the speaker when its score reaches the threshold, else "unknown". Measured
over many random draws of who is enrolled, so that a threshold is judged by what it does with 1, 4 or 10
profiles, not one verification pair."""
from __future__ import annotations

import numpy as np

N_ENROLLED = (1, 4, 10)
ENROLL_UTTERANCES = (1, 2, 3, 5)  # profile sizes for the accuracy-against-enrollment-speech rows (N = 4)
DRAWS = 200
TARGET_STRANGERS_UNKNOWN = 0.97  # on validation speakers: a stranger named as someone is the costly error
# the impostor curve's single-profile false-accept rates (a rate of 0.001 with 10 profiles needs 1e-4 each)
CURVE_RATES = np.geomspace(1e-4, 0.5, 40)


def _unit(x: np.ndarray) -> np.ndarray:
    return x / (np.linalg.norm(x, axis=-1, keepdims=True) + 1e-12)


def unit_embeddings(windows: list[np.ndarray], speaker_dims) -> tuple[np.ndarray, np.ndarray]:
    """(unit utterance embeddings as `enroll` stores them: whole vectors, windows averaged; each utterance's
    voice as the live head's final scores it: the direction of the sum of its windows' unit speaker parts)."""
    from ..speaker import speaker_part

    utterances = _unit(np.stack([w.mean(axis=0) for w in windows]))
    return utterances, _unit(np.stack([_unit(speaker_part(w, speaker_dims)).sum(axis=0) for w in windows]))


def profile_centroid(unit_utterances: np.ndarray, idx, speaker_dims) -> np.ndarray:
    """A profile as `enroll` makes it from the utterances `idx` (the mean of their unit embeddings), as the
    speaker head scores it: its speaker part, unit length."""
    return speaker_part_unit(unit_utterances[idx].mean(axis=0), speaker_dims)


def speech_seconds(n_windows: int, hop_s: float = 0.5) -> float:
    """Seconds of speech behind n windows of 1 s every hop_s: an estimate from the cached windows (`enroll`
    reports the VAD's own speech seconds, which these windows were cut from)."""
    return (n_windows - 1) * hop_s + 1.0 if n_windows else 0.0


def draw_decisions(windows: list[np.ndarray], speakers: np.ndarray, speaker_dims, n_enrolled: int,
                   draws: int = DRAWS, seed: int = 0, enroll_from: np.ndarray | None = None,
                   candidates: np.ndarray | None = None, enroll_utterances: int = 3) -> list[dict]:
    """For each draw: the best profile's score and whether it is the right person, for every utterance that was
    not used to enroll ("stranger" rows belong to no profile). `enroll_from` limits the enrollment utterances
    (e.g. RAVDESS's neutral/calm ones, so the others are queried across emotions); `candidates` the speakers
    who may be enrolled (e.g. one corpus, with another's speakers as the strangers); `enroll_utterances` how
    many utterances make a profile (each draw also records the profiles' mean seconds of speech)."""
    rng = np.random.default_rng(seed)
    utterances, voices = unit_embeddings(windows, speaker_dims)
    names = np.unique(speakers) if candidates is None else np.asarray(candidates)
    eligible = np.ones(len(speakers), bool) if enroll_from is None else np.asarray(enroll_from, bool)
    out = []
    for _ in range(draws):
        enrolled, enrollment, used = _draw_enrollment(rng, names, speakers, eligible, n_enrolled, enroll_utterances)
        centroids = [profile_centroid(utterances, idx, speaker_dims) for idx in enrollment]
        seconds = [sum(speech_seconds(len(windows[i])) for i in idx) for idx in enrollment]
        C = np.stack(centroids)
        scores = voices @ C.T  # (utterances, profiles)
        query = ~used
        best = scores[query].argmax(axis=1)
        out.append({"score": scores[query, best], "named": enrolled[best], "truth": speakers[query],
                    "enrolled": np.isin(speakers[query], enrolled), "enroll_seconds": float(np.mean(seconds))})
    return out


def _draw_enrollment(rng, names: np.ndarray, speakers: np.ndarray, eligible: np.ndarray, n_enrolled: int,
                     enroll_utterances: int) -> tuple[np.ndarray, list[np.ndarray], np.ndarray]:
    """Who is enrolled (n_enrolled of `names`, always leaving one speaker a stranger), the utterances that enroll
    each (from the `eligible` ones where there are enough), and the mask of all utterances used to enroll."""
    enrolled = rng.choice(names, size=min(n_enrolled, len(np.unique(speakers)) - 1, len(names)), replace=False)
    enrollment, used = [], np.zeros(len(speakers), bool)
    for s in enrolled:
        pool = np.flatnonzero((speakers == s) & eligible)
        pool = pool if len(pool) >= enroll_utterances else np.flatnonzero(speakers == s)
        own = int(np.sum(speakers == s))  # keep at least one of the speaker's utterances to query
        idx = rng.choice(pool, min(enroll_utterances, len(pool), own - 1), replace=False)
        used[idx] = True
        enrollment.append(idx)
    return enrolled, enrollment, used


def rates(decisions: list[dict], threshold: float) -> dict:
    """Mean and sd over draws: enrolled speakers' utterances named right / named wrong / called unknown, and
    strangers' utterances called unknown."""
    per_draw = {"named_right": [], "named_wrong": [], "enrolled_unknown": [], "strangers_unknown": []}
    for d in decisions:
        accepted = d["score"] >= threshold
        right = accepted & (d["named"] == d["truth"])
        e, s = d["enrolled"], ~d["enrolled"]
        if e.any():
            per_draw["named_right"].append(right[e].mean())
            per_draw["named_wrong"].append((accepted & ~right)[e].mean())
            per_draw["enrolled_unknown"].append((~accepted)[e].mean())
        if s.any():
            per_draw["strangers_unknown"].append((~accepted)[s].mean())
    per_draw["enroll_seconds"] = [d["enroll_seconds"] for d in decisions if "enroll_seconds" in d]
    return {k: {"mean": round(float(np.mean(v)), 4), "sd": round(float(np.std(v)), 4)}
            for k, v in per_draw.items() if v}


def impostor_curve(windows: list[np.ndarray], speakers: np.ndarray, speaker_dims, draws: int = 400) -> dict:
    """The single-profile impostor curve the speaker head calibrates with: for each rate in CURVE_RATES, the
    cosine that strangers' utterances reach against one enrolled profile that often (profiles of 3 utterances,
    `draws` random draws, every other speaker's utterances as the strangers)."""
    decisions = draw_decisions(windows, speakers, speaker_dims, 1, draws=draws)
    impostors = np.concatenate([d["score"][~d["enrolled"]] for d in decisions])
    cosines = np.quantile(impostors, 1.0 - CURVE_RATES)
    return {"false_accept": [float(f"{r:.6g}") for r in CURVE_RATES],
            "cosine": [round(float(c), 4) for c in np.minimum.accumulate(cosines)], "impostor_scores": len(impostors)}


def speaker_sets(model: str, cache, root, log=print) -> tuple[dict, dict, dict]:
    """The speaker sets, as (windows, speakers, rows) per set: calibration (RAVDESS 17-18 + speechocean762 val
    speakers), RAVDESS test actors, speechocean762 test speakers, emospeech_in val users with >= 4 utterances."""
    from .data import load_manifest
    from .heads import window_embeddings

    ravdess, speechocean = load_manifest("ravdess", root), load_manifest("speechocean762", root)
    emospeech = [u for u in load_manifest("emospeech_in", root) if u.split == "val" and u.label]
    counts = {}
    for u in emospeech:
        counts[u.speaker] = counts.get(u.speaker, 0) + 1
    sets = {"calibration": [u for u in ravdess if u.split == "val"] + [u for u in speechocean if u.split == "val"],
            "ravdess_test": [u for u in ravdess if u.split == "test"],
            "speechocean762_test": [u for u in speechocean if u.split == "test"],
            "emospeech_in_val": [u for u in emospeech if counts[u.speaker] >= 4]}  # 3 to enroll, >= 1 to query
    windows = {name: window_embeddings(model, rows, cache, name, log) for name, rows in sets.items()}
    speakers = {name: np.array([f"{u.dataset}:{u.speaker}" for u in rows]) for name, rows in sets.items()}
    return windows, speakers, sets


def _groups(windows: dict, speakers: dict, sets: dict, root) -> dict:
    """name -> (windows, speakers, rows enrollment may use): RAVDESS test actors enrolled from neutral/calm and
    queried across emotions, speechocean762 test children and adults apart, emospeech_in's phones."""
    from .bench_sets import speechocean_ages

    ages = speechocean_ages(root)
    neutral = np.array([u.label in ("neutral", "calm") for u in sets["ravdess_test"]])
    adult = np.array([ages[u.speaker] >= 18 for u in sets["speechocean762_test"]])

    def part(name, keep):
        return [w for w, k in zip(windows[name], keep) if k], speakers[name][keep], None

    return {"ravdess_test_across_emotions": (windows["ravdess_test"], speakers["ravdess_test"], neutral),
            "speechocean762_test_children": part("speechocean762_test", ~adult),
            "speechocean762_test_adults": part("speechocean762_test", adult),
            "emospeech_in_val_phones": (windows["emospeech_in_val"], speakers["emospeech_in_val"], None)}


def enrollment_table(model_card: dict, windows: dict, speakers: dict, sets: dict, root, bar) -> dict:
    """How much to record: the open-set rates at N = 4 with profiles of 1, 2, 3 (the default) and 5 utterances,
    with the profiles' mean seconds of speech (emospeech_in's users have too few utterances for it). `bar(N)` is
    the head's cosine bar with N people enrolled."""
    dims = model_card.get("speaker_dims")
    return {name: {f"utterances={k}": rates(draw_decisions(w, spk, dims, 4, enroll_from=enroll_from,
                                                           enroll_utterances=k), bar(4))
                   for k in ENROLL_UTTERANCES}
            for name, (w, spk, enroll_from) in _groups(windows, speakers, sets, root).items()
            if name != "emospeech_in_val_phones"}


def open_set_table(model_card: dict, windows: dict, speakers: dict, sets: dict, root, bar) -> dict:
    """Open-set rates at the head's cosine bar `bar(N)` for N in N_ENROLLED: RAVDESS test actors (enrolled from neutral/calm,
    queried across emotions), speechocean762 test children and adults, emospeech_in phones, and speechocean762
    speakers enrolled with RAVDESS actors as the strangers."""
    dims = model_card.get("speaker_dims")
    groups = _groups(windows, speakers, sets, root)
    table = {name: {f"N={n}": rates(draw_decisions(w, spk, dims, n, enroll_from=enroll_from), bar(n))
                    for n in N_ENROLLED if n < len(np.unique(spk))}
             for name, (w, spk, enroll_from) in groups.items()}
    cross_w = windows["speechocean762_test"] + windows["ravdess_test"]
    cross_spk = np.concatenate([speakers["speechocean762_test"], speakers["ravdess_test"]])
    table["enrolled_speechocean762_strangers_ravdess"] = {
        f"N={n}": rates(draw_decisions(cross_w, cross_spk, dims, n,
                                       candidates=np.unique(speakers["speechocean762_test"])), bar(n))
        for n in N_ENROLLED}
    return table


SESSION_DRAWS = 50


def session_rates(windows: list[np.ndarray], speakers: np.ndarray, speaker_dims, bar: float, confident_bar: float,
                  adapt: bool, n_enrolled: int = 4, draws: int = SESSION_DRAWS, seed: int = 0,
                  enroll_from: np.ndarray | None = None) -> dict:
    """A long session as `listen --adapt-profiles` lives it: N people enrolled (3 utterances each), then every
    other utterance of the set, enrolled people's and strangers', in random order, decided one after another
    at `bar`; with `adapt`, each utterance named at or above `confident_bar` moves the named profile as the live
    head does (profiles.adapted_centroid). Named right and strangers unknown over the whole session and over its
    second half (where adaptation has had time to act), mean and sd over draws."""
    from ..profiles import adapted_centroid

    rng = np.random.default_rng(seed)
    utterances, voices = unit_embeddings(windows, speaker_dims)
    names = np.unique(speakers)
    eligible = np.ones(len(speakers), bool) if enroll_from is None else np.asarray(enroll_from, bool)
    per_draw = {k: [] for k in ("named_right", "strangers_unknown", "named_right_second_half",
                                "strangers_unknown_second_half", "adapted_utterances")}
    for _ in range(draws):
        enrolled, enrollment, used = _draw_enrollment(rng, names, speakers, eligible, n_enrolled, 3)
        whole = np.stack([utterances[idx].mean(axis=0) for idx in enrollment])  # as enroll stores it: not unit
        anchors = whole.copy()
        part = speaker_part_unit(whole, speaker_dims)  # what the head scores; a row changes when its profile moves
        order = rng.permutation(np.flatnonzero(~used))
        right, stranger_out, adapted = [], [], 0
        for i in order:
            scores = part @ voices[i]
            best = int(np.argmax(scores))
            named = scores[best] >= bar
            if speakers[i] in enrolled:
                right.append(named and enrolled[best] == speakers[i])
            else:
                stranger_out.append(not named)
            if adapt and named and scores[best] >= confident_bar:
                new = adapted_centroid(whole[best], anchors[best], utterances[i], speaker_dims)
                if new is not None:
                    whole[best], adapted = new, adapted + 1
                    part[best] = speaker_part_unit(new, speaker_dims)
        half_r, half_s = len(right) // 2, len(stranger_out) // 2
        per_draw["named_right"].append(np.mean(right))
        per_draw["strangers_unknown"].append(np.mean(stranger_out))
        per_draw["named_right_second_half"].append(np.mean(right[half_r:]))
        per_draw["strangers_unknown_second_half"].append(np.mean(stranger_out[half_s:]))
        per_draw["adapted_utterances"].append(adapted)
    return {k: {"mean": round(float(np.mean(v)), 4), "sd": round(float(np.std(v)), 4)} for k, v in per_draw.items()}


def speaker_part_unit(centroids: np.ndarray, speaker_dims) -> np.ndarray:
    from ..speaker import speaker_part

    return _unit(speaker_part(centroids, speaker_dims))


def session_table(model_card: dict, windows: dict, speakers: dict, sets: dict, root, bar, confident_bar) -> dict:
    """Accuracy over a long session with and without `--adapt-profiles`, N = 4, on each speaker group."""
    dims = model_card.get("speaker_dims")
    return {name: {mode: session_rates(w, spk, dims, bar(4), confident_bar(4), mode == "adapted", enroll_from=enroll_from)
                   for mode in ("fixed", "adapted")}
            for name, (w, spk, enroll_from) in _groups(windows, speakers, sets, root).items()}
