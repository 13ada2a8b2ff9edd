#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright: handbuilt.containers contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import annotations

DOCUMENTATION = r"""
module: container
short_description: Run a process in its own namespaces, pivot_rooted into a root filesystem
version_added: 0.1.0
description:
  - What the seeds do by hand with C(unshare --pid --fork --mount --uts --ipc), C(pivot_root),
    C(mount -t proc), C(hostname) and C(echo $PID > .../cgroup.procs), as one idempotent task.
  - The O(command) is PID 1 of a new pid namespace (or runs under C(tini) with O(init=true)). It
    sees its own C(/proc), its own hostname, the O(rootfs) as C(/) (C(pivot_root) with the old root
    detached, so no host path is reachable), a minimal C(/dev) (C(null zero full random urandom tty)
    bound from the host, a private C(devpts) and C(/dev/shm)), C(/sys) read-only, the OCI runtime
    spec's masked and read-only paths, and only the declared capabilities in every set (bounding,
    effective, permitted, inheritable; ambient cleared), with C(no_new_privs) set.
  - The process outlives the module. A small supervisor (a shim, like Podman's conmon) is
    double-forked in a new session with its stdio on C(<state_dir>/containers/<name>/log); it holds
    no file of the module, reaps the container and records its exit status in C(exit.json).
  - Runtime state lives under C(<state_dir>/containers/<name>/) - pid, start time (field 22 of
    C(/proc/<pid>/stat), so a reused pid is never taken for the container), config hash, namespace
    inodes. A re-run with the same declaration is C(ok). A running container whose declaration
    changed, whose network namespace was re-created (inode compared with C(/proc/<pid>/ns/net)),
    whose rootfs was remounted or which left one of its cgroups is restarted; a dead one is started
    again. Both report C(changed).
  - Stopping sends O(stop_signal), waits O(stop_timeout) seconds, then sends C(SIGKILL). Note that
    the kernel drops signals without a handler sent to a pid namespace's PID 1 - a plain C(sleep)
    ignores C(SIGTERM) - so without O(init) such a command costs the whole O(stop_timeout).
  - Every mount the container makes lives in its own mount namespace and goes with it; O(state=absent)
    stops the container and removes its state directory. The rootfs (an overlay mount) is left alone -
    it belongs to M(handbuilt.containers.overlay_mount).
options:
  name:
    description:
      - Container name; letters, digits, C(_), C(.) and C(-), at most 64 bytes. Names the state
        directory and is the default O(hostname).
    type: str
    required: true
  state:
    description:
      - C(started) runs the container (starting, restarting or re-starting it as needed).
      - C(stopped) stops it and keeps its state directory (exit code, log); a container that was
        never started stays absent.
      - C(absent) stops it and removes its state directory.
    type: str
    choices: [started, stopped, absent]
    default: started
  rootfs:
    description:
      - The root filesystem directory, usually an overlay's merged dir. Required with
        O(state=started). It must exist (in check mode a missing one is a warning).
    type: path
  command:
    description: The argv to run as PID 1, for example C([sleep, infinity]). Never run by a shell.
    type: list
    elements: str
  env:
    description:
      - Environment variables of the command. C(PATH), C(HOME=/root) and C(HOSTNAME) are set unless
        given here; nothing of the module's environment leaks in.
    type: dict
  workdir:
    description: Working directory inside the container, created if missing.
    type: str
    default: /
  hostname:
    description: Hostname inside the container (at most 64 bytes). Needs the C(uts) namespace.
      Defaults to O(name).
    type: str
  netns:
    description:
      - Join this existing network namespace, C(/run/netns/<netns>), made by
        M(handbuilt.containers.netns). Omit to share the host's network (or list C(net) in
        O(namespaces) for an empty private one).
    type: str
  cgroup:
    description:
      - cgroup(s) to join before the command runs. Either absolute cgroup directories under
        C(/sys/fs/cgroup) - on cgroup v1 one per controller hierarchy, for example
        C([/sys/fs/cgroup/memory/web, /sys/fs/cgroup/pids/web]) - or one path relative to the
        hierarchy roots, for example C(handbuilt/web), which joins that cgroup in every mounted
        hierarchy where it exists. Each must exist (create it with M(handbuilt.containers.cgroup)).
    type: list
    elements: str
  namespaces:
    description:
      - Namespaces the container gets its own of. C(mount) is required. C(user) maps ids with
        O(uid_map)/O(gid_map); C(net) creates an empty network namespace (use O(netns) to join one).
    type: list
    elements: str
    choices: [pid, mount, uts, ipc, net, cgroup, user]
    default: [pid, mount, uts, ipc]
  uid_map:
    description:
      - With C(user) in O(namespaces) - lines C(CONTAINER_ID HOST_ID SIZE) for C(/proc/<pid>/uid_map).
        Defaults to C(0 100000 65536); the rootfs must then be owned by host uid 100000 to be writable.
    type: list
    elements: raw
  gid_map:
    description: Like O(uid_map), for groups; defaults to O(uid_map).
    type: list
    elements: raw
  capabilities:
    description:
      - Capabilities the command keeps (names with or without C(CAP_), or C(ALL)); every other one
        is dropped from all sets. Defaults to Docker's default set - C(CHOWN DAC_OVERRIDE FSETID
        FOWNER MKNOD NET_RAW SETGID SETUID SETFCAP SETPCAP NET_BIND_SERVICE SYS_CHROOT KILL
        AUDIT_WRITE). An empty list drops everything.
    type: list
    elements: str
  no_new_privileges:
    description: Set C(no_new_privs), so setuid binaries and file capabilities grant nothing.
    type: bool
    default: true
  masked_paths:
    description: Paths hidden inside the container (files get C(/dev/null), directories an empty
      read-only tmpfs). Defaults to the OCI runtime spec's list (C(/proc/kcore), C(/proc/keys),
      C(/proc/timer_list), C(/proc/sched_debug), C(/proc/scsi), C(/sys/firmware), ...).
    type: list
    elements: str
  readonly_paths:
    description: Paths made read-only inside the container. Defaults to the OCI list
      (C(/proc/bus), C(/proc/fs), C(/proc/irq), C(/proc/sys), C(/proc/sysrq-trigger)).
    type: list
    elements: str
  readonly_rootfs:
    description: Mount the container's C(/) read-only.
    type: bool
    default: false
  mounts:
    description: Bind mounts from the host into the container.
    type: list
    elements: dict
    suboptions:
      source:
        description: Host path (must exist).
        type: path
        required: true
      target:
        description: Absolute path inside the container; created if missing (symlinks refused).
        type: str
        required: true
      readonly:
        description: Bind read-only.
        type: bool
        default: false
  init:
    description:
      - Run C(tini) as PID 1 with O(command) as its child, so signals are forwarded and zombies
        reaped. By default (false) the command itself is PID 1, as the seeds do.
      - C(tini) (static build) is bound read-only at C(/dev/init) inside the container.
    type: bool
    default: false
  init_path:
    description: The init binary; default C(/usr/bin/tini-static), else C(/usr/bin/tini).
    type: path
  stop_signal:
    description: Signal that asks the container to stop (name or number).
    type: str
    default: SIGTERM
  stop_timeout:
    description: Seconds to wait after O(stop_signal) before C(SIGKILL).
    type: int
    default: 10
  restart:
    description:
      - Restart a running container whose declaration differs. With C(false) such a container
        fails the task (naming what differs) and is left running.
    type: bool
    default: true
extends_documentation_fragment:
  - handbuilt.containers.common
notes:
  - Needs root (CAP_SYS_ADMIN). Linux only; uses C(unshare), C(setns), C(mount), C(pivot_root),
    C(prctl) and C(capset) through ctypes, so Python 3.11 without C(os.unshare) works.
  - Container processes are not restarted after a reboot (the state lives under C(/run)).
author:
  - handbuilt.containers developers (!UNKNOWN)
"""

