#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright: handbuilt.containers contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import annotations

DOCUMENTATION = r"""
module: cgroup
short_description: Manage a cgroup and its memory, cpu, pids, cpuset and io limits
version_added: 0.1.0
description:
  - Creates a cgroup, sets its limits and places processes in it, the way the seed labs do by hand
    (C(mkdir /sys/fs/cgroup/demo), C(echo 50M > .../memory.max), C(echo $$ > .../cgroup.procs)),
    converging whatever already exists in one run.
  - cgroup v2 first. Where a controller lives in a cgroup v1 hierarchy (hybrid hosts, older
    fleets) the cgroup is created in each controller's hierarchy and every limit is written to its
    v1 file (C(memory.limit_in_bytes), C(memory.memsw.limit_in_bytes), C(cpu.cfs_quota_us) and
    C(cpu.cfs_period_us), C(cpu.shares), C(pids.max), C(cpuset.*), C(blkio.throttle.*)). The
    version is detected from C(/proc/self/mountinfo) per controller.
  - The cgroup is C(<hierarchy>/<anchor>/<parent>/<name>). The anchor is the hierarchy root, or
    with O(relative_to_pid) the cgroup that process is in (per hierarchy), so a caller can nest
    the collection's cgroups beneath its own.
  - It always joins the cpu, memory and pids controllers where they are available, plus cpuset and
    io when a limit needs them. On cgroup v2 those controllers are added (never removed) to the
    C(cgroup.subtree_control) of the anchor and every component of O(parent), as v2 requires; a
    controller the anchor is not offered (not delegated) is a clear error, and so is a parent
    that holds processes (v2's "no internal processes" rule).
  - Nothing else outside O(parent) is written, and no process is moved unless listed in O(pids).
  - Directories the collection creates are marked under O(state_dir) (C(cgroups/<path>/.owner)
    holding the directory's inode). Unlike the network modules, an existing cgroup without the
    mark is not adopted silently - it usually belongs to systemd or another runtime - so both
    O(state=present) and O(state=absent) refuse it unless O(force=true).
  - A limit that is not given is left alone; a limit set to C(max) removes it.
options:
  name:
    description:
      - The cgroup's path below O(parent), for example C(web) or C(web/app). Relative, without
        C(..), C(.) or empty components, and not named like a cgroup interface file.
    type: str
    required: true
  parent:
    description:
      - The cgroup path, relative to the anchor, that holds the collection's cgroups. It is created
        (and marked) when missing, and removed by O(state=absent) once the collection's last
        cgroup in it is gone, if the collection created it.
      - An empty string puts O(name) directly beneath the anchor.
    type: str
    default: handbuilt
  relative_to_pid:
    description:
      - Resolve O(parent) beneath the cgroup this process is in, in each hierarchy (read from
        C(/proc/<pid>/cgroup)), instead of beneath the hierarchy root.
      - Use it to keep cgroups inside a delegated subtree or inside the caller's own accounting,
        for example C("{{ ansible_facts.ansible_pid | default(omit) }}") or a test's own pid.
      - On cgroup v2 that cgroup must not hold processes unless the needed controllers are
        already enabled in its C(cgroup.subtree_control).
    type: int
  state:
    description:
      - C(present) creates the cgroup and converges its limits and O(pids).
      - C(absent) removes it and its child cgroups. Processes still inside make it fail unless
        O(kill=true).
    type: str
    choices: [present, absent]
    default: present
  memory_max:
    description:
      - Hard memory limit (C(memory.max); v1 C(memory.limit_in_bytes)), in bytes or with a suffix
        K, M, G, T (powers of 1024), or C(max). The kernel keeps whole pages (rounds down).
    type: raw
  memory_high:
    description:
      - Memory throttling threshold (C(memory.high)), same units. cgroup v2 only.
    type: raw
  memory_swap_max:
    description:
      - Swap limit (C(memory.swap.max)), same units. On v1 it is written as memory+swap into
        C(memory.memsw.limit_in_bytes) (which needs swap accounting); when only O(memory_max)
        changes there, the swap allowance is kept.
    type: raw
  cpus:
    description:
      - CPU limit as a number of CPUs, for example C(0.5) (quota C(50000) per C(100000) µs period).
        Greater than 0, at most the host's online CPUs. Mutually exclusive with O(cpu_max).
    type: raw
  cpu_max:
    description:
      - CPU limit as the kernel writes it, C("QUOTA PERIOD") in microseconds (C("50000 100000")),
        C(max) (no limit, period kept) or C("max PERIOD"). The period must be 1000-1000000.
      - v1 writes C(cpu.cfs_period_us) then C(cpu.cfs_quota_us) (C(-1) for C(max)).
    type: raw
  cpu_weight:
    description:
      - Relative CPU weight 1-10000 (C(cpu.weight), default 100). v1 writes C(cpu.shares) converted
        as runc does (2 + (weight - 1) * 262142 / 9999, rounded) and reports it converted back.
    type: raw
  pids_max:
    description: Maximum number of tasks (C(pids.max)), or C(max).
    type: raw
  cpuset_cpus:
    description: CPUs the cgroup may run on, for example C(0-1,3); they must be online on the host.
    type: str
  cpuset_mems:
    description: Memory nodes the cgroup may allocate from, for example C(0).
    type: str
  io_max:
    description:
      - Per-device I/O limits (C(io.max); v1 C(blkio.throttle.*_device)). Devices not listed and
        keys not given are left alone; C(max) removes a limit.
    type: list
    elements: dict
    suboptions:
      device:
        description: A whole-disk block device, as a path (C(/dev/vda)) or C(MAJ:MIN).
        type: str
        required: true
      rbps:
        description: Read bytes per second (sizes like C(10M)), or C(max).
        type: raw
      wbps:
        description: Write bytes per second, or C(max).
        type: raw
      riops:
        description: Read operations per second, or C(max).
        type: raw
      wiops:
        description: Write operations per second, or C(max).
        type: raw
  pids:
    description:
      - Processes to place in the cgroup (written to C(cgroup.procs) in each of its hierarchies).
        Processes already there are left alone; processes not listed are never moved.
    type: list
    elements: raw
  kill:
    description:
      - With O(state=absent), kill the processes still in the cgroup and its children (v2
        C(cgroup.kill), else SIGKILL to each) before removing it.
    type: bool
    default: false
  force:
    description:
      - Take over (O(state=present)) or delete (O(state=absent)) a cgroup that exists without the
        collection's ownership mark.
    type: bool
    default: false
extends_documentation_fragment:
  - handbuilt.containers.common
notes:
  - No subprocess is started; every step is a file write on cgroupfs, shown in RV(commands) as
    the hand command it stands for.
  - A batch module converging many cgroups can build one C(Layout) and loop over C(Cgroup) objects
    from C(module_utils/cgroup.py).
seealso:
  - module: handbuilt.containers.cgroup_info
author:
  - handbuilt.containers developers (!UNKNOWN)
"""

