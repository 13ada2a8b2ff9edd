#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright: handbuilt.containers contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import annotations

DOCUMENTATION = r"""
module: compose
short_description: Converge a host's whole stack - bridge, NAT, images, containers, ports - in one call
version_added: 0.1.0
description:
  - Converges everything one host runs in one module call, through the same models as the
    single-resource modules, in this order - the bridge with the gateway address
    (M(handbuilt.containers.bridge)), its NAT (M(handbuilt.containers.masquerade), with
    O(masquerade)), the O(images) (M(handbuilt.containers.image)), every container's primitives,
    then the published ports. O(state=absent) removes them in reverse order, then the stack's
    directories once they are empty.
  - One Ansible task costs about 0.3 s while a container's kernel work costs 5-20 ms, so the roles
    use this module rather than one task per primitive (docs/performance.md).
  - Each container gets a network namespace named after it, a veth pair C(hb-<name>) (host end,
    on O(bridge), hairpin mode on) / C(eth0) (inside), an address from O(subnet) and a default
    route via O(gateway).
  - A container with a C(command) also gets a cgroup C(<cgroup_parent>/<name>) with its limits
    (M(handbuilt.containers.cgroup)), an overlay root filesystem on its image under
    C(<data_dir>/containers/<name>/) (M(handbuilt.containers.overlay_mount)) and its process
    (M(handbuilt.containers.container)), in that order.
  - All published ports are one M(handbuilt.containers.port_forward) resource named
    C(compose-<bridge>), converged in one firewall transaction.
  - Changing one container's limits changes its cgroup only; a container is restarted only when
    its own process declaration changes.
  - Addresses not given are allocated from O(subnet) and recorded under
    C(<state_dir>/ipam/<bridge>/), so a container keeps its address across runs.
  - The whole declaration is validated before anything changes (duplicate names, addresses or
    published ports, addresses outside the subnet, bad limits), then the host is checked for the
    kernel features and cgroup controllers the declaration needs (as M(handbuilt.containers.host_info) does).
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
      command:
        description: The container's process as an argv list. Without it the container gets its network only.
        type: list
        elements: str
      image:
        description: Image whose C(current) rootfs is the overlay's lower layer.
        type: str
        default: busybox
      hostname:
        description: Hostname inside (default the name).
        type: str
      env:
        description: Environment of the process.
        type: dict
      workdir:
        description: Working directory inside.
        type: str
      memory:
        description: Memory limit (C(memory_max) of the cgroup), for example C(64M).
        type: str
      cpus:
        description: CPU limit in CPUs, for example C(0.5).
        type: float
      pids:
        description: Maximum number of processes.
        type: int
      ports:
        description: Published ports.
        type: list
        elements: dict
        suboptions:
          host:
            description: Host port.
            type: int
            required: true
          container:
            description: Container port.
            type: int
            required: true
          protocol:
            description: tcp or udp.
            type: str
            default: tcp
            choices: [tcp, udp]
          host_address:
            description: Publish on this host address only.
            type: str
      init:
        description: Run C(tini) as PID 1 with the command as its child (signals forwarded, zombies
          reaped, a quick stop), like C(docker run --init).
        type: bool
        default: true
      stop_timeout:
        description: Seconds between the stop signal and C(SIGKILL).
        type: int
        default: 5
  data_dir:
    description: Persistent data - images under C(images/), container layers under C(containers/).
    type: path
    default: /var/lib/handbuilt
  cgroup_parent:
    description: cgroup path, relative to each hierarchy root, holding the containers' cgroups.
    type: str
    default: handbuilt
  cgroup_relative_to_pid:
    description: Resolve O(cgroup_parent) beneath the cgroup of this process (tests nest their
      cgroups under their own this way).
    type: int
  firewall_backend:
    description: Backend of the published ports.
    type: str
    choices: [auto, nftables, iptables]
    default: auto
  bridge:
    description:
      - Bridge the containers are plugged into. Created (or adopted and marked) with the gateway's
        address; removed with O(state=absent).
    type: str
    required: true
  masquerade:
    description:
      - NAT the subnet to the outside (source NAT on every interface but O(bridge)), with
        C(net.ipv4.ip_forward) and forward acceptance - the resource M(handbuilt.containers.masquerade)
        makes for O(subnet). V(false) removes the stack's NAT if an earlier run made it.
    type: bool
    default: false
  images:
    description:
      - Root filesystem images, built before the containers under C(<data_dir>/images/<name>)
        (M(handbuilt.containers.image) documents each option). O(state=absent) removes the listed
        ones; leave an image out to keep it.
    type: list
    elements: dict
    default: []
    suboptions:
      name:
        description: Image name, referred to by a container's C(image).
        type: str
        required: true
      source:
        description: Where the root filesystem comes from.
        type: str
        choices: [busybox, tarball, debootstrap]
        default: busybox
      tarball:
        description: With V(tarball), a local path or an http(s) URL.
        type: str
        aliases: [url]
      checksum:
        description: With V(tarball), its checksum, for example C(sha256:<hex>).
        type: str
      init:
        description: With V(busybox), the init copied in as C(/sbin/tini) (default C(/usr/bin/tini) when present).
        type: path
      hostname:
        description: With V(busybox), the image's C(/etc/hostname).
        type: str
      nameservers:
        description: With V(busybox), the image's C(/etc/resolv.conf) nameservers (default the host's).
        type: list
        elements: str
      suite:
        description: With V(debootstrap), the Debian suite.
        type: str
      mirror:
        description: With V(debootstrap), the mirror URL (default the host's apt mirror).
        type: str
      variant:
        description: With V(debootstrap), its variant.
        type: str
      include:
        description: With V(debootstrap), extra packages.
        type: list
        elements: str
      prune:
        description: Remove the image's older versions once the new one is current.
        type: bool
      state:
        description: V(absent) removes this image while the stack stays.
        type: str
        choices: [present, absent]
        default: present
  subnet:
    description: The bridge's subnet, for example C(10.10.0.0/24).
    type: str
    required: true
  gateway:
    description: The containers' default gateway (the bridge's address); default the subnet's first host.
    type: str
  range:
    description:
      - Part of O(subnet) that automatic addresses come from, for example this host's
        C(10.10.1.0/24) of a fabric-wide C(10.10.0.0/16). Default the whole subnet.
    type: str
  mtu:
    description: MTU of the veth pairs.
    type: int
  state:
    description: Whether the stack exists. V(absent) removes it in reverse order.
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
- name: The demo - a bridge with NAT, a busybox image, a web server with a published port and limits, and a client
  handbuilt.containers.compose:
    bridge: br0
    subnet: 10.10.0.0/24
    masquerade: true
    images:
      - name: busybox
    containers:
      - name: web
        command: [/bin/sh, -c, "echo hello > /www/index.html && exec httpd -f -p 80 -h /www"]
        memory: 64M
        cpus: 0.5
        ports:
          - {host: 8080, container: 80}
      - name: client
        command: [/bin/sleep, "2147483647"]

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
  description:
    - Per container - its address, whether it changed, its commands and each primitive's result.
    - Live figures are left out, so a run that changes nothing reads no more than it must - the
      cgroup's statistics, the process's addresses, the cgroup files as the container sees them.
      M(handbuilt.containers.cgroup_info) and M(handbuilt.containers.container_info) report them.
  returned: always
  type: dict
  sample: {"net1": {"address": "10.10.0.2", "changed": true,
                    "commands": ["ip netns add net1", "..."], "netns": {}, "veth": {}}}
summary:
  description: One line per container - name, address, state, pid, limits, whether it changed.
  returned: always
  type: list
  elements: str
  sample: ["web: 10.10.0.2, running, pid 4242, memory 64M, cpus 0.5, pids 64, changed"]
bridge:
  description: The bridge's result, as M(handbuilt.containers.bridge) returns it.
  returned: always
  type: dict
masquerade:
  description: The NAT's result, as M(handbuilt.containers.masquerade) returns it; null when the stack has none.
  returned: always
  type: dict
images:
  description: Each image's result, as M(handbuilt.containers.image) returns it.
  returned: always
  type: dict
ports:
  description: The published ports' result, as M(handbuilt.containers.port_forward) returns it; null when none.
  returned: always
  type: dict
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
from ansible_collections.handbuilt.containers.plugins.module_utils.declaration import Network
from ansible_collections.handbuilt.containers.plugins.module_utils.netmodel import run_net_module
from ansible_collections.handbuilt.containers.plugins.module_utils.resource import COMMON_ARGS

PORT = dict(
    host=dict(type="int", required=True),
    container=dict(type="int", required=True),
    protocol=dict(type="str", default="tcp", choices=["tcp", "udp"]),
    host_address=dict(type="str"),
)
CONTAINER = dict(
    name=dict(type="str", required=True),
    address=dict(type="str"),
    veth=dict(type="str"),
    command=dict(type="list", elements="str"),
    image=dict(type="str", default="busybox"),
    hostname=dict(type="str"),
    env=dict(type="dict"),
    workdir=dict(type="str"),
    memory=dict(type="str"),
    cpus=dict(type="float"),
    pids=dict(type="int"),
    ports=dict(type="list", elements="dict", options=PORT),
    init=dict(type="bool", default=True),
    stop_timeout=dict(type="int", default=5),
)
IMAGE = dict(
    name=dict(type="str", required=True),
    source=dict(type="str", default="busybox", choices=["busybox", "tarball", "debootstrap"]),
    tarball=dict(type="str", aliases=["url"]),
    checksum=dict(type="str"),
    init=dict(type="path"),
    hostname=dict(type="str"),
    nameservers=dict(type="list", elements="str"),
    suite=dict(type="str"),
    mirror=dict(type="str"),
    variant=dict(type="str"),
    include=dict(type="list", elements="str"),
    prune=dict(type="bool"),
    state=dict(type="str", default="present", choices=["present", "absent"]),
)


def main():
    module = AnsibleModule(
        argument_spec=dict(
            COMMON_ARGS,
            containers=dict(type="list", elements="dict", required=True, options=CONTAINER),
            images=dict(type="list", elements="dict", default=[], options=IMAGE),
            data_dir=dict(type="path", default="/var/lib/handbuilt"),
            cgroup_parent=dict(type="str", default="handbuilt"),
            cgroup_relative_to_pid=dict(type="int"),
            firewall_backend=dict(type="str", default="auto", choices=["auto", "nftables", "iptables"]),
            bridge=dict(type="str", required=True),
            subnet=dict(type="str", required=True),
            gateway=dict(type="str"),
            range=dict(type="str"),
            mtu=dict(type="int"),
            masquerade=dict(type="bool", default=False),
            state=dict(type="str", default="present", choices=["present", "absent"]),
            force=dict(type="bool", default=False),
        ),
        supports_check_mode=True,
    )
    run_net_module(module, lambda netlink, p: Stack(
        netlink, p["containers"], Network(p["bridge"], p["subnet"], p["gateway"], p["range"], p["mtu"]),
        state=p["state"], images=p["images"], masquerade=p["masquerade"], state_dir=p["state_dir"],
        data_dir=p["data_dir"], cgroup_parent=p["cgroup_parent"],
        cgroup_relative_to_pid=p["cgroup_relative_to_pid"], firewall_backend=p["firewall_backend"],
        force=p["force"], check_mode=module.check_mode))


if __name__ == "__main__":
    main()
