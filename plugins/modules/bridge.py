#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright: handbuilt.containers contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import annotations

DOCUMENTATION = r"""
module: bridge
short_description: Manage a Linux bridge (a virtual switch, like docker0)
version_added: 0.1.0
description:
  - Creates a bridge, sets its addresses and MTU and brings it up; or deletes it.
  - The bridge carries the ifalias C(handbuilt.containers) as the collection's ownership mark. An
    existing unmarked bridge of that name is converged and adopted by O(state=present), and only
    deleted by O(state=absent) when O(force=true).
options:
  name:
    description: Name of the bridge (at most 15 bytes).
    type: str
    required: true
  state:
    description: Whether the bridge exists.
    type: str
    choices: [present, absent]
    default: present
  addresses:
    description:
      - Addresses of the bridge in CIDR notation, for example C(10.10.0.1/24) (the containers'
        gateway).
      - The list is exact, other addresses on the bridge are removed. Omit it to leave addresses
        alone.
    type: list
    elements: str
  mtu:
    description: MTU of the bridge (68-65535). Omit to leave it alone.
    type: int
extends_documentation_fragment:
  - handbuilt.containers.common
  - handbuilt.containers.common.NETLINK
  - handbuilt.containers.common.FORCE
author:
  - handbuilt.containers developers (!UNKNOWN)
"""

EXAMPLES = r"""
- name: The containers' switch and gateway (seed lab Q4)
  handbuilt.containers.bridge:
    name: br0
    addresses: [10.10.0.1/24]

- name: Delete it
  handbuilt.containers.bridge:
    name: br0
    state: absent
"""

RETURN = r"""
bridge:
  description: The bridge as the kernel reports it after the run; null when absent.
  returned: always
  type: dict
  sample: {"name": "br0", "addresses": ["10.10.0.1/24"], "mtu": 1500, "operstate": "UP",
           "ports": ["veth1-br", "veth2-br"]}
commands:
  description: The hand commands the plan stands for, in order.
  returned: always
  type: list
  elements: str
  sample: ["ip link add br0 type bridge", "ip link set br0 alias handbuilt.containers",
           "ip link set br0 up", "ip addr add 10.10.0.1/24 broadcast + dev br0"]
adopted:
  description: True when an existing bridge without the collection's mark was adopted.
  returned: when adopted
  type: bool
"""

from ansible.module_utils.basic import AnsibleModule

from ansible_collections.handbuilt.containers.plugins.module_utils.netmodel import (
    Bridge,
    run_net_module,
)
from ansible_collections.handbuilt.containers.plugins.module_utils.resource import COMMON_ARGS


def main():
    module = AnsibleModule(
        argument_spec=dict(
            COMMON_ARGS,
            name=dict(type="str", required=True),
            state=dict(type="str", default="present", choices=["present", "absent"]),
            addresses=dict(type="list", elements="str"),
            mtu=dict(type="int"),
            force=dict(type="bool", default=False),
        ),
        supports_check_mode=True,
    )
    run_net_module(module, lambda netlink, p: Bridge(
        netlink, p["name"], state=p["state"], addresses=p["addresses"], mtu=p["mtu"],
        force=p["force"]))


if __name__ == "__main__":
    main()
