#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright: handbuilt.containers contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import annotations

DOCUMENTATION = r"""
module: compose
short_description: Converge many containers' primitives in one call
version_added: 0.1.0
description:
  - Expands every declared container into the collection's primitives and converges them all in
    one module call, through the same models as the single-resource modules (M(handbuilt.containers.netns),
    M(handbuilt.containers.veth)).
  - One Ansible task costs about 0.3 s while a container's kernel work costs 5-20 ms, so the roles
    use this module rather than one task per container per primitive.
  - Each container gets a network namespace named after it, a veth pair C(hb-<name>) (host end,
    on O(bridge)) / C(eth0) (inside), an address from O(subnet) and a default route via
    O(gateway).
  - Addresses not given are allocated from O(subnet) and recorded under
    C(<state_dir>/ipam/<bridge>/), so a container keeps its address across runs.
  - The whole declaration is validated before anything changes (duplicate names or addresses,
    addresses outside the subnet).
options:
  containers:
    description: The containers.
    type: list
    elements: dict
    required: true
    suboptions:
      name:
        description: Container name (at most 12 bytes); also the name of its network namespace.
        type: str
        required: true
      address:
        description: Address in O(subnet); allocated automatically when omitted.
        type: str
      veth:
        description: Host end of the veth pair (default C(hb-<name>)).
        type: str
  bridge:
    description: Bridge the containers are plugged into (created by M(handbuilt.containers.bridge)).
    type: str
    required: true
  subnet:
    description: The bridge's subnet, for example C(10.10.0.0/24).
    type: str
    required: true
  gateway:
    description: The containers' default gateway (the bridge's address); default the subnet's first host.
    type: str
  mtu:
    description: MTU of the veth pairs.
    type: int
  state:
    description: Whether the containers' primitives exist. V(absent) removes them in reverse order.
    type: str
    choices: [present, absent]
    default: present
extends_documentation_fragment:
  - handbuilt.containers.common
  - handbuilt.containers.common.NETLINK
  - handbuilt.containers.common.FORCE
author:
  - handbuilt.containers developers
"""

EXAMPLES = r"""
- name: Two containers on br0, the seed's net1 and net2 in one task
  handbuilt.containers.compose:
    bridge: br0
    subnet: 10.10.0.0/24
    containers:
      - name: net1
        address: 10.10.0.2
      - name: net2
"""

RETURN = r"""
containers:
  description: Per container - its address, whether it changed, its commands and each primitive's result.
  returned: always
  type: dict
  sample: {"net1": {"address": "10.10.0.2", "changed": true,
                    "commands": ["ip netns add net1", "..."], "netns": {}, "veth": {}}}
commands:
  description: Every hand command of the plan, in order.
  returned: always
  type: list
  elements: str
gateway:
  description: The containers' gateway.
  returned: always
  type: str
  sample: 10.10.0.1
subnet:
  description: The subnet.
  returned: always
  type: str
  sample: 10.10.0.0/24
"""

from ansible.module_utils.basic import AnsibleModule

from ansible_collections.handbuilt.containers.plugins.module_utils.compose import Stack
from ansible_collections.handbuilt.containers.plugins.module_utils.netmodel import run_net_module
from ansible_collections.handbuilt.containers.plugins.module_utils.resource import COMMON_ARGS


def main():
    module = AnsibleModule(
        argument_spec=dict(
            COMMON_ARGS,
            containers=dict(type="list", elements="dict", required=True, options=dict(
                name=dict(type="str", required=True),
                address=dict(type="str"),
                veth=dict(type="str"),
            )),
            bridge=dict(type="str", required=True),
            subnet=dict(type="str", required=True),
            gateway=dict(type="str"),
            mtu=dict(type="int"),
            state=dict(type="str", default="present", choices=["present", "absent"]),
            force=dict(type="bool", default=False),
        ),
        supports_check_mode=True,
    )
    run_net_module(module, lambda netlink, p: Stack(
        netlink, p["containers"], p["bridge"], p["subnet"], gateway=p["gateway"],
        state=p["state"], mtu=p["mtu"], state_dir=p["state_dir"], force=p["force"],
        check_mode=module.check_mode))


if __name__ == "__main__":
    main()
