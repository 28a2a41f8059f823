#!/usr/bin/env bash
# The live speaker check of docs/benchmarks.md: enroll 4 RAVDESS test actors from 3 neutral/calm clips each through
# `edgepara enroll`, then run 4 other-emotion clips of each through `edgepara listen --file --head speaker`
# and count right / wrong / "unknown" final predictions; then 4 clips of each of the 2 actors never enrolled
# (23, 24), who should come out "unknown". Usage: scripts/check-speaker-live.sh [MODEL]
set -euo pipefail
cd "$(dirname "$0")/.."
model="${1:-edgepara-small}"
data="${EDGEPARA_DATA:-../shared/data}/ravdess"
profiles="$(mktemp -d)"
trap 'rm -rf "$profiles"' EXIT
right=0; wrong=0; unknown=0
for actor in 19 20 21 22; do
  dir="$data/Actor_$actor"
  # emotion code 01 = neutral, 02 = calm; 03-08 = the other emotions
  enroll=$(ls "$dir"/03-01-0[12]-*.flac | head -3)
  .venv/bin/edgepara enroll "A$actor" $enroll --model "$model" --profiles "$profiles" >/dev/null
done
for actor in 19 20 21 22; do
  for clip in $(ls "$data/Actor_$actor"/03-01-0[3-8]-01-01-01-*.flac | head -4); do
    label=$(.venv/bin/edgepara listen --file "$clip" --head speaker --model "$model" --profiles "$profiles" --jsonl - \
      | python3 -c 'import json,sys; f=[e for e in map(json.loads, sys.stdin) if e.get("final")]; print(f[-1]["label"] if f else "none")')
    if [ "$label" = "A$actor" ]; then right=$((right+1)); elif [ "$label" = unknown ]; then unknown=$((unknown+1)); else wrong=$((wrong+1)); fi
  done
done
echo "$model: $right right, $wrong wrong, $unknown unknown of $((right+wrong+unknown)) clips of enrolled speakers"
strangers=0; named=0
for actor in 23 24; do
  for clip in $(ls "$data/Actor_$actor"/03-01-0[3-8]-01-01-01-*.flac | head -4); do
    label=$(.venv/bin/edgepara listen --file "$clip" --head speaker --model "$model" --profiles "$profiles" --jsonl - \
      | python3 -c 'import json,sys; f=[e for e in map(json.loads, sys.stdin) if e.get("final")]; print(f[-1]["label"] if f else "none")')
    if [ "$label" = unknown ]; then strangers=$((strangers+1)); else named=$((named+1)); fi
  done
done
echo "$model: $strangers unknown, $named given an enrolled name, of $((strangers+named)) clips of 2 actors never enrolled"
