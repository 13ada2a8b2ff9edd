#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright: handbuilt.containers contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import annotations

DOCUMENTATION = r"""
module: masquerade
short_description: NAT a container subnet to the outside (the seed's MASQUERADE rule), on nftables or iptables
version_added: 0.1.0
description:
  - Does what the seed lab Q8 does by hand - C(sysctl -w net.ipv4.ip_forward=1) and
    C(iptables -t nat -A POSTROUTING -s 10.10.0.0/24 ! -o br0 -j MASQUERADE) - idempotently,
    and also lets the subnet through a FORWARD chain that drops (policy DROP, as on Docker hosts).
  - "Ownership: with nftables every rule lives in the collection's own table C(inet handbuilt);
    with iptables in the collection's own chains C(HANDBUILT-POSTROUTING) (nat) and
    C(HANDBUILT-FORWARD) (filter), entered from the built-in chains by one jump rule commented
    C(handbuilt.containers). Each rule carries the comment
    C(handbuilt.containers/masquerade/<name>/<digest>): many masquerade and port_forward resources
    share the table, and each one converges or removes only its own rules. Rules of anyone else are
    never flushed, reordered or deleted; when the last rule of a chain (or table) goes, the chain
    (or table) goes too."
  - A firewall reload that wiped the rules (C(nft flush ruleset), C(firewall-cmd --reload)) is
    repaired by the next run.
  - "FORWARD acceptance: with iptables, C(HANDBUILT-FORWARD) is jumped to first in
    C(filter FORWARD) and accepts traffic from the subnet and replies to it. With nftables an
    accept in the collection's table cannot override a drop in another table's chain on the same
    hook, so the accept rules are put where the drop is - into C(HANDBUILT-FORWARD) of each
    iptables flavour (nf_tables or legacy) whose C(filter FORWARD) drops. A native nftables chain
    of another table with policy drop on the forward hook is reported as a warning. A drop set
    up after this run (a later Docker start) is handled by the next run."
  - With iptables, the flavour in use is detected (C(iptables -V), and where rules already live)
    and legacy and nf_tables are never mixed.
  - All nftables steps of a run are applied as one C(nft -f -) transaction, and iptables steps as
    one C(iptables-restore --noflush) commit per table.
options:
  source:
    description: The subnet to masquerade, for example C(10.10.0.0/24) (IPv4, host bits zero).
    type: str
    required: true
  name:
    description:
      - Identity of this masquerade, written into each rule's comment (1-48 letters, digits, C(.),
        C(_), C(-)).
      - Defaults to O(source) with C(/) replaced by C(-), for example C(10.10.0.0-24).
    type: str
  exclude_interface:
    description:
      - Traffic leaving through this interface is not masqueraded (the seed's C(! -o br0)), so
        containers on the same bridge keep seeing each other's real addresses.
    type: str
    aliases: [bridge]
  forward_accept:
    description: Accept the subnet's forwarded traffic (and replies to it) where FORWARD drops.
    type: bool
    default: true
  ip_forward:
    description:
      - Set C(net.ipv4.ip_forward=1). The value found before is remembered under O(state_dir); it
        is restored by O(state=absent) (or O(ip_forward=false)) only if the collection changed it
        and no other masquerade or port_forward of the collection still needs it.
    type: bool
    default: true
  backend:
    description:
      - C(auto) uses nftables where C(nft) works, else iptables.
      - Requesting a backend whose command is missing fails and names the package to install
        (C(nftables) or C(iptables)).
      - Switching the backend of an existing resource leaves its rules in the old backend; remove
        it (O(state=absent)) with the old backend first.
    type: str
    choices: [auto, nftables, iptables]
    default: auto
  state:
    description: Whether the rules (and the ip_forward claim) exist.
    type: str
    choices: [present, absent]
    default: present
extends_documentation_fragment:
  - handbuilt.containers.common
requirements:
  - nftables (C(nft)) or iptables (C(iptables), C(iptables-restore), C(iptables-save)) on the target
notes:
  - IPv4 only for now.
author:
  - handbuilt.containers developers (!UNKNOWN)
"""

EXAMPLES = r"""
- name: Let 10.10.0.0/24 reach the internet through the host (seed lab Q8)
  handbuilt.containers.masquerade:
    source: 10.10.0.0/24
    exclude_interface: br0

- name: Same with iptables (legacy or nf_tables, whichever the host uses)
  handbuilt.containers.masquerade:
    source: 10.10.0.0/24
    exclude_interface: br0
    backend: iptables

- name: Remove it; ip_forward goes back to what it was if the collection changed it
  handbuilt.containers.masquerade:
    source: 10.10.0.0/24
    state: absent
"""

RETURN = r"""
backend:
  description: The backend used, C(nftables) or C(iptables).
  returned: always
  type: str
  sample: nftables
iptables_variant:
  description: The iptables flavour used (C(nf_tables) or C(legacy)); null with nftables.
  returned: always
  type: str
rules:
  description: This resource's rules as installed after the run, one string each (where, then rule).
  returned: always
  type: list
  elements: str
  sample: ['nft inet handbuilt postrouting: ip saddr 10.10.0.0/24 oifname != "br0" masquerade']
sysctl:
  description: The sysctls this resource holds, with their current values.
  returned: always
  type: dict
  sample: {"net.ipv4.ip_forward": "1"}
source:
  description: The masqueraded subnet.
  returned: always
  type: str
name:
  description: The identity written into the rule comments.
  returned: always
  type: str
commands:
  description: The hand commands the plan stands for, in order.
  returned: always
  type: list
  elements: str
  sample: ["nft add table inet handbuilt", "sysctl -w net.ipv4.ip_forward=1"]
"""

from ansible.module_utils.basic import AnsibleModule

from ansible_collections.handbuilt.containers.plugins.module_utils.firewall import (
    Masquerade,
    run_firewall_module,
)
from ansible_collections.handbuilt.containers.plugins.module_utils.resource import COMMON_ARGS


def main():
    module = AnsibleModule(
        argument_spec=dict(
            COMMON_ARGS,
            source=dict(type="str", required=True),
            name=dict(type="str"),
            exclude_interface=dict(type="str", aliases=["bridge"]),
            forward_accept=dict(type="bool", default=True),
            ip_forward=dict(type="bool", default=True),
            backend=dict(type="str", default="auto", choices=["auto", "nftables", "iptables"]),
            state=dict(type="str", default="present", choices=["present", "absent"]),
        ),
        supports_check_mode=True,
    )
    run_firewall_module(module, lambda p, host: Masquerade(
        p["source"], name=p["name"], exclude_interface=p["exclude_interface"],
        forward_accept=p["forward_accept"], ip_forward=p["ip_forward"], backend=p["backend"],
        state=p["state"], state_dir=p["state_dir"], check_mode=module.check_mode, host=host))


if __name__ == "__main__":
    main()
