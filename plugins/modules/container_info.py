#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright: handbuilt.containers contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import annotations

DOCUMENTATION = r"""
module: container_info
short_description: List the containers recorded on a host, with state, pid, limits and addresses
version_added: 0.1.0
description:
  - Reads every container recorded under C(<state_dir>/containers/) by
    M(handbuilt.containers.container) and checks each against C(/proc) - a container is
    C(running) only when its recorded pid still has the recorded start time and is not a zombie.
  - For each one, returns its cgroups with their limit files (v1 or v2 names, as found) and the
    addresses of its network namespace, read through netlink.
  - Changes nothing.
options:
  name:
    description: Only this container (an empty list when it is not recorded).
    type: str
extends_documentation_fragment:
  - handbuilt.containers.common
attributes:
  check_mode:
    support: full
    description: Reads only; the same in check mode.
  diff_mode:
    support: none
    description: Nothing to show.
author:
  - handbuilt.containers developers (!UNKNOWN)
"""

EXAMPLES = r"""
- name: Which containers run here?
  handbuilt.containers.container_info:
  register: info

- name: Show their pids and addresses
  ansible.builtin.debug:
    msg: "{{ item.name }} {{ item.state }} {{ item.pid }} {{ item.addresses }}"
  loop: "{{ info.containers }}"
"""

RETURN = r"""
containers:
  description: Every recorded container, sorted by name.
  returned: always
  type: list
  elements: dict
  contains:
    name: {description: Container name., type: str}
    state: {description: "C(running) or C(exited).", type: str}
    pid: {description: Host pid of its PID 1 (null unless running)., type: int}
    started_at: {description: Start time., type: str}
    exit_code: {description: Exit status once exited., type: int}
    namespaces: {description: Namespace inodes while running., type: dict}
    cgroups: {description: cgroup directories it joined., type: list, elements: str}
    limits:
      description: Per cgroup directory, its limit and usage files (C(memory.limit_in_bytes) or
        C(memory.max), C(pids.max), C(cpu.max) or C(cpu.cfs_quota_us), ...).
      type: dict
    addresses: {description: Addresses per interface (lo left out)., type: dict}
    rootfs: {description: Its root filesystem., type: str}
    command: {description: Its argv., type: list, elements: str}
    hostname: {description: Its hostname., type: str}
    netns: {description: The network namespace it joined., type: str}
    log: {description: Its log file., type: str}
  sample: [{"name": "web", "state": "running", "pid": 4242,
            "limits": {"/sys/fs/cgroup/memory/handbuilt/web": {"memory.limit_in_bytes": "67108864"}},
            "addresses": {"veth1": ["10.10.0.2/24"]}}]
"""

import traceback

from ansible.module_utils.basic import AnsibleModule

from ansible_collections.handbuilt.containers.plugins.module_utils.container import (
    container_name,
    list_records,
)
from ansible_collections.handbuilt.containers.plugins.module_utils.resource import COMMON_ARGS, fail_unless_root
from ansible_collections.handbuilt.containers.plugins.module_utils.validate import InvalidInput


def main():
    module = AnsibleModule(
        argument_spec=dict(COMMON_ARGS, name=dict(type="str")),
        supports_check_mode=True,
    )
    try:
        if module.params["name"] is not None:
            container_name("name", module.params["name"])
        fail_unless_root(module)  # a user would see no containers, not an error
        records = list_records(module.params["state_dir"])
        if module.params["name"] is not None:
            records = [r for r in records if r.name == module.params["name"]]
        containers = [r.describe() for r in records]
    except InvalidInput as exc:
        module.fail_json(msg=str(exc), param=exc.param)
    except Exception as exc:
        module.fail_json(msg=str(exc), exception=traceback.format_exc())
    module.exit_json(changed=False, containers=containers)


if __name__ == "__main__":
    main()
