#!/usr/bin/env bash
# Checks edgepara on 64-bit (arm64 = aarch64) or 32-bit (armhf = armv7l) Raspberry Pi OS under qemu
# emulation, when no board is at hand: a Debian bookworm root filesystem for ARCH (the base of Raspberry Pi
# OS bookworm), the project installed in it exactly as README.md says (scripts/setup.sh, runtime profile),
# then `listen --demo --jsonl -`, `embed` on the test clips and the runtime-only tests there, and the same
# commands on this machine: the prediction labels must agree and the embeddings must be within int8 rounding.
#
# Usage: scripts/check-arm.sh arm64|armhf          (as root; re-runs itself with sudo otherwise)
# Needs: a Debian/Ubuntu x86_64 host with network access to deb.debian.org and PyPI, and the project set
# up on the host (scripts/setup.sh). Installs debootstrap and qemu-user-static >= 10 with apt when missing
# (on bookworm from bookworm-backports: bookworm's qemu 7.2 crashes on LiteRT's aarch64 wheel), registers
# the qemu interpreters with binfmt_misc, and caches the root filesystem in $EDGEPARA_ARM_CACHE
# (default ~/.cache/edgepara). Every run starts from the pristine cached root filesystem (an overlay), so the
# install is checked as on a fresh board. Emulated timings say nothing about a Raspberry Pi's speed.
set -euo pipefail

arch="${1:-}"
case "$arch" in
  arm64) qemu_name=aarch64; machine=aarch64 ;;
  armhf) qemu_name=arm; machine=armv7l ;;
  *) echo "usage: scripts/check-arm.sh arm64|armhf" >&2; exit 2 ;;
esac
if [ "$(id -u)" -ne 0 ]; then
  command -v sudo >/dev/null || { echo "check-arm: expected root (for apt, mount, chroot) or sudo, got neither" >&2; exit 2; }
  exec sudo EDGEPARA_ARM_CACHE="${EDGEPARA_ARM_CACHE:-$HOME/.cache/edgepara}" "$0" "$@"
fi

repo="$(cd "$(dirname "$0")/.." && pwd)"
cache="${EDGEPARA_ARM_CACHE:-$HOME/.cache/edgepara}"
mirror="${EDGEPARA_ARM_MIRROR:-http://deb.debian.org/debian}"
suite=bookworm
base="$cache/rootfs-$arch"            # debootstrapped once, never changed afterwards
marker="$base/.edgepara-rootfs-complete"
run="$cache/run-$arch"                # this run: overlay upper layer, merged root, outputs
root="$run/root"
host_out="$run/host"
log="$cache/check-arm-$arch.log"
mkdir -p "$cache"
: >"$log"

# ---- bookkeeping: every step is logged with its wall-clock time, so README can say what the check costs --
t_start=$(date +%s)
declare -a durations=()
say() { echo "check-arm[$arch]: $*" | tee -a "$log" >&2; }
step() {  # step NAME COMMAND...: runs COMMAND, logs its duration, stops the check when it fails
  local name="$1"; shift
  local t0 rc; t0=$(date +%s)
  say "start: $name"
  # A subshell with its own errexit: inside `if`, bash would ignore `set -e` in the whole function.
  set +e
  ( set -e; "$@" ) >>"$log" 2>&1
  rc=$?
  set -e
  if [ $rc -eq 0 ]; then
    durations+=("$name: $(( $(date +%s) - t0 )) s")
    say "done:  $name ($(( $(date +%s) - t0 )) s)"
  else
    say "FAILED: $name (exit $rc after $(( $(date +%s) - t0 )) s); last lines of $log:"
    tail -n 25 "$log" >&2
    exit 1
  fi
}