EXAMPLES = r"""
# Seed lab Q2 ("Cap its memory with a cgroup, meet the OOM killer"): by hand it is
#   echo +memory > /sys/fs/cgroup/cgroup.subtree_control; mkdir /sys/fs/cgroup/demo
#   echo 50M > /sys/fs/cgroup/demo/memory.max; echo $$ > /sys/fs/cgroup/demo/cgroup.procs
#   python3 -c "x='A'*(200*1024*1024)"      # Killed
#   cat /sys/fs/cgroup/demo/memory.events     # oom_kill 1
- name: Cap a shell at 50 MB (seed lab Q2)
  handbuilt.containers.cgroup:
    name: demo
    memory_max: 50M
    memory_swap_max: 0        # no swapping around the limit: the OOM killer acts
    pids: ["{{ shell_pid }}"]

- name: After the 200 MB allocation was killed, the OOM kill is counted
  handbuilt.containers.cgroup_info:
    name: demo
  register: demo
  failed_when: demo.cgroup.stats.memory.oom_kill < 1

- name: Half a CPU, at most 64 tasks (the seed's step 5, cpu.max "50000 100000")
  handbuilt.containers.cgroup:
    name: web
    cpu_max: "50000 100000"
    pids_max: 64
    memory_max: 256M

- name: The same CPU limit written as a number of CPUs, plus an I/O cap on the root disk
  handbuilt.containers.cgroup:
    name: web
    cpus: 0.5
    io_max:
      - device: /dev/vda
        wbps: 10M

- name: Remove the memory limit again
  handbuilt.containers.cgroup:
    name: web
    memory_max: max

- name: Tear it down, killing what still runs inside
  handbuilt.containers.cgroup:
    name: web
    state: absent
    kill: true
"""

