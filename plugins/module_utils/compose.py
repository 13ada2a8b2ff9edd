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
        if spec.get("command") is not None and not spec["command"]:
            raise validate.InvalidInput(where + ".command", "must not be empty (omit it for a "
                                        "container with a network only)")
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

    def __init__(self, state_dir, bridge, subnet, gateway, pool=None):
        self.state_dir = state_dir
        self.dir = os.path.join(state_dir, "ipam", bridge)
        self.subnet, self.gateway = subnet, gateway
        self.pool = pool or subnet  # where automatic addresses come from
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
            if ip is None or ip not in self.pool or ip in used:
                ip = next((h for h in self.pool.hosts()
                           if h not in used and h not in taken), None)
                if ip is None:
                    raise PlanError("containers: %s has no free address for %s"
                                    % (self.pool, name))
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
    """Every declared container's primitives, converged in one call.

    A container with a ``command`` gets the full set - network namespace, veth,
    cgroup (when it has limits), an overlay rootfs on its image and the process;
    one without a command gets its network only. Published ports of every
    container are one port_forward resource (one firewall transaction).
    """

    def __init__(self, netlink, containers, bridge, subnet, gateway=None, state="present",
                 mtu=None, state_dir="/run/handbuilt", data_dir="/var/lib/handbuilt",
                 cgroup_parent="handbuilt", cgroup_relative_to_pid=None, firewall_backend="auto",
                 force=False, check_mode=False, validate_only=False, pool=None):
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
        self.validate_only = validate_only
        self.data_dir = validate.abspath("data_dir", data_dir, forbid=("/",))
        self.cgroup_parent, self.cgroup_pid = cgroup_parent, cgroup_relative_to_pid
        self.firewall_backend = firewall_backend
        pool = validate.network("range", pool) if pool else None
        if pool is not None and not pool.subnet_of(self.subnet):
            raise validate.InvalidInput("range", "%s is not inside the subnet %s" % (pool, self.subnet))
        self.ipam = Ipam(state_dir, self.bridge, self.subnet, self.gateway, pool)
        self.warnings = []
        self._layout = None
        # Allocate addresses (recorded only when applied) and build every resource
        # now: bad input anywhere fails before anything changes.
        if state == "present":
            self.addresses, self.ipam_ops = self.ipam.assign(containers)
        else:
            self.addresses, self.ipam_ops = {c["name"]: None for c in containers}, []
        self.plans = {spec["name"]: self.resources(spec, self.addresses[spec["name"]])
                      for spec in containers}
        self.ports = self.port_forward()

    # --- one container's primitives ------------------------------------------
    def layout(self):
        if self._layout is None:
            from ansible_collections.handbuilt.containers.plugins.module_utils.cgroup import Layout
            self._layout = Layout.detect()
        return self._layout

    def layers(self, spec):
        base = os.path.join(self.data_dir, "containers", spec["name"])
        lower = os.path.join(self.data_dir, "images", spec.get("image") or "busybox", "current", "rootfs")
        return dict(lower=[lower], upper=os.path.join(base, "upper"),
                    work=os.path.join(base, "work"), path=os.path.join(base, "merged"))

    def resources(self, spec, address):
        """(kind, resource) pairs of one container, in the order they are built."""
        name, state = spec["name"], self.state
        common = dict(state=state, force=self.force)
        parts = [("netns", Netns(self.nl, name, state_dir=self.state_dir, **common))]
        parts.append(("veth", Veth(
            self.nl, spec.get("veth") or "hb-" + name, PEER_NAME, netns=name, bridge=self.bridge,
            addresses=["%s/%d" % (address, self.subnet.prefixlen)] if address else None,
            gateway=str(self.gateway) if address else None, mtu=self.mtu, hairpin=True,
            check_mode=self.check_mode, **common)))
        if not spec.get("command"):
            return parts
        from ansible_collections.handbuilt.containers.plugins.module_utils.cgroup import Cgroup
        from ansible_collections.handbuilt.containers.plugins.module_utils.container import Container
        from ansible_collections.handbuilt.containers.plugins.module_utils.overlay import OverlayMount

        limits = dict(memory_max=spec.get("memory"), cpus=spec.get("cpus"), pids_max=spec.get("pids"))
        limits = {k: v for k, v in limits.items() if v is not None}
        cgroup = None
        if limits or state == "absent":
            cgroup = Cgroup(self.layout(), name, parent=self.cgroup_parent,
                            relative_to_pid=self.cgroup_pid, state=state,
                            kill=state == "absent", force=self.force, state_dir=self.state_dir,
                            **(limits if state == "present" else {}))
            parts.append(("cgroup", cgroup))
        layers = self.layers(spec)
        if state == "present":
            def overlay(check_mode):
                return OverlayMount(state="mounted", state_dir=self.state_dir, force=self.force,
                                    check_mode=check_mode, **layers)
        else:
            def overlay(check_mode):
                return OverlayMount(layers["path"], state="absent", state_dir=self.state_dir,
                                    force=self.force, check_mode=check_mode)
        parts.append(("overlay", overlay))
        cgroup_dirs = None
        if cgroup is not None and state == "present":
            cgroup_dirs = sorted({m.dir for m in cgroup._members() if m.placed})
        params = dict(name=name, state="started" if state == "present" else "absent",
                      state_dir=self.state_dir, rootfs=layers["path"], command=spec.get("command"),
                      env=spec.get("env"), workdir=spec.get("workdir"),
                      hostname=spec.get("hostname") or name, netns=name, cgroup=cgroup_dirs,
                      init=spec.get("init", True), stop_timeout=spec.get("stop_timeout", 5))
        parts.append(("container", lambda check_mode: Container(params, check_mode=check_mode)))
        # The image and the rootfs exist only once earlier steps ran, so the overlay
        # and the container are built when their turn comes; built now in check
        # mode, they validate the declaration before anything changes.
        for _, part in parts:
            if callable(part):
                part(True)
        return parts

    def port_forward(self):
        """All published ports, as one firewall resource named after the bridge."""
        from ansible_collections.handbuilt.containers.plugins.module_utils.firewall import PortForward

        ports = []
        for spec in self.containers if self.state == "present" else ():
            for i, port in enumerate(spec.get("ports") or []):
                where = "containers[%s].ports[%d]" % (spec["name"], i)
                if not isinstance(port, dict) or "host" not in port or "container" not in port:
                    raise validate.InvalidInput(where, "needs host and container (ports)")
                ports.append(dict(host_port=port["host"], protocol=port.get("protocol", "tcp"),
                                  host_address=port.get("host_address"),
                                  destination="%s:%s" % (self.addresses[spec["name"]],
                                                         port["container"])))
        name = "compose-" + self.bridge
        claim = os.path.join(self.state_dir, "sysctl", "net.ipv4.ip_forward", "port_forward@" + name)
        if not ports and not os.path.exists(claim):
            return None  # nothing published now or before: no firewall work at all
        return PortForward(name, ports, state="present" if ports else "absent",
                           backend=self.firewall_backend, state_dir=self.state_dir,
                           check_mode=self.check_mode)

    # --- converging ------------------------------------------------------------
    def _run(self, kind, name, resource, entry, diffs):
        if callable(resource):
            resource = resource(self.check_mode)
        result = resource.converge(self.check_mode)
        # "does not exist (yet)": the stack itself builds it earlier in this run.
        self.warnings += ["%s: %s" % (name, w) for w in resource.warnings
                          if "(yet)" not in w and "assuming an earlier task" not in w]
        entry[kind] = {k: v for k, v in result.items() if k not in ("diff", "commands")}
        if result["changed"]:
            entry["changed"] = True
            entry["commands"] += result["commands"]
            diffs.append(dict(result["diff"], before_header="%s %s" % (kind, name),
                              after_header="%s %s" % (kind, name)))

    def converge(self, check_mode):
        assert check_mode == self.check_mode
        if self.validate_only:  # the constructor validated everything; read nothing more
            return dict(changed=False, commands=[], containers={}, diff=[], ports=None,
                        gateway=str(self.gateway), subnet=str(self.subnet))
        results, commands, diffs = {}, [], []
        ports_entry = {"changed": False, "commands": []}
        addresses = self.addresses
        commands += apply_plan(self.ipam_ops, self.check_mode)
        if self.state == "absent" and self.ports is not None:
            self._run("ports", "published", self.ports, ports_entry, diffs)
            commands += ports_entry["commands"]
        for spec in self.containers:
            name = spec["name"]
            parts = list(self.plans[name])
            if self.state == "absent":
                parts.reverse()
            entry = {"changed": False, "commands": []}
            if addresses[name] is not None:
                entry["address"] = str(addresses[name])
            for kind, resource in parts:
                self._run(kind, name, resource, entry, diffs)
            if self.state == "absent":
                release = self.ipam.release_op(name)
                if release is not None:
                    entry["commands"] += apply_plan([release], self.check_mode)
                    entry["changed"] = True
            commands += entry["commands"]
            results[name] = entry
        layers_dir = os.path.join(self.data_dir, "containers")
        if self.state == "absent" and os.path.isdir(layers_dir) and not os.listdir(layers_dir):
            commands += apply_plan([Op("rmdir " + layers_dir, os.rmdir, layers_dir)], self.check_mode)
        if self.state == "present" and self.ports is not None:
            self._run("ports", "published", self.ports, ports_entry, diffs)
            commands += ports_entry["commands"]
        return dict(changed=bool(commands), commands=commands, containers=results, diff=diffs,
                    ports=ports_entry.get("ports"), gateway=str(self.gateway), subnet=str(self.subnet))
