#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright: handbuilt.containers contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import annotations

DOCUMENTATION = r"""
module: cgroup_info
short_description: Report cgroups with their limits, statistics and processes
version_added: 0.1.0
description:
  - Reads one cgroup, or every cgroup beneath O(parent), the way C(cat memory.events),
    C(cat cpu.stat) and C(cat cgroup.procs) would, for verification and grading. Changes nothing.
  - Works on cgroup v2 and on v1 hierarchies (per controller), like M(handbuilt.containers.cgroup).
options:
  name:
    description:
      - The cgroup to report, relative to O(parent). Omit to report every cgroup beneath O(parent)
        (nested ones too), whether the collection created it or not (see C(owned)).
    type: str
  parent:
    description: The cgroup path that holds the collection's cgroups, relative to the anchor.
    type: str
    default: handbuilt
  relative_to_pid:
    description: Resolve O(parent) beneath the cgroup this process is in, per hierarchy.
    type: int
extends_documentation_fragment:
  - handbuilt.containers.common
seealso:
  - module: handbuilt.containers.cgroup
author:
  - handbuilt.containers developers (!UNKNOWN)
"""

EXAMPLES = r"""
- name: Did the 50M cgroup of seed lab Q2 OOM-kill the 200 MB allocation?
  handbuilt.containers.cgroup_info:
    name: demo
  register: demo

- name: Show it
  ansible.builtin.debug:
    msg: "oom_kill={{ demo.cgroup.stats.memory.oom_kill }} peak={{ demo.cgroup.stats.memory.peak }}"

- name: Every cgroup the collection manages on this host
  handbuilt.containers.cgroup_info:
  register: all_cgroups
"""

RETURN = r"""
cgroup:
  description: With O(name), that cgroup (as M(handbuilt.containers.cgroup) returns it); null when absent.
  returned: when O(name) is given
  type: dict
cgroups:
  description:
    - Every cgroup reported, each with C(name), C(version), C(path), C(paths), C(controllers),
      C(owned), C(limits), C(stats) and C(pids) (see M(handbuilt.containers.cgroup)).
  returned: always
  type: list
  elements: dict
commands:
  description: Always empty.
  returned: always
  type: list
  elements: str
"""

from ansible.module_utils.basic import AnsibleModule

from ansible_collections.handbuilt.containers.plugins.module_utils.cgroup import CgroupInfo, Layout
from ansible_collections.handbuilt.containers.plugins.module_utils.resource import (
    COMMON_ARGS,
    run_module,
)


def main():
    module = AnsibleModule(
        argument_spec=dict(
            COMMON_ARGS,
            name=dict(type="str"),
            parent=dict(type="str", default="handbuilt"),
            relative_to_pid=dict(type="int"),
        ),
        supports_check_mode=True,
    )
    run_module(module, lambda p: CgroupInfo(
        Layout.detect(), name=p["name"], parent=p["parent"], relative_to_pid=p["relative_to_pid"],
        state_dir=p["state_dir"]), lock=False)


if __name__ == "__main__":
    main()