RETURN = r"""
cgroup:
  description: The cgroup as the kernel reports it after the run; null when absent.
  returned: always
  type: dict
  contains:
    name:
      description: O(name).
      type: str
    version:
      description: cgroup version of its hierarchies, 1 or 2.
      type: int
    path:
      description: Its directory (v2), or its directory in the memory hierarchy (v1).
      type: str
    paths:
      description: Its directory per controller (all the same on v2).
      type: dict
    controllers:
      description: Controllers it is managed in.
      type: list
      elements: str
    owned:
      description: Whether every directory carries the collection's ownership mark.
      type: bool
    limits:
      description:
        - The limits read back from the kernel, in the module's terms (bytes, C(max)).
        - C(cpu_max) is C("QUOTA PERIOD"), C(cpus) the same as a number; v1 C(cpu_weight) is
          converted back from C(cpu.shares); C(io_max) maps C(MAJ:MIN) to its four rates.
      type: dict
    stats:
      description:
        - C(memory) - C(current), C(peak), C(oom) (v2 only), C(oom_kill) (v2 C(memory.events),
          v1 C(memory.oom_control)), C(max_events) (v2 C(max) events; v1 the larger of C(memory.failcnt)
          and C(memory.memsw.failcnt)).
        - C(pids) - C(current), C(peak), C(max_events) (forks refused by pids.max).
        - C(cpu) - C(usage_usec), C(user_usec), C(system_usec), C(nr_periods), C(nr_throttled),
          C(throttled_usec).
      type: dict
    pids:
      description: Processes in the cgroup itself (not its children).
      type: list
      elements: int
  sample:
    name: demo
    version: 2
    path: /sys/fs/cgroup/handbuilt/demo
    owned: true
    limits: {memory_max: 52428800, memory_high: max, memory_swap_max: 0, pids_max: max,
             cpu_max: max 100000, cpus: max, cpu_weight: 100}
    stats: {memory: {current: 4096, peak: 52428800, oom: 1, oom_kill: 1, max_events: 31}}
    pids: []
commands:
  description: The hand commands the plan stands for, in order.
  returned: always
  type: list
  elements: str
  sample: ["echo +cpu +memory +pids > /sys/fs/cgroup/cgroup.subtree_control",
           "mkdir /sys/fs/cgroup/handbuilt", "mkdir /sys/fs/cgroup/handbuilt/demo",
           "echo 52428800 > /sys/fs/cgroup/handbuilt/demo/memory.max"]
adopted:
  description: True when an existing cgroup without the collection's mark was taken over (force).
  returned: when adopted
  type: bool
"""

from ansible.module_utils.basic import AnsibleModule

from ansible_collections.handbuilt.containers.plugins.module_utils.cgroup import Cgroup, Layout
from ansible_collections.handbuilt.containers.plugins.module_utils.resource import (
    COMMON_ARGS,
    run_module,
)

LIMIT_ARGS = ("memory_max", "memory_high", "memory_swap_max", "cpus", "cpu_max", "cpu_weight",
              "pids_max", "cpuset_cpus", "cpuset_mems", "io_max")


def main():
    module = AnsibleModule(
        argument_spec=dict(
            COMMON_ARGS,
            name=dict(type="str", required=True),
            parent=dict(type="str", default="handbuilt"),
            relative_to_pid=dict(type="int"),
            state=dict(type="str", default="present", choices=["present", "absent"]),
            memory_max=dict(type="raw"),
            memory_high=dict(type="raw"),
            memory_swap_max=dict(type="raw"),
            cpus=dict(type="raw"),
            cpu_max=dict(type="raw"),
            cpu_weight=dict(type="raw"),
            pids_max=dict(type="raw"),
            cpuset_cpus=dict(type="str"),
            cpuset_mems=dict(type="str"),
            io_max=dict(type="list", elements="dict", options=dict(
                device=dict(type="str", required=True),
                rbps=dict(type="raw"), wbps=dict(type="raw"),
                riops=dict(type="raw"), wiops=dict(type="raw"))),
            pids=dict(type="list", elements="raw"),
            kill=dict(type="bool", default=False),
            force=dict(type="bool", default=False),
        ),
        supports_check_mode=True,
    )

    def build(p):
        layout = Layout.detect()
        return Cgroup(layout, p["name"], parent=p["parent"], relative_to_pid=p["relative_to_pid"],
                      state=p["state"], pids=p["pids"], kill=p["kill"], force=p["force"],
                      state_dir=p["state_dir"], **{k: p[k] for k in LIMIT_ARGS})

    run_module(module, build)


if __name__ == "__main__":
    main()
