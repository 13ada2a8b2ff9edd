# -*- coding: utf-8 -*-
# Copyright: handbuilt.containers contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Many containers in one module call, through the same models.

An Ansible task costs ~0.3 s; a container's kernel work ~5-20 ms. So the roles
converge the whole declared set in one call: the stack expands each container
into the primitives' resources (netns, veth, ...) and converges them in order,
sharing one Netlink (one socket per namespace, no forks).
"""

from __future__ import annotations

import ipaddress
import os

from ansible_collections.handbuilt.containers.plugins.module_utils import validate
from ansible_collections.handbuilt.containers.plugins.module_utils.netmodel import Netns, Veth
from ansible_collections.handbuilt.containers.plugins.module_utils.plan import Op, PlanError, apply_plan
from ansible_collections.handbuilt.containers.plugins.module_utils.resource import remove_file

CONTAINER_NAME_MAX = 12  # "hb-" + name must fit an interface name (15 bytes)
PEER_NAME = "eth0"


def validate_containers(containers, subnet, gateway):
    """Check the whole declaration before anything changes."""
    names, addresses = set(), {}
    for index, spec in enumerate(containers):
        where = "containers[%d]" % index
        name = spec.get("name")
        validate.nsname(where + ".name", name)
        if len(name.encode()) > CONTAINER_NAME_MAX:
            raise validate.InvalidInput(where + ".name", "%r is longer than %d bytes (it names the "
                                        "host end of the veth, hb-%s)" % (name, CONTAINER_NAME_MAX, name))
        if name in names:
            raise validate.InvalidInput(where + ".name", "%r is declared twice" % name)
        names.add(name)
        if spec.get("veth"):
            validate.ifname(where + ".veth", spec["veth"])
        address = spec.get("address")
        if address:
            try:
                ip = ipaddress.ip_address(str(address).split("/")[0])
            except ValueError:
                raise validate.InvalidInput(where + ".address", "%r is not an IP address" % (address,))
            if ip not in subnet or ip in (subnet.network_address, subnet.broadcast_address):
                raise validate.InvalidInput(where + ".address", "%s is not a host address of the subnet %s"
                                            % (ip, subnet))
            if ip == gateway:
                raise validate.InvalidInput(where + ".address", "%s is the gateway's address" % ip)
            if ip in addresses:
                raise validate.InvalidInput(where + ".address", "%s is also the address of %s"
                                            % (ip, addresses[ip]))
            addresses[ip] = name


class Ipam:
    """Host-local address allocation, like CNI's host-local plugin.

    A container keeps its address across runs: each allocation is a file
    ``<state_dir>/ipam/<bridge>/<container>`` holding the address.
    """

    def __init__(self, state_dir, bridge, subnet, gateway):
        self.state_dir = state_dir
        self.dir = os.path.join(state_dir, "ipam", bridge)
        self.subnet, self.gateway = subnet, gateway
        self.records = {}
        if os.path.isdir(self.dir):
            for name in os.listdir(self.dir):
                with open(os.path.join(self.dir, name)) as fh:
                    self.records[name] = ipaddress.ip_address(fh.read().strip())

    def assign(self, containers):
        """The address of every container, and the Ops recording new ones."""
        taken = {ip: name for name, ip in self.records.items()}
        wanted = {}
        for spec in containers:
            if spec.get("address"):
                ip = ipaddress.ip_address(str(spec["address"]).split("/")[0])
                holder = taken.get(ip)
                if holder is not None and holder != spec["name"] and holder not in \
                        [c["name"] for c in containers if not c.get("address")]:
                    raise PlanError("containers: %s is already allocated to container %s"
                                    % (ip, holder))
                wanted[spec["name"]] = ip
        used = set(wanted.values()) | {self.gateway}
        for spec in containers:
            name = spec["name"]
            if name in wanted:
                continue
            ip = self.records.get(name)
            if ip is None or ip not in self.subnet or ip in used:
                ip = next((h for h in self.subnet.hosts()
                           if h not in used and h not in taken), None)
                if ip is None:
                    raise PlanError("containers: subnet %s has no free address for %s"
                                    % (self.subnet, name))
            wanted[name] = ip
            used.add(ip)
        ops = [self.record_op(name, ip) for name, ip in wanted.items()
               if self.records.get(name) != ip]
        return wanted, ops

    def path(self, name):
        return os.path.join(self.dir, name)

    def record_op(self, name, ip):
        def write():
            os.makedirs(self.dir, 0o755, exist_ok=True)
            with open(self.path(name), "w") as fh:
                fh.write("%s\n" % ip)
        return Op("echo %s > %s" % (ip, self.path(name)), write)

    def release_op(self, name):
        if name not in self.records:
            return None
        return Op("rm -f %s" % self.path(name), remove_file, self.path(name), self.state_dir)


class Stack:
    """Every declared container's primitives, converged in one call."""

    def __init__(self, netlink, containers, bridge, subnet, gateway=None, state="present",
                 mtu=None, state_dir="/run/handbuilt", force=False, check_mode=False):
        self.nl = netlink
        self.bridge = validate.ifname("bridge", bridge)
        self.subnet = validate.network("subnet", subnet)
        self.gateway = ipaddress.ip_address(gateway) if gateway else next(self.subnet.hosts())
        if self.gateway not in self.subnet:
            raise validate.InvalidInput("gateway", "%s is outside the subnet %s" % (self.gateway, self.subnet))
        validate.mtu("mtu", mtu)
        validate_containers(containers, self.subnet, self.gateway)
        self.containers = containers
        self.state, self.mtu, self.force = state, mtu, force
        self.state_dir, self.check_mode = state_dir, check_mode
        self.ipam = Ipam(state_dir, self.bridge, self.subnet, self.gateway)
        self.warnings = []

    def resources(self, name, address):
        """The primitives of one container, in the order they are built."""
        spec = next(c for c in self.containers if c["name"] == name)
        common = dict(state=self.state, force=self.force)
        netns = Netns(self.nl, name, state_dir=self.state_dir, **common)
        veth = Veth(self.nl, spec.get("veth") or "hb-" + name, PEER_NAME, netns=name,
                    bridge=self.bridge,
                    addresses=["%s/%d" % (address, self.subnet.prefixlen)] if address else None,
                    gateway=str(self.gateway) if address else None, mtu=self.mtu,
                    check_mode=self.check_mode, **common)
        return [("netns", netns), ("veth", veth)]

    def converge(self, check_mode):
        assert check_mode == self.check_mode
        results, commands, diffs = {}, [], []
        if self.state == "present":
            addresses, ipam_ops = self.ipam.assign(self.containers)
            commands += apply_plan(ipam_ops, self.check_mode)
        else:
            addresses = {c["name"]: None for c in self.containers}
        for spec in self.containers:
            name = spec["name"]
            parts = self.resources(name, addresses[name])
            if self.state == "absent":
                parts.reverse()
            entry = {"changed": False, "commands": []}
            if addresses[name] is not None:
                entry["address"] = str(addresses[name])
            for kind, resource in parts:
                result = resource.converge(self.check_mode)
                self.warnings += ["%s: %s" % (name, w) for w in resource.warnings]
                entry[kind] = {k: v for k, v in result.items() if k not in ("diff", "commands")}
                if result["changed"]:
                    entry["changed"] = True
                    entry["commands"] += result["commands"]
                    diffs.append(dict(result["diff"], before_header="%s %s" % (kind, name),
                                      after_header="%s %s" % (kind, name)))
            if self.state == "absent":
                release = self.ipam.release_op(name)
                if release is not None:
                    entry["commands"] += apply_plan([release], self.check_mode)
                    entry["changed"] = True
            commands += entry["commands"]
            results[name] = entry
        return dict(changed=bool(commands), commands=commands, containers=results, diff=diffs,
                    gateway=str(self.gateway), subnet=str(self.subnet))
