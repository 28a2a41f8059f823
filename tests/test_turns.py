"""The turn-taking benchmark's own parts on generated events: the script always changes speaker, and utterances
are scored against the turn they overlap most."""
import numpy as np

from edgepara.train.turns import SPEAKERS, TURNS_EACH, _score, _script
from edgepara.types import Prediction, SpeakerChange, SpeechEnd, SpeechStart


def test_a_script_gives_every_speaker_their_turns_and_never_the_same_speaker_twice_in_a_row():
    by_speaker = {f"p{i}": [f"p{i}-{j}" for j in range(10)] for i in range(6)}
    for seed in range(20):
        names, enroll_rows, order = _script(np.random.default_rng(seed), by_speaker)
        assert len(names) == SPEAKERS and len(order) == SPEAKERS * TURNS_EACH
        assert all(a[0] != b[0] for a, b in zip(order, order[1:])), order
        for name, rows in zip(names, enroll_rows):  # enrollment utterances are never turns
            assert not set(rows) & {u for n, u in order if n == name}


def _utterance(u, start, end, label):
    return [SpeechStart(t=start, utterance=u), SpeechEnd(t=end, utterance=u, duration=end - start),
            Prediction(t=end, utterance=u, head="speaker", label=label, confidence=0.9, probs={}, final=True)]


def test_utterances_are_scored_against_the_turn_they_overlap_most():
    spans = [("ana", 0.8, 3.0), ("ben", 3.8, 6.0), ("ana", 6.8, 9.0)]
    events = (_utterance(0, 0.7, 3.2, "ana") + _utterance(1, 3.7, 6.1, "ana")
              + [SpeakerChange(t=9.1, utterance=2, previous="ana", speaker="ben")]
              + _utterance(2, 5.9, 9.1, "ben"))  # starts in ben's turn, mostly in ana's
    s = _score(events, spans)
    assert s == {"turns": 3, "utterances": 3, "turns_with_own_utterance": 3, "named_right": 1, "true_changes": 2,
                 "changes_reported": 1}
    merged = _score(_utterance(0, 0.7, 9.1, "ana"), spans)  # overlapping turns heard as one utterance
    assert merged["turns_with_own_utterance"] == 1 and merged["named_right"] == 1
