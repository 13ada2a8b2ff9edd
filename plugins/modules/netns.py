#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright: handbuilt.containers contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import annotations

DOCUMENTATION = r"""
module: netns
short_description: Manage a named network namespace, as C(ip netns add) does
version_added: 0.1.0
description:
  - Creates or deletes a network namespace bind-mounted on C(/run/netns/<name>), so C(ip netns list)
    and C(ip netns exec) see it, and brings its loopback up.
  - Namespaces the collection creates are marked in O(state_dir); a namespace of that name made by
    hand is adopted (marked, with a warning) by O(state=present), and only deleted by
    O(state=absent) when O(force=true).
  - Deleting a namespace removes its links first, so the host ends of its veth pairs are gone when
    the task returns.
options:
  name:
    description: Name of the namespace (a file name under C(/run/netns)).
    type: str
    required: true
  state:
    description: Whether the namespace exists.
    type: str
    choices: [present, absent]
    default: present
  loopback:
    description:
      - Bring C(lo) up inside the namespace (a fresh namespace has it down).
      - V(false) leaves C(lo) as it is.
    type: bool
    default: true
extends_documentation_fragment:
  - handbuilt.containers.common
  - handbuilt.containers.common.NETLINK
  - handbuilt.containers.common.FORCE
author:
  - handbuilt.containers developers (!UNKNOWN)
"""

EXAMPLES = r"""
- name: An empty network stack for a container (seed lab Q3)
  handbuilt.containers.netns:
    name: net1

- name: Remove it again
  handbuilt.containers.netns:
    name: net1
    state: absent
"""

RETURN = r"""
name:
  description: Name of the namespace.
  returned: always
  type: str
  sample: net1
path:
  description: The namespace's bind mount.
  returned: always
  type: str
  sample: /run/netns/net1
inode:
  description: Inode of the namespace (compare with C(/proc/<pid>/ns/net)); null when absent.
  returned: always
  type: int
commands:
  description: The hand commands the plan stands for, in order.
  returned: always
  type: list
  elements: str
  sample: ["ip netns add net1", "ip netns exec net1 ip link set lo up"]
adopted:
  description: True when an existing namespace without the collection's mark was adopted.
  returned: when adopted
  type: bool
"""

from ansible.module_utils.basic import AnsibleModule

from ansible_collections.handbuilt.containers.plugins.module_utils.netmodel import (
    Netns,
    run_net_module,
)
from ansible_collections.handbuilt.containers.plugins.module_utils.resource import COMMON_ARGS


def main():
    module = AnsibleModule(
        argument_spec=dict(
            COMMON_ARGS,
            name=dict(type="str", required=True),
            state=dict(type="str", default="present", choices=["present", "absent"]),
            loopback=dict(type="bool", default=True),
            force=dict(type="bool", default=False),
        ),
        supports_check_mode=True,
    )
    run_net_module(module, lambda netlink, p: Netns(
        netlink, p["name"], state=p["state"], loopback=p["loopback"], force=p["force"],
        state_dir=p["state_dir"]))


if __name__ == "__main__":
    main()