# ---- mounts, undone on any exit ---------------------------------------------------------------------
# Steps run in subshells, so the mounts are found in /proc/mounts (deepest first), not kept in a variable;
# this also clears mounts left by a run that was killed.
cleanup() {
  local m
  for m in $(awk -v a="$base" -v b="$run" '$2 == a || index($2, a "/") == 1 || $2 == b || index($2, b "/") == 1 {print $2}' /proc/mounts | sort -r); do
    umount "$m" 2>/dev/null || umount -l "$m" 2>/dev/null || true
  done
}
trap cleanup EXIT
trap 'exit 130' INT TERM
assert_unmounted() {  # never delete a tree that still has /dev or /proc bound into it
  cleanup
  if awk -v a="$base" -v b="$run" 'index($2, a "/") == 1 || index($2, b "/") == 1 || $2 == a || $2 == b' /proc/mounts | grep -q .; then
    echo "expected nothing mounted under $base or $run, got:"; grep -e "$base" -e "$run" /proc/mounts; return 1
  fi
}
do_mount() {  # do_mount TARGET MOUNT-ARGS...
  local target="$1"; shift
  mount "$@" "$target"
}
mount_system_dirs() {  # /proc, /sys, /dev, /dev/pts for apt, pip and Python inside the chroot
  local r="$1"
  do_mount "$r/proc" -t proc proc
  do_mount "$r/sys" -t sysfs sysfs
  do_mount "$r/dev" --bind /dev
  do_mount "$r/dev/pts" --bind /dev/pts
}

apt_install() { DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends "$@"; }

# ---- 1. host prerequisites -----------------------------------------------------------------------------
qemu_major() {  # the major version of qemu-ARCH-static, empty when it is not installed
  command -v "qemu-$qemu_name-static" >/dev/null || return 0
  "qemu-$qemu_name-static" --version | sed -n 's/.*version \([0-9]*\)\..*/\1/p' | head -n1
}

install_prerequisites() {
  local need_update=1
  if ! command -v debootstrap >/dev/null; then
    apt-get update -q; need_update=0
    apt_install debootstrap
  fi
  local major; major=$(qemu_major)
  if [ -z "$major" ] || [ "$major" -lt 10 ]; then
    . /etc/os-release
    if [ "${VERSION_CODENAME:-}" = bookworm ]; then
      # qemu 10 lives in bookworm-backports; add that suite only when no apt source has it yet
      if ! grep -rqs "bookworm-backports" /etc/apt/sources.list /etc/apt/sources.list.d/; then
        cat >/etc/apt/sources.list.d/edgepara-bookworm-backports.sources <<'EOF'
Types: deb
URIs: http://deb.debian.org/debian
Suites: bookworm-backports
Components: main
Signed-By: /usr/share/keyrings/debian-archive-keyring.gpg
EOF
        need_update=1
      fi
      [ $need_update -eq 1 ] && apt-get update -q
      apt_install -t bookworm-backports qemu-user-static
    else
      [ $need_update -eq 1 ] && apt-get update -q
      apt_install qemu-user-static
    fi
    major=$(qemu_major)
    if [ -z "$major" ] || [ "$major" -lt 10 ]; then
      echo "expected qemu-user-static 10 or newer, got ${major:-none} (older qemu crashes on LiteRT's aarch64 wheel)"
      return 1
    fi
  fi
  "qemu-$qemu_name-static" --version | head -n1
}

# The kernel must hand ARCH binaries to qemu. The 'F' flag makes it open the interpreter once, at
# registration, so it also works inside the chroot, where /usr/bin/qemu-*-static does not exist.
register_binfmt() {
  local dir=/proc/sys/fs/binfmt_misc
  [ -e "$dir/register" ] || mount -t binfmt_misc binfmt_misc "$dir"
  local entry="$dir/qemu-$qemu_name" interp; interp=$(command -v "qemu-$qemu_name-static")
  if [ -e "$entry" ] && grep -qx enabled "$entry" && grep -q "^interpreter $interp\$" "$entry" \
     && grep -q '^flags:.*F' "$entry"; then
    cat "$entry"; return 0
  fi
  [ -e "$entry" ] && echo -1 >"$entry"
  # qemu-user-static ships the magic and mask in systemd-binfmt format (:name:type:offset:magic:mask:interp:flags)
  local conf line
  for conf in "/usr/lib/binfmt.d/qemu-$qemu_name-static.conf" "/usr/lib/binfmt.d/qemu-$qemu_name.conf"; do
    [ -f "$conf" ] && line=$(grep -m1 "^:qemu-$qemu_name:" "$conf") && break
  done
  if [ -z "${line:-}" ]; then
    echo "expected a binfmt entry for qemu-$qemu_name in /usr/lib/binfmt.d, got none"; return 1
  fi
  local name type offset magic mask _ flags
  IFS=: read -r _ name type offset magic mask _ flags <<<"$line"
  flags="${flags//F/}F"
  printf ':%s:%s:%s:%s:%s:%s:%s\n' "$name" "$type" "$offset" "$magic" "$mask" "$interp" "$flags" >"$dir/register"
  cat "$entry"
}

