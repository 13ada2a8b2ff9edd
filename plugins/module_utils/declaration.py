# -*- coding: utf-8 -*-
# Copyright: handbuilt.containers contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""A stack's declaration (network, images, containers), checked as a whole.

Pure logic, no host access: compose runs it before anything changes, and the
roles run it on the controller (filter handbuilt.containers.declaration_errors)
before any host is touched.
"""

from __future__ import annotations

import ipaddress

from ansible_collections.handbuilt.containers.plugins.module_utils import validate

CONTAINER_NAME_MAX = 12  # "hb-" + name must fit an interface name (15 bytes)


class Network:
    """The containers' bridge, subnet, gateway and the range automatic addresses come from."""

    def __init__(self, bridge, subnet, gateway=None, pool=None, mtu=None):
        self.bridge = validate.ifname("bridge", bridge)
        self.subnet = validate.network("subnet", subnet)
        if gateway:
            self.gateway = validate.address("gateway", gateway)
        else:
            self.gateway = next(self.subnet.hosts())
        if self.gateway not in self.subnet:
            raise validate.InvalidInput("gateway", "%s is outside the subnet %s" % (self.gateway, self.subnet))
        self.pool = validate.network("range", pool) if pool else None
        if self.pool is not None and not self.pool.subnet_of(self.subnet):
            raise validate.InvalidInput("range", "%s is not inside the subnet %s" % (self.pool, self.subnet))
        self.mtu = validate.mtu("mtu", mtu)

    @property
    def gateway_cidr(self):
        return "%s/%d" % (self.gateway, self.subnet.prefixlen)


def _container_address(where, value, net):
    try:
        ip = ipaddress.ip_address(str(value).partition("/")[0])
    except ValueError:
        raise validate.InvalidInput(where, "%r is not an IP address" % (value,))
    if ip not in net.subnet or ip in (net.subnet.network_address, net.subnet.broadcast_address):
        raise validate.InvalidInput(where, "%s is not a host address of the subnet %s" % (ip, net.subnet))
    if ip == net.gateway:
        raise validate.InvalidInput(where, "%s is the gateway's address" % ip)
    return ip


def _number(where, value, kind, minimum, what, above=False):
    """A number as Ansible's argument spec would convert it ("64" is 64): at least
    ``minimum``, or more than it with ``above``."""
    try:
        number = None if isinstance(value, bool) else kind(value)
    except (TypeError, ValueError):
        number = None
    if (number is None or number < minimum or (above and number == minimum)
            or (kind is int and float(value) != number)):
        raise validate.InvalidInput(where, "%r must be %s" % (value, what))
    return number


def _limits(where, spec):
    if spec.get("memory") is not None:
        validate.size(where + ".memory", spec["memory"])
    if spec.get("cpus") is not None:
        _number(where + ".cpus", spec["cpus"], float, 0, "a number of CPUs above 0", above=True)
    if spec.get("pids") is not None:
        _number(where + ".pids", spec["pids"], int, 1, "a whole number of processes, at least 1")


def check_containers(containers, net):
    """Names, addresses, veths, commands, limits and published ports of every container."""
    names, addresses, veths, published = set(), {}, {}, {}
    for index, spec in enumerate(containers):
        where = "containers[%d]" % index
        if not isinstance(spec, dict):
            raise validate.InvalidInput(where, "must be a dict with at least a name")
        name = spec.get("name")
        validate.nsname(where + ".name", name)
        if len(name.encode()) > CONTAINER_NAME_MAX:
            raise validate.InvalidInput(where + ".name", "%r is longer than %d bytes (it names the "
                                        "host end of the veth, hb-%s)" % (name, CONTAINER_NAME_MAX, name))
        if name in names:
            raise validate.InvalidInput(where + ".name", "%r is declared twice" % name)
        names.add(name)
        veth = spec.get("veth") or "hb-" + name
        validate.ifname(where + ".veth", veth)
        if veth == net.bridge or veth in veths:
            raise validate.InvalidInput(where + ".veth", "%s is also the name of %s"
                                        % (veth, "the bridge" if veth == net.bridge else veths[veth]))
        veths[veth] = name
        command = spec.get("command")
        if command is not None and (not isinstance(command, list) or not command):
            raise validate.InvalidInput(where + ".command", "must be a non-empty argv list (omit it "
                                        "for a container with a network only)")
        if spec.get("address"):
            ip = _container_address(where + ".address", spec["address"], net)
            if ip in addresses:
                raise validate.InvalidInput(where + ".address", "%s is also the address of %s"
                                            % (ip, addresses[ip]))
            addresses[ip] = name
        _limits(where, spec)
        for i, port in enumerate(spec.get("ports") or []):
            at = "%s.ports[%d]" % (where, i)
            if not isinstance(port, dict) or "host" not in port or "container" not in port:
                raise validate.InvalidInput(at, "needs host and container (ports)")
            host_port = validate.port(at + ".host", port["host"])
            validate.port(at + ".container", port["container"])
            protocol = port.get("protocol") or "tcp"
            if protocol not in ("tcp", "udp"):
                raise validate.InvalidInput(at + ".protocol", "%r must be tcp or udp" % (protocol,))
            key = (port.get("host_address") or "*", host_port, protocol)
            if key in published:
                raise validate.InvalidInput(at + ".host", "%s port %s is also published by %s"
                                            % (protocol, host_port, published[key]))
            published[key] = name


def check_images(images):
    seen = set()
    for index, spec in enumerate(images):
        where = "images[%d]" % index
        if not isinstance(spec, dict):
            raise validate.InvalidInput(where, "must be a dict with at least a name")
        name = validate.nsname(where + ".name", spec.get("name"))
        if name in seen:
            raise validate.InvalidInput(where + ".name", "%r is declared twice" % name)
        seen.add(name)


def errors(network, containers, images=()):
    """Every problem of a declaration as messages (empty when it is good), for the controller."""
    try:
        net = Network(network.get("bridge"), network.get("subnet"), network.get("gateway"),
                      network.get("range"), network.get("mtu"))
        check_containers(containers or [], net)
        check_images(images or [])
    except validate.InvalidInput as exc:
        return [str(exc)]
    return []
