#!/usr/bin/env bash
# Peak memory (resident set) of `edgepara listen --file`, `embed` and `enroll` on a 60-minute and a 10-second
# 44.1 kHz stereo FLAC, generated here from the bundled demo clip (speech bursts with pauses and a little noise).
# Files are streamed, so the hour must cost no more than the ten seconds: the check passes when every
# command peaks under LIMIT_MB (default 100) and within 10 % of its peak on the 10-second file.
#
#   scripts/check-memory.sh [MINUTES]      (default 60; the generated files live in a temporary folder)
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PYTHON:-.venv/bin/python}
MINUTES=${1:-60}
LIMIT_MB=${LIMIT_MB:-100}
TMP=$(mktemp -d)
trap 'rm -rf "$TMP"' EXIT

"$PY" - "$TMP" "$MINUTES" <<'EOF'
"""Writes long.flac (MINUTES) and short.flac (10 s): the demo clip at 44.1 kHz stereo, 1.5 s pauses, noise."""
import sys
from importlib import resources
from pathlib import Path

import numpy as np
import soundfile as sf

from edgepara.audio import read_audio
from edgepara.resample import StreamingResampler

out, minutes = Path(sys.argv[1]), float(sys.argv[2])
demo = read_audio(Path(str(resources.files("edgepara"))) / "data" / "demo.flac").astype(np.float32) / 32768
up = StreamingResampler(16000, 44100)
speech = np.concatenate([up.process(demo), up.flush()])
burst = np.concatenate([speech, np.zeros(int(1.5 * 44100))]).astype(np.float32)
rng = np.random.default_rng(0)
for name, seconds in (("short.flac", 10.0), ("long.flac", minutes * 60)):
    frames = int(seconds * 44100)
    with sf.SoundFile(out / name, "w", 44100, 2, subtype="PCM_16") as f:
        written = 0
        while written < frames:  # one burst at a time: the generator never holds the whole file either
            n = min(len(burst), frames - written)
            left = burst[:n] * rng.uniform(0.5, 1.0) + 0.002 * rng.standard_normal(n).astype(np.float32)
            right = 0.7 * left + 0.002 * rng.standard_normal(n).astype(np.float32)
            f.write(np.stack([left, right], axis=1))
            written += n
    info = sf.info(str(out / name))
    print(f"generated {name}: {info.duration / 60:.1f} min, {info.samplerate} Hz, {info.channels} ch, "
          f"{(out / name).stat().st_size / 1e6:.1f} MB")
EOF

# peak RSS of one command, in MB (getrusage of the waited-for child: its own maximum resident set)
peak_mb() {
  "$PY" - "$@" <<'EOF'
import resource, subprocess, sys, time
t = time.monotonic()
run = subprocess.run(sys.argv[1:], stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
if run.returncode != 0:
    sys.exit(f"failed ({run.returncode}): {' '.join(sys.argv[1:])}: {run.stderr.strip()}")
peak_kb = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss
print(f"{peak_kb / 1024:.1f} {time.monotonic() - t:.1f}")
EOF
}

EDGEPARA=(.venv/bin/edgepara)
status=0
printf '%-8s %16s %16s %8s  %s\n' command "10 s: MB (s)" "${MINUTES} min: MB (s)" ratio verdict
for cmd in listen embed enroll; do
  declare -A result=()
  for length in short long; do
    file="$TMP/$length.flac"
    case $cmd in
      listen) args=(listen --file "$file" --jsonl /dev/null) ;;
      embed) args=(embed "$file" --out "$TMP/$length.npy") ;;
      enroll) args=(enroll "memcheck-$length" "$file" --profiles "$TMP/profiles-$length") ;;
    esac
    result[$length]=$(peak_mb "${EDGEPARA[@]}" "${args[@]}")
  done
  read -r short_mb short_s <<<"${result[short]}"
  read -r long_mb long_s <<<"${result[long]}"
  verdict=$("$PY" -c "
s, l, limit = $short_mb, $long_mb, $LIMIT_MB
ok = l < limit and l <= 1.10 * s
print(f'{l / s:.3f}', 'ok' if ok else f'MISSED (limit {limit} MB and 10 % of the short file)')")
  printf '%-8s %16s %16s %8s\n' "$cmd" "$short_mb ($short_s)" "$long_mb ($long_s)" "$verdict"
  [[ $verdict == *ok ]] || status=1
done
exit $status