EXAMPLES = r"""
- name: Run a busybox web container in net1, limited by a cgroup (seed 004's "container from scratch")
  handbuilt.containers.container:
    name: web
    rootfs: /var/lib/handbuilt/containers/web/merged
    command: [httpd, -f, -p, "80", -h, /www]
    hostname: web
    netns: net1
    cgroup: [/sys/fs/cgroup/memory/handbuilt/web, /sys/fs/cgroup/pids/handbuilt/web]
    env:
      GREETING: hello
    mounts:
      - source: /srv/www
        target: /www
        readonly: true

- name: Stop it (SIGTERM, then SIGKILL after 2 s)
  handbuilt.containers.container:
    name: web
    state: stopped
    stop_timeout: 2

- name: Remove it
  handbuilt.containers.container:
    name: web
    state: absent
"""

RETURN = r"""
container:
  description: The container after the run.
  returned: always
  type: dict
  contains:
    name: {description: Container name., type: str}
    state: {description: "C(running), C(exited) or C(absent).", type: str}
    pid: {description: Host pid of the container's PID 1 (null unless running)., type: int}
    started_at: {description: Start time (from /proc/<pid>/stat)., type: str}
    namespaces:
      description: Namespace inodes of the running container (as in C(/proc/<pid>/ns/*)).
      type: dict
    cgroups: {description: cgroup directories it joined., type: list, elements: str}
    limits: {description: The limit files of each cgroup (v1 or v2 names)., type: dict}
    addresses:
      description: Addresses per interface in the container's network namespace (lo left out);
        null when it shares the host's.
      type: dict
    exit_code: {description: Exit status once exited (128+signal when killed)., type: int}
    log: {description: File with the container's stdout and stderr., type: str}
    config_hash: {description: Hash of the declaration the running container was started with., type: str}
  sample: {"name": "web", "state": "running", "pid": 4242, "started_at": "2026-01-01T10:00:00+0000",
           "namespaces": {"pid": 4026532301, "mnt": 4026532299, "net": 4026532210},
           "cgroups": ["/sys/fs/cgroup/memory/handbuilt/web"],
           "addresses": {"veth1": ["10.10.0.2/24"]}, "exit_code": null,
           "log": "/run/handbuilt/containers/web/log"}
commands:
  description: The hand commands the plan stands for, in order.
  returned: always
  type: list
  elements: str
  sample: ["nsenter --net=/run/netns/net1 unshare --fork --pid --mount --uts --ipc
            --root=/srv/web --mount-proc -- sleep infinity  # shim ...: hostname web; capabilities ..."]
"""

