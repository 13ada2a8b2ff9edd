#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright: handbuilt.containers contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import annotations

DOCUMENTATION = r"""
module: port_forward
short_description: Publish container ports on the host (Docker's C(-p 8080:80)), on nftables or iptables
version_added: 0.1.0
description:
  - Forwards a host port to a container C(address:port), from other hosts and from the host
    itself, the three paths Docker's C(-p) sets up.
  - "From outside: DNAT in prerouting for packets to a local address (or O(host_address))."
  - "From the host (O(localhost=true)): the same DNAT in output, C(route_localnet=1) on the
    interface that leads to the container so C(127.0.0.1:8080) works, and masquerade of that
    traffic. A rule in the collection's input chain drops anything else arriving on that interface
    for C(127.0.0.0/8) (new connections not DNATed), the guard kube-proxy adds for CVE-2020-8558."
  - "Hairpin: a container reaching a published port (its own or a neighbour's on the same bridge)
    is masqueraded, so replies come back through the host."
  - Forwarded traffic to and from the destination port is accepted where FORWARD drops, as in
    M(handbuilt.containers.masquerade).
  - One resource O(name) owns a set of mappings - one (O(host_port), O(destination)) or a list
    O(ports) - and converges exactly that set; mappings it no longer lists are removed. One task
    per container with all its ports is one nft transaction, whatever the number of ports.
  - Ownership, backends, comments and repair after a firewall reload work as in
    M(handbuilt.containers.masquerade); rule comments are
    C(handbuilt.containers/port_forward/<name>/<digest>).
options:
  name:
    description: Identity of this set of mappings (1-48 letters, digits, C(.), C(_), C(-)), e.g. the container's name.
    type: str
    required: true
  host_port:
    description: Host port to publish (1-65535). Use either this with O(destination), or O(ports).
    type: int
  host_address:
    description: Only forward packets sent to this host address. Omit for every local address.
    type: str
  destination:
    description: Where to forward, C(container-address:port), for example C(10.10.0.2:80).
    type: str
  protocol:
    description: Protocol of O(host_port).
    type: str
    choices: [tcp, udp]
    default: tcp
  ports:
    description: Several mappings at once (exclusive with O(host_port), O(host_address), O(destination)).
    type: list
    elements: dict
    suboptions:
      host_port:
        description: Host port (1-65535).
        type: int
        required: true
      host_address:
        description: Only for packets sent to this host address.
        type: str
      destination:
        description: C(address:port) to forward to.
        type: str
        required: true
      protocol:
        description: C(tcp) or C(udp).
        type: str
        choices: [tcp, udp]
        default: tcp
  localhost:
    description:
      - Also publish to the host itself, including C(127.0.0.1) (OUTPUT DNAT, C(route_localnet)
        on the destination's interface, masquerade). The destination must be routable (its bridge
        exists) when this is true.
    type: bool
    default: true
  ip_forward:
    description:
      - Set C(net.ipv4.ip_forward=1), remembered and restored like
        M(handbuilt.containers.masquerade) does.
    type: bool
    default: true
  backend:
    description: C(auto) uses nftables where C(nft) works, else iptables; a missing one fails naming its package.
    type: str
    choices: [auto, nftables, iptables]
    default: auto
  state:
    description: Whether the mappings exist. O(state=absent) needs only O(name).
    type: str
    choices: [present, absent]
    default: present
extends_documentation_fragment:
  - handbuilt.containers.common
requirements:
  - nftables (C(nft)) or iptables (C(iptables), C(iptables-restore), C(iptables-save)) on the target
  - iproute2 (C(ip)) to find the destination's interface
notes:
  - IPv4 only for now.
  - Two resources publishing the same host port are not detected; the first rule wins.
author:
  - handbuilt.containers developers (!UNKNOWN)
"""

EXAMPLES = r"""
- name: Publish container port 80 on host port 8080 (docker run -p 8080:80)
  handbuilt.containers.port_forward:
    name: web
    host_port: 8080
    destination: 10.10.0.2:80

- name: All ports of one container in one transaction
  handbuilt.containers.port_forward:
    name: dns
    ports:
      - {host_port: 5353, destination: "10.10.0.3:53", protocol: udp}
      - {host_port: 5353, destination: "10.10.0.3:53", protocol: tcp}
      - {host_port: 9100, host_address: 192.168.1.10, destination: "10.10.0.3:9100"}

- name: Unpublish
  handbuilt.containers.port_forward:
    name: web
    state: absent
"""

RETURN = r"""
backend:
  description: The backend used, C(nftables) or C(iptables).
  returned: always
  type: str
iptables_variant:
  description: The iptables flavour used (C(nf_tables) or C(legacy)); null with nftables.
  returned: always
  type: str
rules:
  description: This resource's rules as installed after the run.
  returned: always
  type: list
  elements: str
  sample: ["nft inet handbuilt prerouting: fib daddr type local tcp dport 8080 dnat ip to 10.10.0.2:80"]
sysctl:
  description: The sysctls this resource holds, with their values.
  returned: always
  type: dict
  sample: {"net.ipv4.ip_forward": "1", "net.ipv4.conf.br0.route_localnet": "1"}
ports:
  description: The mappings as declared, normalised.
  returned: always
  type: list
  elements: dict
  sample: [{"protocol": "tcp", "host_address": null, "host_port": 8080, "destination": "10.10.0.2:80"}]
name:
  description: The identity written into the rule comments.
  returned: always
  type: str
commands:
  description: The hand commands the plan stands for, in order.
  returned: always
  type: list
  elements: str
"""

from ansible.module_utils.basic import AnsibleModule

from ansible_collections.handbuilt.containers.plugins.module_utils.firewall import (
    PortForward,
    run_firewall_module,
)
from ansible_collections.handbuilt.containers.plugins.module_utils.resource import COMMON_ARGS

PORT_OPTIONS = dict(
    host_port=dict(type="int", required=True),
    host_address=dict(type="str"),
    destination=dict(type="str", required=True),
    protocol=dict(type="str", default="tcp", choices=["tcp", "udp"]),
)


def build(module, p, host):
    if p["ports"] is not None:
        ports, listed = p["ports"], True
    elif p["host_port"] is not None or p["destination"] is not None:
        ports, listed = [dict(host_port=p["host_port"], host_address=p["host_address"],
                              destination=p["destination"], protocol=p["protocol"])], False
    else:
        ports, listed = [], False
    return PortForward(p["name"], ports, localhost=p["localhost"], listed=listed,
                       ip_forward=p["ip_forward"], backend=p["backend"], state=p["state"],
                       state_dir=p["state_dir"], check_mode=module.check_mode, host=host)


def main():
    module = AnsibleModule(
        argument_spec=dict(
            COMMON_ARGS,
            name=dict(type="str", required=True),
            host_port=dict(type="int"),
            host_address=dict(type="str"),
            destination=dict(type="str"),
            protocol=dict(type="str", default="tcp", choices=["tcp", "udp"]),
            ports=dict(type="list", elements="dict", options=PORT_OPTIONS),
            localhost=dict(type="bool", default=True),
            ip_forward=dict(type="bool", default=True),
            backend=dict(type="str", default="auto", choices=["auto", "nftables", "iptables"]),
            state=dict(type="str", default="present", choices=["present", "absent"]),
        ),
        mutually_exclusive=[("ports", "host_port"), ("ports", "destination"),
                            ("ports", "host_address")],
        supports_check_mode=True,
    )
    run_firewall_module(module, lambda p, host: build(module, p, host))


if __name__ == "__main__":
    main()
