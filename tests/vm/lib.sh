# shellcheck shell=bash
# Shell functions shared by tests/vm/build-image.sh and tests/vm/run-molecule.sh (sourced).

# stop_group PGID: SIGTERM the process group, give it 10 s, then SIGKILL it, and reap it.
stop_group() {
  local pgid=$1
  kill -TERM -- "-$pgid" 2>/dev/null || true
  for _ in $(seq 50); do
    kill -0 -- "-$pgid" 2>/dev/null || break
    sleep 0.2
  done
  kill -KILL -- "-$pgid" 2>/dev/null || true
  wait "$pgid" 2>/dev/null || true
}
