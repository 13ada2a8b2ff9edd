#!/usr/bin/env bash
# Run the collection's Molecule scenarios in qemu VMs, with timings.
#
#   tests/vm/run-molecule.sh [scenario...]      (default: every molecule/*/molecule.yml)
#
# 1. builds (or finds in the cache) the guest image: tests/vm/build-image.sh
# 2. runs `molecule test -s <scenario>` from the repository root for each scenario, printing
#    every output line with the elapsed time and a table of the wall time of each step
# 3. on failure prints the serial console log of each VM of the failed scenario
# 4. always destroys the scenario's VMs at the end (also on Ctrl-C / SIGTERM)
#
# Environment:
#   MOLECULE               molecule executable (default: `molecule` on PATH); its directory is
#                          put first on PATH so ansible-playbook/ansible-config of the same
#                          venv are used
#   HANDBUILT_VM_DISTRO    guest recipe tests/vm/distros/<name>.conf (default bookworm)
#   HANDBUILT_VM_CACHE     image cache (default ~/.cache/handbuilt-vm)
#   HANDBUILT_VM_BOOT      auto (default) | snapshot | cold -- see tests/vm/vmctl.py
#   HANDBUILT_VM_RESULTS   directory for console logs and timings.jsonl (default: a new
#                          /tmp/hbvm-results.XXXXXX, printed at the end)
# Exit status: 0 if every scenario passed, 1 otherwise.
set -euo pipefail

HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
# shellcheck source=tests/vm/lib.sh
. "$HERE/lib.sh"
REPO=$(cd "$HERE/../.." && pwd)
cd "$REPO"

log() { printf '[run-molecule] %s\n' "$*" >&2; }
die() { log "ERROR: $*"; exit 2; }

MOLECULE=${MOLECULE:-molecule}
MOLECULE_PATH=$(command -v -- "$MOLECULE") || die "molecule not found (activate the venv or set MOLECULE=/path/to/venv/bin/molecule)"
PATH=$(dirname -- "$MOLECULE_PATH"):$PATH
export PATH
PY=$(command -v python3) || die "python3 not found"

# Scenarios live in molecule/ at the collection root (Molecule would otherwise warn and look
# for extensions/molecule/).
export MOLECULE_GLOB='molecule/*/molecule.yml'
export HANDBUILT_VM_DISTRO=${HANDBUILT_VM_DISTRO:-bookworm}
# Let ansible-playbook colour its output although it is piped through the timer.
export ANSIBLE_FORCE_COLOR=${ANSIBLE_FORCE_COLOR:-1} PY_COLORS=${PY_COLORS:-1}

if [ $# -gt 0 ]; then
  scenarios=("$@")
else
  scenarios=()
  for f in molecule/*/molecule.yml; do
    [ -f "$f" ] || continue
    d=${f%/molecule.yml}
    scenarios+=("${d#molecule/}")
  done
fi
[ "${#scenarios[@]}" -gt 0 ] || die "no scenarios found under molecule/"
for s in "${scenarios[@]}"; do
  [[ $s =~ ^[A-Za-z0-9_-]+$ ]] || die "invalid scenario name: $s"
  [ -f "molecule/$s/molecule.yml" ] || die "no scenario molecule/$s"
done

if [ ! -e "$REPO/.collections/ansible_collections/handbuilt/containers" ]; then
  log "note: $REPO/.collections/ansible_collections/handbuilt/containers does not exist;"
  log "      playbooks importing handbuilt.containers.* will not resolve until it is installed"
fi

RESULTS=${HANDBUILT_VM_RESULTS:-$(mktemp -d /tmp/hbvm-results.XXXXXX)}
mkdir -p "$RESULTS"
TIMINGS=$RESULTS/timings.jsonl
: > "$TIMINGS"

# Each `molecule test` runs as a background job in its own process group (set -m) and the
# script waits for it: bash runs traps only between foreground commands, so a foreground
# pipeline would delay Ctrl-C/SIGTERM handling until the whole scenario had finished.
set -m
current=""
job=""
stop_job() {
  [ -n "$job" ] || return 0
  stop_group "$job"
  job=""
}
cleanup() {
  local rc=$?
  trap - EXIT INT TERM
  stop_job
  if [ -n "$current" ]; then
    log "cleaning up scenario $current (interrupted or failed)"
    HANDBUILT_VM_LOGDIR="$RESULTS/$current" "$MOLECULE" destroy -s "$current" >/dev/null 2>&1 ||
      log "WARNING: molecule destroy -s $current failed"
  fi
  # Report (never kill by name) any VM of the tests that is still running.
  if pgrep -f -- '-name hbvm-' >/dev/null 2>&1; then
    log "WARNING: qemu processes of the VM tests are still running:"
    pgrep -af -- '-name hbvm-' >&2 || true
  fi
  exit "$rc"
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

show_consoles() {
  local dir=$1 f
  for f in "$dir"/*.console.log; do
    [ -f "$f" ] || continue
    printf '\n===== serial console %s (last 120 lines) =====\n' "$f"
    tail -n 120 -- "$f"
  done
}

t_all=$(date +%s)
log "image for $HANDBUILT_VM_DISTRO"
t0=$(date +%s)
IMAGE_DIR=$("$HERE/build-image.sh" --distro "$HANDBUILT_VM_DISTRO")
t_image=$(( $(date +%s) - t0 ))
log "image ready in ${t_image}s: $IMAGE_DIR"
printf '{"label": "image", "step": "build-image", "seconds": %s}\n' "$t_image" >> "$TIMINGS"

failed=()
for s in "${scenarios[@]}"; do
  current=$s
  mkdir -p "$RESULTS/$s"
  export HANDBUILT_VM_LOGDIR=$RESULTS/$s
  log "scenario $s: molecule test -s $s"
  (
    "$MOLECULE" test -s "$s" 2>&1 | "$PY" "$HERE/molecule-steps.py" --label "$s" --json "$TIMINGS"
    exit "${PIPESTATUS[0]}"
  ) &
  job=$!
  rc=0
  wait "$job" || rc=$?
  job=""
  if [ "$rc" != 0 ]; then
    failed+=("$s")
    log "scenario $s FAILED (rc=$rc); serial consoles follow"
    show_consoles "$RESULTS/$s"
    # molecule test destroys on failure too; make sure, while we still know the scenario.
    "$MOLECULE" destroy -s "$s" >/dev/null 2>&1 || log "WARNING: molecule destroy -s $s failed"
  fi
  current=""
done

printf '\n== summary (%s) ==\n' "$HANDBUILT_VM_DISTRO"
"$PY" - "$TIMINGS" <<'EOF'
import json, sys
rows = [json.loads(l) for l in open(sys.argv[1]) if l.strip()]
for r in rows:
    if r["step"] in ("total", "build-image"):
        print(f"{r['label']:<12} {r['step']:<12} {r['seconds']:>8.1f} s")
EOF
printf '%-12s %-12s %8s s\n' all wall "$(( $(date +%s) - t_all ))"
log "results (console logs, timings.jsonl): $RESULTS"
if [ "${#failed[@]}" -gt 0 ]; then
  log "FAILED: ${failed[*]}"
  exit 1
fi
log "all scenarios passed: ${scenarios[*]}"
