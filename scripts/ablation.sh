#!/usr/bin/env bash
# Loss ablation for the benchmark report: edgepara-tiny distilled with all losses and without each one,
# at a shorter schedule than the shipped model (same schedule for every variant, so they compare).
# Then: edgepara bench quality --ablation runs/ablation
set -euo pipefail
cd "$(dirname "$0")/.."
epochs="${EPOCHS:-6}"
all="speech_embedding,resemblyzer,egemaps,gram"
for variant in all no-gram no-speech_embedding no-resemblyzer no-egemaps; do
  losses="$all"
  [ "$variant" != all ] && losses=$(echo "$all" | tr ',' '\n' | grep -vx "${variant#no-}" | paste -sd,)
  [ -f "runs/ablation/$variant/edgepara-tiny/backbone.keras" ] && continue
  .venv/bin/edgepara distill --sizes edgepara-tiny --epochs "$epochs" --losses "$losses" \
    --out "runs/ablation/$variant/models" --runs "runs/ablation/$variant"
done