# ---- 2. the cached root filesystem ---------------------------------------------------------------------
# Raspberry Pi OS bookworm is Debian bookworm plus the Raspberry Pi archive; the project needs only Debian's.
# No bookworm-security: the check needs a repeatable install, not security updates, and a security mirror
# caught mid-sync (an InRelease newer than its armhf Packages.xz) made every `apt-get update` fail.
write_board_sources() {
  printf 'deb %s %s main\ndeb %s %s-updates main\n' "$mirror" "$suite" "$mirror" "$suite" >"$1/etc/apt/sources.list"
}

build_rootfs() {
  assert_unmounted
  rm -rf --one-file-system "$base"
  mkdir -p "$base"
  debootstrap --foreign --arch "$arch" --variant=minbase "$suite" "$base" "$mirror"
  mount_system_dirs "$base"
  nice -n 15 chroot "$base" /debootstrap/debootstrap --second-stage
  cleanup
  write_board_sources "$base"
  chroot "$base" /usr/bin/uname -m
  touch "$marker"
}

# ---- 3. the project on the emulated board --------------------------------------------------------------
prepare_run_root() {
  assert_unmounted
  rm -rf --one-file-system "$run"
  mkdir -p "$run/upper" "$run/work" "$root" "$host_out"
  # A fresh overlay on the pristine root filesystem: each run installs as on a new board.
  do_mount "$root" -t overlay overlay -o "lowerdir=$base,upperdir=$run/upper,workdir=$run/work"
  mount_system_dirs "$root"
  cp -L /etc/resolv.conf "$root/etc/resolv.conf"
  write_board_sources "$root"
  # A TLS-intercepting proxy's CA on the host must be trusted on the board too (ca-certificates, which
  # setup.sh's apt step pulls in, adds /usr/local/share/ca-certificates to the system bundle).
  if [ ${#host_cas[@]} -gt 0 ]; then mkdir -p "$root/usr/local/share/ca-certificates"; cp "${host_cas[@]}" "$root/usr/local/share/ca-certificates/"; fi
  # pip's and apt's downloads are kept between runs (not the installs)
  mkdir -p "$cache/pip-$arch" "$cache/apt-$arch" "$root/root/.cache/pip" "$root/var/cache/apt/archives"
  do_mount "$root/root/.cache/pip" --bind "$cache/pip-$arch"
  do_mount "$root/var/cache/apt/archives" --bind "$cache/apt-$arch"
  # The working tree as a fresh clone plus the not-yet-committed files: tracked and untracked-not-ignored.
  mkdir -p "$root/opt/edgepara" "$root/opt/out"
  (cd "$repo" && git ls-files -co --exclude-standard -z \
     | while IFS= read -r -d '' f; do [ -e "$f" ] && printf '%s\0' "$f"; done \
     | tar --null -T - -cf -) | tar -xf - -C "$root/opt/edgepara"
  du -sh "$root/opt/edgepara"
}

# The runtime-only tests: nothing here needs the training extra, a microphone or PulseAudio.
TESTS="tests/test_models.py tests/test_stream.py tests/test_imports.py tests/test_frontend.py tests/test_speaker.py tests/test_profiles.py"

write_inside_script() {
  cat >"$root/opt/check-inside.sh" <<EOF
#!/bin/bash
# Runs on the emulated board, in a fresh checkout, as README.md says for a Raspberry Pi.
set -euo pipefail
cd /opt/edgepara
export DEBIAN_FRONTEND=noninteractive PIP_DISABLE_PIP_VERSION_CHECK=1
$(armhf_workaround)
scripts/setup.sh
.venv/bin/pip install -q pytest
EOF
}

# 32-bit ARM has no wheels on PyPI for numpy, scipy, cffi or webrtcvad-wheels (piwheels, which has them, is
# not reachable from here), so a plain `pip install` would compile numpy and scipy from source. Debian's
# python3-numpy/-scipy/-cffi satisfy the requirements (numpy 1.24 < 2, scipy 1.10), seen through a venv with
# --system-site-packages, and build-essential compiles webrtcvad-wheels' small C extension. Not needed once
# scripts/setup.sh does this itself on armv7l (it then creates such a venv).
armhf_workaround() {
  # EDGEPARA_ARM_PLAIN=1 runs scripts/setup.sh alone, to see what a plain install does there.
  if [ "$arch" = armhf ] && [ "${EDGEPARA_ARM_PLAIN:-0}" != 1 ] && ! grep -q -- "--system-site-packages" "$repo/scripts/setup.sh"; then
    cat <<'EOF'
echo "check-arm: armv7l: Debian's numpy/scipy/cffi and a --system-site-packages venv before scripts/setup.sh"
apt-get update -qq || { sleep 30; apt-get update -qq; }  # a mirror mid-sync fails one update now and then
apt-get install -y -qq --no-install-recommends python3-venv python3-numpy python3-scipy python3-cffi build-essential
[ -x .venv/bin/python ] || python3 -m venv --system-site-packages .venv
EOF
  fi
}

shopt -s nullglob
host_cas=(/usr/local/share/ca-certificates/*.crt)
shopt -u nullglob
chroot_env=(HOME=/root LANG=C.UTF-8 TERM=dumb)
# pip trusts its own certifi bundle, not the system's: point it at the system bundle with the host's CAs
[ ${#host_cas[@]} -gt 0 ] && chroot_env+=(PIP_CERT=/etc/ssl/certs/ca-certificates.crt)
in_chroot() {  # in_chroot COMMAND...: a clean environment, low priority (emulation is CPU-heavy)
  chroot "$root" /usr/bin/env -i "${chroot_env[@]}" \
    PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin nice -n 15 "$@"
}

# The same three things on both sides; $1 runs the command (in_chroot or plain), $2 the project root,
# $3 the output folder as that side sees it.
run_commands() {
  local runner="$1" proj="$2" out="$3"
  $runner bash -c "cd '$proj' && .venv/bin/python -c 'import platform, numpy; from edgepara.runtime import interpreter_backend; print(platform.machine(), platform.python_version(), \"numpy\", numpy.__version__, interpreter_backend())' >'$out/platform.txt'"
  $runner bash -c "cd '$proj' && .venv/bin/edgepara listen --demo --jsonl - >'$out/listen.jsonl'"
  $runner bash -c "cd '$proj' && .venv/bin/edgepara embed tests/data/*.flac --out '$out/emb.npy' --per-window '$out/windows.npz'"
}

run_tests_in_chroot() {  # a failing test does not stop the check here; the comparison reports it
  in_chroot bash -c "cd /opt/edgepara && .venv/bin/python -m pytest -q -p no:cacheprovider $TESTS" \
    >"$run/tests.txt" 2>&1 || true
  cat "$run/tests.txt"
}

# ---- 4. compare with this machine ----------------------------------------------------------------------
compare() {
  "$repo/.venv/bin/python" - "$root/opt/out" "$host_out" "$run/tests.txt" "$run/compare.txt" <<'EOF'
"""Labels must agree event by event; embeddings must agree within int8 rounding: each window's output is
an int8 value times the model's output scale, so one step of rounding (e.g. a log-mel value landing on the
other side of a quantization boundary on another CPU) moves it by one scale; an utterance embedding is the
mean of windows, so it also stays within one scale if every window does."""
import json, re, sys
from pathlib import Path
import numpy as np

arm, host, tests_txt, out = (Path(p) for p in sys.argv[1:])
lines, ok = [], True

def preds(path):
    evs = [json.loads(l) for l in path.read_text().splitlines() if l.strip()]
    return [e for e in evs if e.get("type") == "prediction"]

a, h = preds(arm / "listen.jsonl"), preds(host / "listen.jsonl")
key = lambda e: (e.get("utterance"), e.get("head"), e.get("final"), e.get("label"))
same = [key(x) for x in a] == [key(x) for x in h]
ok &= same and len(a) > 0
prob_diff = max((abs(x["probs"][k] - y["probs"][k]) for x, y in zip(a, h) for k in x["probs"]), default=float("nan"))
finals = [f"{e['label']}" for e in a if e.get("final")]
lines.append(f"listen --demo: {len(a)} predictions here, {len(h)} on the host, labels "
             f"{'identical' if same else 'DIFFER'} (final: {', '.join(finals)}); max probability difference {prob_diff:.4f}")
if not same:
    for i, (x, y) in enumerate(zip(a, h)):
        if key(x) != key(y):
            lines.append(f"  first difference at prediction {i}: here {key(x)}, host {key(y)}"); break

from edgepara.assets import DEFAULT_MODEL, resolve_model  # embed's default model and its card
model = DEFAULT_MODEL
scale = float(resolve_model(model)[1]["output"]["scale"])
tol = 1.0 * scale
ea, eh = np.load(arm / "emb.npy"), np.load(host / "emb.npy")
wa, wh = np.load(arm / "windows.npz"), np.load(host / "windows.npz")
if ea.shape != eh.shape:
    ok = False
    lines.append(f"embed: shapes differ, here {ea.shape}, host {eh.shape}")
else:
    d = float(np.max(np.abs(ea - eh)))
    win_key = [k for k in wa.files if wa[k].dtype.kind == "f" and wa[k].ndim == 2]
    wd = [float(np.max(np.abs(wa[k] - wh[k]))) if wa[k].shape == wh[k].shape else float("inf") for k in win_key]
    wsteps = max(wd, default=0.0) / scale
    # float32 arithmetic puts an exact one-step difference a hair either side of the float64 scale
    ok &= d <= tol * (1 + 1e-3) and wsteps <= 1.0 + 1e-3
    lines.append(f"embed: {ea.shape[0]} clips x {ea.shape[1]} dims; max |arm - x86| = {d:.6f} "
                 f"(per window: {max(wd, default=0.0):.6f} = {wsteps:.2f} int8 steps); tolerance {tol:.6f} "
                 f"= 1 int8 step of {model}'s output scale {scale:.6f} -> {'within' if d <= tol * (1 + 1e-3) and wsteps <= 1.0 + 1e-3 else 'OUTSIDE'}")
    lines.append(f"  cosine(arm, x86) per clip: min {min(float(np.dot(x, y) / np.linalg.norm(x) / np.linalg.norm(y)) for x, y in zip(ea, eh)):.6f}")
t = tests_txt.read_text()
m = re.findall(r"(\d+) (passed|failed|skipped|error|errors)", t.splitlines()[-1] if t.strip() else "")
lines.append("tests on the emulated board: " + (", ".join(f"{n} {w}" for n, w in m) or "no result"))
ok &= bool(m) and not any(w in ("failed", "error", "errors") for _, w in m)
lines.append("RESULT: " + ("PASS" if ok else "FAIL"))
out.write_text("\n".join(lines) + "\n")
print("\n".join(lines))
sys.exit(0 if ok else 1)
EOF
}

# ---- the check ------------------------------------------------------------------------------------------
say "host $(uname -m), checking $arch ($machine) under qemu; log: $log"
[ -x "$repo/.venv/bin/edgepara" ] || { say "expected the project set up on the host ($repo/.venv/bin/edgepara), got none: run scripts/setup.sh first"; exit 2; }
step "host prerequisites (debootstrap, qemu-user-static >= 10)" install_prerequisites
step "binfmt_misc registration of qemu-$qemu_name (flag F)" register_binfmt
if [ -f "$marker" ]; then
  say "root filesystem: cached in $base"
else
  step "debootstrap $suite $arch (first stage + emulated second stage)" build_rootfs
fi
step "fresh overlay root, working tree copied in" prepare_run_root
write_inside_script
step "scripts/setup.sh on the emulated board (runtime profile; + pytest)" in_chroot bash /opt/check-inside.sh
step "listen --demo, embed on the emulated board" run_commands in_chroot /opt/edgepara /opt/out
step "tests on the emulated board" run_tests_in_chroot
step "listen --demo, embed on the host" run_commands "" "$repo" "$host_out"
(
  rc=0
  echo "== edgepara under emulation: $arch =="
  echo "emulated board: $(cat "$root/opt/out/platform.txt")  (Debian $suite, qemu $("qemu-$qemu_name-static" --version | sed -n 's/.*version \([^ ]*\).*/\1/p' | head -n1))"
  echo "host:           $(cat "$host_out/platform.txt")"
  echo "tests run there: $TESTS"
  echo "outputs: board $run/upper/opt/out, host $host_out; log $log"
  compare || rc=$?
  echo "wall clock (emulated, says nothing about a Pi's speed): total $(( $(date +%s) - t_start )) s"
  for d in "${durations[@]}"; do echo "  $d"; done
  exit $rc
) | tee -a "$log" | tee "$cache/check-arm-$arch.summary"
