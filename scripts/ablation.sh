#!/usr/bin/env bash
# Loss ablation for the benchmark report: edgepara-tiny distilled without each loss, at the shipped schedule
# (the shipped model is the "all" variant), and the shipped configuration with other seeds.
# Each run reuses the teacher cache of `edgepara distill`. Then: edgepara bench quality --ablation runs/ablation
# Usage: scripts/ablation.sh [variant ...]   (default: every variant; about 25 minutes each on 2 cores)
set -euo pipefail
cd "$(dirname "$0")/.."
all="whisper,resemblyzer,gram,speaker_id,emotion"
variants=("$@")
[ ${#variants[@]} -eq 0 ] && variants=(no-gram no-whisper no-resemblyzer no-speaker_id no-emotion seed-1 seed-2)
for variant in "${variants[@]}"; do
  losses="$all"; seed=0
  case "$variant" in
    no-*) losses=$(echo "$all" | tr ',' '\n' | grep -vx "${variant#no-}" | paste -sd,) ;;
    seed-*) seed="${variant#seed-}" ;;
    *) echo "unknown variant $variant (no-LOSS or seed-N)" >&2; exit 2 ;;
  esac
  [ -f "runs/ablation/$variant/edgepara-tiny/backbone.keras" ] && continue
  .venv/bin/edgepara distill --sizes edgepara-tiny --losses "$losses" --seed "$seed" \
    --out "runs/ablation/$variant/models" --runs "runs/ablation/$variant"
done
