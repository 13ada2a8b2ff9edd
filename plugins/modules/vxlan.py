#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright: handbuilt.containers contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import annotations

DOCUMENTATION = r"""
module: vxlan
short_description: Manage a VXLAN device that joins this host's container bridge to other hosts'
version_added: 0.1.0
description:
  - Creates a VXLAN device (C(ip link add vx0 type vxlan id 42 local 10.99.0.11 dstport 4789 dev
    eth1)), enslaves it to O(bridge) and brings it up, so containers on several hosts share one
    layer-2 segment over the hosts' own network.
  - Broadcast and unknown traffic reach every host in O(remotes) by head-end replication (one
    all-zeros FDB entry per remote, C(bridge fdb append 00:00:00:00:00:00 dev vx0 dst REMOTE)); no
    multicast is needed on the underlay. The remotes list is exact.
  - VXLAN costs 50 bytes per packet - set O(mtu) (and the bridge's and veths' MTU) to the underlay's
    MTU minus 50, for example 1450 on a 1500 link.
  - A device whose O(vni), O(local), O(port) or O(dev) differ is re-created (the kernel cannot
    change them). Ownership works as for M(handbuilt.containers.bridge) (ifalias mark, O(force)).
options:
  name:
    description: Name of the VXLAN device (at most 15 bytes).
    type: str
    required: true
  vni:
    description: VXLAN network identifier (1-16777215), the same on every host of the fabric.
    type: int
  local:
    description: This host's underlay address (the source of the encapsulated packets).
    type: str
  dev:
    description: Underlay interface, for example C(eth1).
    type: str
  port:
    description: UDP destination port.
    type: int
    default: 4789
  remotes:
    description: Underlay addresses of the other hosts of the fabric.
    type: list
    elements: str
    default: []
  bridge:
    description: Bridge the VXLAN device is enslaved to (the containers' bridge).
    type: str
  mtu:
    description: MTU of the device (68-65535).
    type: int
  state:
    description: Whether the device exists.
    type: str
    choices: [present, absent]
    default: present
extends_documentation_fragment:
  - handbuilt.containers.common
  - handbuilt.containers.common.NETLINK
  - handbuilt.containers.common.FORCE
author:
  - handbuilt.containers developers (!UNKNOWN)
"""

EXAMPLES = r"""
- name: Join br0 of vm1 to vm2 and vm3 over eth1
  handbuilt.containers.vxlan:
    name: hbvx0
    vni: 42
    local: 10.99.0.11
    dev: eth1
    remotes: [10.99.0.12, 10.99.0.13]
    bridge: br0
    mtu: 1450
"""

RETURN = r"""
vxlan:
  description: The device as the kernel reports it after the run; null when absent.
  returned: always
  type: dict
  sample: {"name": "hbvx0", "vni": 42, "local": "10.99.0.11", "port": 4789, "dev": "eth1",
           "bridge": "br0", "mtu": 1450, "up": true, "remotes": ["10.99.0.12"], "owned": true}
commands:
  description: The hand commands the plan stands for, in order.
  returned: always
  type: list
  elements: str
"""

from ansible.module_utils.basic import AnsibleModule

from ansible_collections.handbuilt.containers.plugins.module_utils.netmodel import (
    Vxlan,
    run_net_module,
)
from ansible_collections.handbuilt.containers.plugins.module_utils.resource import COMMON_ARGS


def main():
    module = AnsibleModule(
        argument_spec=dict(
            COMMON_ARGS,
            name=dict(type="str", required=True),
            vni=dict(type="int"),
            local=dict(type="str"),
            dev=dict(type="str"),
            port=dict(type="int", default=4789),
            remotes=dict(type="list", elements="str", default=[]),
            bridge=dict(type="str"),
            mtu=dict(type="int"),
            state=dict(type="str", default="present", choices=["present", "absent"]),
            force=dict(type="bool", default=False),
        ),
        required_if=[("state", "present", ["vni", "local"])],
        supports_check_mode=True,
    )
    run_net_module(module, lambda netlink, p: Vxlan(
        netlink, p["name"], vni=p["vni"], state=p["state"], local=p["local"], dev=p["dev"],
        port=p["port"], remotes=p["remotes"], bridge=p["bridge"], mtu=p["mtu"], force=p["force"],
        check_mode=module.check_mode))


if __name__ == "__main__":
    main()
