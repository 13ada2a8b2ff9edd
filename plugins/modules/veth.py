#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright: handbuilt.containers contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import annotations

DOCUMENTATION = r"""
module: veth
short_description: Manage a veth pair, a virtual cable from a bridge into a namespace
version_added: 0.1.0
description:
  - Wires one veth pair the way the seed labs do by hand, converging whatever already exists
    into the declared state in one run.
  - The host end O(name) sits in the host namespace, optionally enslaved to O(bridge); the peer
    end O(peer) lives in O(netns) with O(addresses) and a default route via O(gateway). Both ends
    are brought up.
  - Half-built states converge - a host end that is down or not enslaved (the seed's "dangling
    cable"), a peer still in the host namespace, wrong or extra addresses, a missing or wrong
    default route. A pair whose other end is renamed or in another namespace is re-created.
  - Both ends carry the ifalias C(handbuilt.containers). An unmarked pair is adopted by
    O(state=present) (with a warning) and only deleted by O(state=absent) when O(force=true).
  - In check mode a missing O(bridge) or O(netns) is a warning (an earlier task of the play would
    create it); in a real run it is an error.
options:
  name:
    description: Host end of the pair, for example C(veth1-br) (at most 15 bytes).
    type: str
    required: true
  peer:
    description: The other end, for example C(veth1); required with O(state=present).
    type: str
  netns:
    description: Network namespace the peer end lives in. Omit to keep both ends in the host.
    type: str
  bridge:
    description: Bridge the host end is enslaved to. Omit to leave the host end's master alone.
    type: str
  addresses:
    description:
      - Addresses of the peer end in CIDR notation; the list is exact (others are removed).
      - Omit to leave the peer's addresses alone.
    type: list
    elements: str
  gateway:
    description:
      - Default route inside O(netns) via this address; it must lie in one of O(addresses)'
        subnets. Requires O(netns).
    type: str
  mtu:
    description: MTU of both ends (68-65535). Omit to leave it alone.
    type: int
  hairpin:
    description:
      - Hairpin mode of the host end's bridge port, so traffic can leave the port it came in on
        (a container reaching its own published port, as Docker sets it). Needs O(bridge).
      - Omit to leave it alone.
    type: bool
  state:
    description: Whether the pair exists. Deleting the host end deletes the peer with it.
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
- name: Plug net1 into br0 as 10.10.0.2 (seed lab Q5)
  handbuilt.containers.veth:
    name: veth1-br
    peer: veth1
    netns: net1
    bridge: br0
    addresses: [10.10.0.2/24]
    gateway: 10.10.0.1

- name: Fix the seed's dangling cable (lab Q7) - the host end gets enslaved and brought up
  handbuilt.containers.veth:
    name: veth3-br
    peer: veth3
    netns: net3
    bridge: br0
    addresses: [10.10.0.4/24]
    gateway: 10.10.0.1

- name: Unplug it
  handbuilt.containers.veth:
    name: veth1-br
    state: absent
"""

RETURN = r"""
veth:
  description: The pair as the kernel reports it after the run; null when absent.
  returned: always
  type: dict
  sample: {"name": "veth1-br", "peer": "veth1", "peer_netns": "net1", "bridge": "br0",
           "up": true, "peer_up": true, "mtu": 1500, "peer_mtu": 1500,
           "addresses": ["10.10.0.2/24"], "gateway": "10.10.0.1", "owned": true}
commands:
  description: The hand commands the plan stands for, in order.
  returned: always
  type: list
  elements: str
  sample: ["ip link set veth3-br master br0", "ip link set veth3-br up"]
adopted:
  description: True when an existing pair without the collection's mark was adopted.
  returned: when adopted
  type: bool
"""

from ansible.module_utils.basic import AnsibleModule

from ansible_collections.handbuilt.containers.plugins.module_utils.netmodel import (
    Veth,
    run_net_module,
)
from ansible_collections.handbuilt.containers.plugins.module_utils.resource import COMMON_ARGS


def main():
    module = AnsibleModule(
        argument_spec=dict(
            COMMON_ARGS,
            name=dict(type="str", required=True),
            peer=dict(type="str"),
            netns=dict(type="str"),
            bridge=dict(type="str"),
            addresses=dict(type="list", elements="str"),
            gateway=dict(type="str"),
            mtu=dict(type="int"),
            hairpin=dict(type="bool"),
            state=dict(type="str", default="present", choices=["present", "absent"]),
            force=dict(type="bool", default=False),
        ),
        required_if=[("state", "present", ["peer"])],
        supports_check_mode=True,
    )
    run_net_module(module, lambda netlink, p: Veth(
        netlink, p["name"], p["peer"] or p["name"], state=p["state"], netns=p["netns"],
        bridge=p["bridge"], addresses=p["addresses"], gateway=p["gateway"], mtu=p["mtu"],
        hairpin=p["hairpin"],
        force=p["force"], check_mode=module.check_mode))


if __name__ == "__main__":
    main()