from ansible.module_utils.basic import AnsibleModule

from ansible_collections.handbuilt.containers.plugins.module_utils.container import Container
from ansible_collections.handbuilt.containers.plugins.module_utils.resource import (
    COMMON_ARGS,
    run_module,
)


def main():
    module = AnsibleModule(
        argument_spec=dict(
            COMMON_ARGS,
            name=dict(type="str", required=True),
            state=dict(type="str", default="started", choices=["started", "stopped", "absent"]),
            rootfs=dict(type="path"),
            command=dict(type="list", elements="str"),
            env=dict(type="dict"),
            workdir=dict(type="str", default="/"),
            hostname=dict(type="str"),
            netns=dict(type="str"),
            cgroup=dict(type="list", elements="str"),
            namespaces=dict(type="list", elements="str",
                            choices=["pid", "mount", "uts", "ipc", "net", "cgroup", "user"],
                            default=["pid", "mount", "uts", "ipc"]),
            uid_map=dict(type="list", elements="raw"),
            gid_map=dict(type="list", elements="raw"),
            capabilities=dict(type="list", elements="str"),
            no_new_privileges=dict(type="bool", default=True),
            masked_paths=dict(type="list", elements="str"),
            readonly_paths=dict(type="list", elements="str"),
            readonly_rootfs=dict(type="bool", default=False),
            mounts=dict(type="list", elements="dict", options=dict(
                source=dict(type="path", required=True),
                target=dict(type="str", required=True),
                readonly=dict(type="bool", default=False),
            )),
            init=dict(type="bool", default=False),
            init_path=dict(type="path"),
            stop_signal=dict(type="str", default="SIGTERM"),
            stop_timeout=dict(type="int", default=10),
            restart=dict(type="bool", default=True),
        ),
        required_if=[("state", "started", ["rootfs", "command"])],
        supports_check_mode=True,
    )
    run_module(module, lambda p: Container(p, check_mode=module.check_mode))


if __name__ == "__main__":
    main()
