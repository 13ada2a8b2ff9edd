#!/usr/bin/env bash
# Run a command in a private sandbox: its own network namespace (empty: only lo)
# and its own mount namespace with fresh tmpfs on /run, so /run/netns and the
# collection's state dir /run/handbuilt (made by the modules) are private too. Nothing done inside
# can reach this host's network, namespaces or state. cgroups are not
# namespaced here: tests create theirs beneath their own cgroup.
set -euo pipefail
if [ "${HANDBUILT_SANDBOX:-}" != 1 ]; then
  export HANDBUILT_SANDBOX=1
  exec unshare --net --mount --propagation private -- "$0" "$@"
fi
mount -t tmpfs -o mode=0755 handbuilt-sandbox-run /run
mkdir -p /run/netns /run/lock /run/handbuilt
ip link set lo up
exec "$@"
